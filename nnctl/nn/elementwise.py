"""Element-wise passes over large arrays, shaped so that NumPy runs its vector loops.

NumPy (2.x) runs `maximum` against a scalar, and an add that broadcasts a short row (a conv layer's
32 biases) across a tall array, on a slow inner loop: on 1.6M float32 (the benchmark CNN's first
conv output) `maximum(y, 0)` takes 0.48 ms and `y += bias` 0.65 ms, against 0.20 and 0.22 ms when
the same values are laid out as rows of about a thousand and the zero or the bias is a row that
long. And it copies operands that are not contiguous as a whole through its ufunc buffer (8192
elements) even when they are long contiguous rows: a conv's col2im adds into a strided view of the
padded input gradient run twice as fast with the buffer no longer than a row (`add_`). The results
are the same bits: the same operation on the same pairs of numbers.

Arrays below `LARGE` elements, non-contiguous ones and other array modules (CuPy) take the plain call.
"""

from __future__ import annotations

import numpy as np

LARGE = 1 << 15  # elements; below this the reshaping costs more than it saves
ROW = 1024  # length of the rows the vector loops run over
# Contiguous rows at least this long are added unbuffered; shorter ones (a C = 1 conv's rows of ~28
# floats) run faster through the buffer.
LONG_RUN = 256
# NumPy 2 scopes the buffer size to `np.errstate` (a context variable), so `add_` can set it for one call.
_SCOPED_BUFSIZE = np.lib.NumpyVersion(np.__version__) >= "2.0.0"

_zero_rows: dict[np.dtype, np.ndarray] = {}


def _zero_row(dtype: np.dtype) -> np.ndarray:
    row = _zero_rows.get(dtype)
    if row is None:
        row = _zero_rows[dtype] = np.zeros(ROW, dtype=dtype)
        row.flags.writeable = False
    return row


def _fast(xp, a: np.ndarray) -> bool:
    return xp is np and a.size >= LARGE and a.flags.c_contiguous


def _relu_into(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = max(x, 0) for contiguous NumPy arrays of the same shape (out may be x)."""
    flat, into = x.reshape(-1), out.reshape(-1)
    whole = flat.size - flat.size % ROW
    np.maximum(flat[:whole].reshape(-1, ROW), _zero_row(x.dtype), out=into[:whole].reshape(-1, ROW))
    if whole < flat.size:
        np.maximum(flat[whole:], 0, out=into[whole:])
    return out


def relu_(xp, a: np.ndarray) -> np.ndarray:
    """a = max(a, 0) in place; returns a."""
    return _relu_into(a, a) if _fast(xp, a) else xp.maximum(a, 0, out=a)


def relu(xp, x: np.ndarray) -> np.ndarray:
    """max(x, 0) as a new array."""
    return _relu_into(x, np.empty_like(x)) if _fast(xp, x) else xp.maximum(x, 0)


def add_bias_(xp, a: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """a (rows, F) += bias (F,) in place; returns a. The bias is tiled to a row of about ROW numbers
    when the rows divide evenly, so the add runs over long rows."""
    rows, width = a.shape
    repeat = max(1, ROW // width)
    if not _fast(xp, a) or repeat == 1 or rows % repeat:
        a += bias
        return a
    long_rows = a.reshape(rows // repeat, repeat * width)
    np.add(long_rows, np.tile(bias, repeat), out=long_rows)
    return a


def contiguous_run(a: np.ndarray) -> int:
    """Elements in the innermost contiguous stretch of `a` (the whole array when it is C-contiguous)."""
    run = 1
    for size, stride in zip(reversed(a.shape), reversed(a.strides), strict=True):
        if size != 1 and stride != run * a.itemsize:
            break
        run *= size
    return run


def add_(xp, dest: np.ndarray, src: np.ndarray) -> np.ndarray:
    """dest += src in place (src of dest's shape); returns dest. A large `dest` that is a view of long
    contiguous rows is added with NumPy's ufunc buffer no longer than a row, so nothing is copied
    through it: the benchmark CNN's conv2 col2im (9 adds of rows of 448 floats) 1.23 -> 0.54 ms."""
    if not (_SCOPED_BUFSIZE and xp is np and dest.size >= LARGE and not dest.flags.c_contiguous):
        dest += src
        return dest
    run = contiguous_run(dest)
    if run < LONG_RUN:
        dest += src
        return dest
    with np.errstate():  # restores the buffer size on exit (and keeps the caller's error settings)
        # NumPy takes only multiples of 16 (ValueError else: a row of 28 x 10 floats is 280); rounded down,
        # the buffer is still no longer than a row (run >= LONG_RUN, itself a multiple of 16).
        np.setbufsize(min(run - run % 16, np.getbufsize()))
        np.add(dest, src, out=dest)
    return dest
