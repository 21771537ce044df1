"""A strict stand-in for a GPU: device arrays that NumPy refuses to touch, and an `xp` that accepts them.

`StrictArray` wraps an ndarray the way a CuPy array wraps GPU memory. Its operators and methods work
(`x + y`, `x.sum(axis=0)`, `x[idx] = v`), but any `numpy` function or ufunc called on it raises
`StrictError` (`__array_function__`, `__array_ufunc__`, `__array__`), and so does mixing it with a
plain host ndarray (an operand, an index, an assigned value). `STRICT_XP` is the stand-in array
module: numpy's functions with StrictArrays unwrapped on the way in and wrapped on the way out, host
arrays accepted only by the functions that move data (`asarray`, `array`). So a component that calls
`np.<anything>` on a device array, or builds a host array and mixes it in, fails here as it would on
a GPU, while the arithmetic is numpy's own: results equal the CPU path bit for bit.
"""

from __future__ import annotations

import operator
import types

import numpy as np

from nnctl.device import Device


class StrictError(Exception):
    """A device array met plain numpy."""


# ufuncs that a NumPy scalar's operators call (np.float32(2) * x)
_OPERATORS = set(
    "add subtract multiply divide true_divide floor_divide power remainder matmul less less_equal greater "
    "greater_equal equal not_equal bitwise_and bitwise_or bitwise_xor".split()
)
# xp functions that take host data on purpose (cupy.asarray copies a NumPy array to the GPU)
_HOST_IN = {"asarray", "array", "asanyarray", "ascontiguousarray"}


def _unwrap(value, allow_host: bool = False, where: str = ""):
    if isinstance(value, StrictArray):
        return value.a
    if isinstance(value, np.ndarray) and not allow_host:
        raise StrictError(
            f"{where}: a host numpy array (shape {value.shape}) mixed with device arrays; move it with to_device"
        )
    if isinstance(value, tuple):
        return tuple(_unwrap(v, allow_host, where) for v in value)
    if isinstance(value, list):
        return [_unwrap(v, allow_host, where) for v in value]
    return value


def _wrap(value):
    if isinstance(value, np.ndarray):
        return StrictArray(value)
    if isinstance(value, np.generic) and not isinstance(value, (np.str_, np.bytes_)):
        return StrictArray(np.asarray(value))  # a full reduction is a 0-d device array, as in CuPy
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class StrictArray:
    """A device array stand-in: an ndarray that only the stand-in xp, operators and methods may touch."""

    __slots__ = ("a",)
    __array_priority__ = 1000

    def __init__(self, a: np.ndarray):
        self.a = a

    # numpy entry points: refused
    def __array__(self, *args, **kwargs):
        raise StrictError("numpy converted a device array to a host array (np.asarray, np.<fn>, a host array op)")

    def __array_function__(self, func, types_, args, kwargs):
        raise StrictError(f"numpy.{func.__name__} called on a device array; take it from the device's xp")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # `scalar * x` with a NumPy scalar on the left (x.dtype.type(0.5) * x) reaches here as the ufunc; CuPy
        # takes it too, so it passes. Any other numpy ufunc on a device array is refused.
        if method == "__call__" and not kwargs and ufunc.__name__ in _OPERATORS and len(inputs) == 2:
            if any(isinstance(v, np.generic) for v in inputs):
                return _wrap(ufunc(*(_unwrap(v, where=ufunc.__name__) for v in inputs)))
        name = ufunc.__name__ + ("" if method == "__call__" else f".{method}")
        raise StrictError(f"numpy.{name} called on a device array; take it from the device's xp")

    # attributes and methods: the ndarray's, results wrapped
    def __getattr__(self, name):
        if name.startswith("__"):  # __array_interface__, __array_struct__: numpy's back doors to the data
            raise AttributeError(name)
        value = getattr(self.a, name)
        if callable(value):

            def method(*args, **kwargs):
                where = f"ndarray.{name}"
                return _wrap(
                    value(*_unwrap(args, where=where), **{k: _unwrap(v, where=where) for k, v in kwargs.items()})
                )

            return method
        return _wrap(value)

    def __getitem__(self, key):
        return _wrap(self.a[_unwrap(key, where="indexing")])

    def __setitem__(self, key, value):
        self.a[_unwrap(key, where="indexing")] = _unwrap(value, where="assignment")

    def __len__(self):
        return len(self.a)

    def __iter__(self):
        return (_wrap(v) for v in self.a)

    def __float__(self):
        return float(self.a)

    def __int__(self):
        return int(self.a)

    def __bool__(self):
        return bool(self.a)

    def __index__(self):
        return operator.index(self.a)

    def __format__(self, spec):
        return format(self.a.item() if self.a.ndim == 0 else self.a, spec)

    def __repr__(self):
        return f"StrictArray({self.a!r})"

    __hash__ = None


def _binary(name):
    def op(self, other):
        return _wrap(getattr(self.a, name)(_unwrap(other, where=f"operator {name}")))

    return op


def _inplace(name):
    def op(self, other):
        getattr(self.a, name)(_unwrap(other, where=f"operator {name}"))
        return self

    return op


def _unary(name):
    def op(self):
        return _wrap(getattr(self.a, name)())

    return op


for _name in "add sub mul truediv floordiv mod pow matmul and or xor lshift rshift".split():
    setattr(StrictArray, f"__{_name}__", _binary(f"__{_name}__"))
    setattr(StrictArray, f"__r{_name}__", _binary(f"__r{_name}__"))
    setattr(StrictArray, f"__i{_name}__", _inplace(f"__i{_name}__"))
for _name in "lt le gt ge eq ne".split():
    setattr(StrictArray, f"__{_name}__", _binary(f"__{_name}__"))
for _name in "neg pos abs invert".split():
    setattr(StrictArray, f"__{_name}__", _unary(f"__{_name}__"))


class _Function:
    """A numpy function (or ufunc, or ufunc method) taking and giving StrictArrays."""

    def __init__(self, fn, name: str):
        self.fn, self.name = fn, name

    def __call__(self, *args, **kwargs):
        allow = self.name.split(".")[-1] in _HOST_IN
        where = f"xp.{self.name}"
        args = _unwrap(args, allow, where)
        kwargs = {k: _unwrap(v, allow, where) for k, v in kwargs.items()}
        return _wrap(self.fn(*args, **kwargs))

    def __getattr__(self, name):  # xp.add.reduceat, xp.maximum.reduce
        return _Function(getattr(self.fn, name), f"{self.name}.{name}")


class StrictNamespace:
    """numpy as a device's array module for StrictArrays (`xp.zeros`, `xp.add.reduceat`, `xp.float32`)."""

    def __init__(self, module=np, prefix: str = ""):
        self._module, self._prefix = module, prefix

    def __getattr__(self, name):
        if name == "ndarray":
            return StrictArray
        value = getattr(self._module, name)
        if isinstance(value, types.ModuleType):
            return StrictNamespace(value, f"{self._prefix}{name}.")
        if isinstance(value, type) or not callable(value):  # dtypes (xp.float32, xp.intp), constants (xp.pi)
            return value
        return _Function(value, f"{self._prefix}{name}")


STRICT_XP = StrictNamespace()


class StrictDevice(Device):
    """A device whose arrays are StrictArrays; moving copies, as to and from a GPU does."""

    name = "strict"
    kind = "strict"
    xp = STRICT_XP

    def to_device(self, array):
        return array if isinstance(array, StrictArray) else StrictArray(np.array(array))

    def to_host(self, array) -> np.ndarray:
        return array.a.copy() if isinstance(array, StrictArray) else np.asarray(array)


STRICT = StrictDevice()
