"""Turn a validated config into the objects training needs: data splits, network, loss, optimizer.

Every check that could fail on the user's input (data, shapes, a loss that does not fit the
targets) happens here, before a run directory exists.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel

from nnctl import registry
from nnctl.data.dataset import Dataset
from nnctl.data.mapped import MappedArray, MappedRows
from nnctl.data.split import fold_indices, split_indices
from nnctl.data.tabular import TablePreprocessor, fit_table
from nnctl.data.transforms import Normalizer, merge_stats
from nnctl.device import CPU, Device, resolve_device
from nnctl.errors import ConfigError, DataError, NnctlError, keyed
from nnctl.metrics import Metric, build_metrics
from nnctl.nn.activations import Softmax
from nnctl.nn.losses import weigh_loss, with_sample_weight
from nnctl.nn.network import Network
from nnctl.rng import STREAM_DATA, STREAM_INIT, STREAM_SPLIT, rng_for

SPLITS = ("train", "val", "test")
# A split whose arrays take at most this many bytes is moved to a GPU once and batched there; a larger
# one (or a memory-mapped one) moves batch by batch.
RESIDENT_BYTES = 1 << 30


@dataclass
class Split:
    x: np.ndarray  # normalized features, engine dtype
    y: np.ndarray  # training targets: class indices, or (normalized) regression values in engine dtype
    y_true: np.ndarray  # targets in original units, for metrics

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Experiment:
    config: BaseModel
    task: str
    feature_names: list[str]
    class_names: list[str] | None
    target_names: list[str] | None
    num_classes: int | None
    splits: dict[str, Split]
    normalizer: Normalizer
    target_normalizer: Normalizer
    network: Network
    loss: object
    optimizer: object
    metrics: dict[str, Metric] = field(default_factory=dict)
    # Training-batch transforms (data.augment), each `(x, rng) -> x`; applied in order, training only.
    augmentations: list = field(default_factory=list)
    penalties: list = field(default_factory=list)  # (regularizer, weight, grad)
    constraints: list = field(default_factory=list)  # (constraint, weight)
    # The split, computed once: row indices of the data set per split, and the data set they index
    # (for the raw inputs that predict() takes: Playground points, or the features before normalization).
    indices: dict[str, np.ndarray] = field(default_factory=dict)
    dataset: Dataset | None = None
    table: TablePreprocessor | None = None  # a table's fitted column types, imputation and levels (checkpoint table/)
    # Where network, loss, optimizer, penalties and metrics compute; splits stay NumPy on the host and
    # move to it batch by batch, or once (resident()).
    device: Device = CPU
    _resident: dict = field(default_factory=dict, repr=False)

    def resident(self, split: str, training: bool = False) -> Split | None:
        """The split's arrays on the device, moved once and kept; None where batches move one by one instead:
        on the CPU (nothing to move), for training batches that augmentation changes on the host, for a
        memory-mapped split or one over RESIDENT_BYTES."""
        data = self.splits[split]
        if self.device.kind == "cpu" or (training and self.augmentations):
            return None
        if split not in self._resident:
            arrays = (data.x, data.y, data.y_true)
            fits = all(isinstance(a, np.ndarray) for a in arrays) and sum(a.nbytes for a in arrays) <= RESIDENT_BYTES
            self._resident[split] = Split(*(self.device.to_device(a) for a in arrays)) if fits else None
        return self._resident[split]

    def raw_inputs(self, split: str) -> np.ndarray:
        """A split's inputs as `nnctl predict` takes them (Playground: the 2-D points)."""
        data = self.dataset.raw if self.dataset.raw is not None else self.dataset.x
        return data[self.indices[split]]

    def predictions(self, out: np.ndarray) -> np.ndarray:
        """Class indices, or regression values in the data's original units (on the device of `out`)."""
        pred = self.loss.predict(out)
        if self.task == "regression":
            to_device = self.device.to_device
            pred = pred.astype(np.float64) * to_device(self.target_normalizer.scale) + to_device(
                self.target_normalizer.shift
            )
        return pred

    def probabilities(self, out: np.ndarray) -> np.ndarray:
        """(N, K) class probabilities from network outputs (classification losses only)."""
        return self.loss.probabilities(out)

    def evaluate(self, split: str, extra: Sequence = (), batch_size: int = 1024, comm=None) -> dict[str, float]:
        """Loss and metrics on one split, in eval mode, streamed over batches (no split-sized outputs).

        `extra` are more streaming accumulators (reset/update(y, pred, proba)), e.g. a confusion
        matrix, fed in the same pass; the caller reads their result(). With a data-parallel `comm`
        (nnctl.parallel, more than one rank) each rank scores every size-th of the same batches and the
        running sums (loss, confusion matrices, residual sums) are merged in rank order, so every rank
        gets the values of the whole split."""
        data = self.splits[split]
        n = len(data)
        if n == 0:
            return {}
        parallel = comm is not None and comm.size > 1
        starts = range(0, n, batch_size)
        if parallel:  # the one-process batches, dealt out round-robin: a weighted loss's value depends on them
            starts = starts[comm.rank :: comm.size]
        accumulators = [*self.metrics.values(), *extra]
        need_proba = any(getattr(m, "needs_proba", False) for m in accumulators)
        for metric in accumulators:
            metric.reset()
        loss_sum = 0.0
        to_device = self.device.to_device
        data = self.resident(split) or data  # on a GPU: the split moved once; else each batch moves
        for start in starts:
            rows = slice(start, start + batch_size)
            out = self.network.forward(to_device(data.x[rows]), training=False)
            loss_sum += self.loss.forward(out, to_device(data.y[rows])) * len(out)  # batch mean -> sum
            self.loss._cache = None
            pred = self.predictions(out)
            proba = self.probabilities(out) if need_proba else None
            y_true = to_device(data.y_true[rows])
            for metric in accumulators:
                metric.update(y_true, pred, proba)
        if parallel:
            gathered = comm.allgather((loss_sum, [metric.state() for metric in accumulators]))
            loss_sum = 0.0
            for metric in accumulators:
                metric.reset()
            for rank_loss, states in gathered:
                loss_sum += rank_loss
                for metric, state in zip(accumulators, states, strict=True):
                    metric.merge(state)
        results = {"loss": loss_sum / n}
        for column, metric in self.metrics.items():
            results[column] = metric.result()
        return results


def load_dataset(config: BaseModel, comm=None) -> Dataset:
    """The config's data set, checked for NaN/Inf. A memory-mapped one is checked in one streaming pass;
    with a data-parallel `comm` (nnctl.parallel) each rank reads only its part of the rows."""
    source = registry.DATA_SOURCES.create(config.data.source)
    dataset = source.load(rng_for(config.seed, STREAM_DATA))
    if len(dataset) == 0:
        raise DataError(f"data source '{config.data.source.type}' produced no samples.")
    if isinstance(dataset.x, MappedArray):  # bigger than memory: one streaming pass
        n, rank, size = len(dataset.x), (comm.rank if comm else 0), (comm.size if comm else 1)
        where = dataset.x.first_nonfinite(slice(n * rank // size, n * (rank + 1) // size))
        if size > 1:
            where = next((w for w in comm.allgather(where) if w is not None), None)
    elif not np.all(np.isfinite(dataset.x)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(dataset.x))[0])
    else:
        where = None
    if where is not None:
        row, rest = where[0], where[1:]
        name = dataset.feature_names[rest[0]] if len(rest) == 1 and dataset.feature_names else f"position {rest}"
        raise DataError(
            f"data source '{config.data.source.type}': sample {row}, feature {name} is "
            f"{dataset.x[row][rest]}; remove or fill missing values."
        )
    return dataset


def _subsample(dataset: Dataset, train: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A stratified, seed-fixed subset of the training indices (at least one sample per class present)."""
    from nnctl.data.split import split_counts

    rng = rng_for(seed, STREAM_SPLIT, 1)
    if dataset.task != "classification":
        return np.sort(rng.permutation(train)[: max(1, round(fraction * len(train)))])
    keep = []
    for label in np.unique(dataset.y[train]):
        members = rng.permutation(train[dataset.y[train] == label])
        count = max(1, int(split_counts(len(members), np.array([fraction, 1 - fraction]))[0]))
        keep.append(members[:count])
    return np.sort(np.concatenate(keep))


def _normalizer(normalizer: Normalizer, train_values: np.ndarray, state: dict | None) -> Normalizer:
    return Normalizer.from_state(normalizer.method, state) if state else normalizer.fit(train_values)


CHUNK_BYTES = 4 * 2**20  # float64 rows per chunk when a split is gathered and normalized


def _chunks(x: np.ndarray, idx: np.ndarray):
    """(start, x[idx[start:stop]] as float64) a bounded chunk of rows at a time."""
    step = max(1, CHUNK_BYTES // max(1, 8 * int(np.prod(x.shape[1:], dtype=np.int64))))
    for start in range(0, len(idx), step):
        yield start, np.asarray(x[idx[start : start + step]], dtype=np.float64)


def _rows64(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """x[idx] as float64, gathered a chunk at a time (no copy in x's own type besides it)."""
    out = np.empty((len(idx), *x.shape[1:]), dtype=np.float64)
    for start, rows in _chunks(x, idx):
        out[start : start + len(rows)] = rows
    return out


def _normalized(x: np.ndarray, idx: np.ndarray, normalizer: Normalizer, dtype) -> np.ndarray:
    """The rows `idx` of x normalized in float64 and cast to the engine dtype, a chunk of rows at a time
    into the one array returned: no float64 copy of the split and no float64 temporaries of its size. Each
    value is what one transform of the whole split gives (the arithmetic is per element)."""
    out = np.empty((len(idx), *x.shape[1:]), dtype=dtype)
    for start, rows in _chunks(x, idx):
        out[start : start + len(rows)] = normalizer.transform(rows)
    return out


def build_network(
    config: BaseModel,
    input_shape: tuple[int, ...],
    dtype,
    table: TablePreprocessor | None = None,
    device: Device = CPU,
) -> Network:
    """The config's layers built for `input_shape` on `device`; a table's embedded columns size its
    `category_embedding`."""
    layers = []
    for i, spec in enumerate(config.model.layers):
        fields = spec.model_dump()
        fields.pop("regularizers", None)  # applied by the trainer, not the layer
        if fields["type"] == "category_embedding":
            fields |= embedding_fields(fields, i, table)
        layers.append(registry.LAYERS.create(fields))
    embedded = table.embedded if table is not None else []
    if embedded and (not layers or layers[0].name != "category_embedding"):
        names = ", ".join(c.name for c in embedded)
        raise keyed(
            ConfigError(
                f"model.layers: {names} {'is' if len(embedded) == 1 else 'are'} declared encoding: embedding "
                "(data.source.columns), so the network must start with the layer that turns level ids into vectors: "
                "add `- {type: category_embedding}` as model.layers[0]."
            ),
            "model",
            "layers",
        )
    return Network(layers).build(input_shape, rng_for(config.seed, STREAM_INIT), dtype, device)


def embedding_fields(fields: dict, index: int, table: TablePreprocessor | None) -> dict:
    """vocab_sizes and dims of a `category_embedding` layer: the table's embedded columns (or as written)."""
    if index != 0:
        raise keyed(
            ConfigError(
                f"model.layers[{index}] is category_embedding, which reads the table's category ids: it must be "
                "model.layers[0]."
            ),
            "model",
            "layers",
            index,
        )
    if table is None or not table.embedded:
        if fields.get("vocab_sizes") and fields.get("dims"):
            return {}
        raise keyed(
            ConfigError(
                "model.layers[0] is category_embedding, but no data.source column is declared "
                "{type: category, encoding: embedding}; declare one, or remove the layer."
            ),
            "model",
            "layers",
            0,
        )
    sizes, dims = table.embedding_sizes()
    for key, value in (("vocab_sizes", sizes), ("dims", dims)):
        if fields.get(key) is not None and list(fields[key]) != value:
            raise keyed(
                ConfigError(
                    f"model.layers[0].{key} is {fields[key]}, but the table's embedded columns "
                    f"({', '.join(c.name for c in table.embedded)}) give {value}; leave {key} out to take them."
                ),
                "model",
                "layers",
                0,
                key,
            )
    return {"vocab_sizes": sizes, "dims": dims}


def build_regularization(config: BaseModel, network: Network) -> tuple[list, list]:
    """(penalties, constraints): (regularizer, weight view, grad view) and (constraint, weight view) lists.

    Global `regularizers:` apply to every layer's weights, a layer's own list to its weights only."""
    device = network.device
    global_regs = [registry.REGULARIZERS.create(spec).to(device) for spec in config.regularizers]
    per_layer = [
        [registry.REGULARIZERS.create(r).to(device) for r in spec.regularizers] for spec in config.model.layers
    ]
    penalties, constraints = [], []
    for index, _, w, g in network.penalized():
        for reg in global_regs + per_layer[index]:
            if reg.is_constraint:
                constraints.append((reg, w))
            else:
                penalties.append((reg, w, g))
    return penalties, constraints


def split_rows(config: BaseModel, dataset: Dataset) -> dict[str, np.ndarray]:
    """Row indices per split: the data file's predefined splits, else data.split's fractions
    (stratified by class), or one cv fold of them (data.split.folds); data.train_fraction then thins
    the training split."""
    split = config.data.split
    if dataset.splits is not None and "split" in config.data.model_fields_set and split != type(split)():
        # The defaults are let through: a run's resolved config.yaml lists them, and must rerun.
        sizes = ", ".join(f"{name} {len(dataset.splits.get(name, ()))}" for name in SPLITS)
        raise ConfigError(
            f"data.split: the data file holds predefined splits ({sizes}), so split fractions cannot apply. "
            "Remove data.split to use the file's splits, or store x and y without them to split by fractions."
        )
    ratios = {"train": split.train, "val": split.val, "test": split.test}
    indices = split_indices(dataset, ratios, rng_for(config.seed, STREAM_SPLIT))
    indices = fold_indices(dataset, indices, split, config.seed)  # data.split.folds: one cv fold
    if config.data.train_fraction < 1:
        indices["train"] = _subsample(dataset, indices["train"], config.data.train_fraction, config.seed)
    if len(indices["train"]) == 0:
        raise DataError(f"the training split is empty ({len(dataset)} samples, train ratio {ratios['train']}).")
    return indices


def build_experiment(
    config: BaseModel,
    stored: dict[str, dict[str, np.ndarray]] | None = None,
    dataset: Dataset | None = None,
    comm=None,
    device: str | Device | None = None,
) -> Experiment:
    """`stored` holds normalization statistics from a checkpoint ({"norm": ..., "target_norm": ...,
    "table": ...}) to use instead of fitting them again; `dataset` replaces the config's source (in memory).
    `device` (cpu, cuda, cuda:N or a Device) overrides the config's train.device; a missing GPU or CuPy
    is a ConfigError raised first, before any data is loaded."""
    device = resolve_device(config.train.device if device is None else device)
    dtype = np.dtype(config.dtype)
    dataset = load_dataset(config, comm) if dataset is None else dataset
    indices = split_rows(config, dataset)
    dataset, table = fit_table(dataset, indices["train"], (stored or {}).get("table"))  # train rows only

    if dataset.task != "regression" and config.data.target_normalize != "none":
        raise ConfigError("data.target_normalize applies to regression targets, but the data are class labels.")
    targets_2d = dataset.y if dataset.task == "regression" else np.zeros((1, 1))
    train_idx = indices["train"] if dataset.task == "regression" else [0]
    stored = stored or {}
    norm = config.data.normalize
    mapped = isinstance(dataset.x, MappedArray)  # bigger than memory: streamed, never loaded whole
    if mapped and not stored.get("norm"):
        rows = np.sort(indices["train"])
        normalizer = Normalizer(norm.method, norm.per, norm.range)
        if comm is not None and comm.size > 1:  # each rank its part of the rows, the parts merged in rank order
            rows = rows[len(rows) * comm.rank // comm.size : len(rows) * (comm.rank + 1) // comm.size]
        chunks = dataset.x.chunks(rows)
        if norm.method == "none":  # nothing to learn: one chunk gives the sample shape
            chunks = itertools.islice(chunks, 1)
        stats = normalizer.partial_stats(chunks)
        if comm is not None and comm.size > 1:
            stats = functools.reduce(merge_stats, comm.allgather(stats), None)
        normalizer.fit_stats(stats)
    else:
        fit_rows = indices["train"] if norm.method != "none" else indices["train"][:1]  # none: the shape is all
        normalizer = _normalizer(
            Normalizer(norm.method, norm.per, norm.range),
            None if mapped or stored.get("norm") else _rows64(dataset.x, fit_rows),
            stored.get("norm"),
        )
    if table is not None and table.embedded:  # level ids reach category_embedding as they are
        normalizer.keep_last(len(table.embedded), "data.normalize")
    target_normalizer = _normalizer(
        Normalizer(config.data.target_normalize), targets_2d[train_idx], stored.get("target_norm")
    )

    splits = {}
    for name in SPLITS:
        idx = indices[name]
        if mapped:  # normalized batch by batch when the trainer takes it
            x = MappedRows(dataset.x, idx, normalizer, dtype)
        else:
            x = _normalized(dataset.x, idx, normalizer, dtype)
        y_true = dataset.y[idx]
        y = (
            y_true
            if dataset.task == "classification"
            else np.ascontiguousarray(target_normalizer.transform(y_true), dtype=dtype)
        )
        if dataset.sample_weight is not None:  # the weights travel with the targets (losses.with_sample_weight)
            y = with_sample_weight(y, dataset.sample_weight[idx])
        splits[name] = Split(x, y, y_true)

    network = build_network(config, dataset.sample_shape, dtype, table, device)
    loss = registry.LOSSES.create(config.loss).to(device)
    targets = dataset.y.shape[1] if dataset.task != "classification" else 1
    loss.check(network.output_shape, dataset.task, dataset.num_classes, targets)
    weigh_loss(loss, dataset, indices["train"])
    if config.loss.type in ("cross_entropy", "binary_cross_entropy") and isinstance(network.layers[-1], Softmax):
        raise ConfigError(
            f"model.layers[{len(network.layers) - 1}] is softmax, but loss {config.loss.type} already applies it to "
            "the raw scores (fused, numerically stable). Remove the final softmax layer."
        )
    if dataset.task == "classification":
        top = int(dataset.y.max())
        if top >= dataset.num_classes or int(dataset.y.min()) < 0:
            raise DataError(f"class label {top} is out of range for {dataset.num_classes} classes.")

    optimizer = (
        registry.OPTIMIZERS.create(config.optimizer)
        .to(device)
        .bind(network.flat_params, network.flat_grads, network.decay_mask())
    )
    penalties, constraints = build_regularization(config, network)
    metrics = build_metrics(config.metrics, dataset.task, dataset.num_classes, device)
    if any(m.needs_proba for m in metrics.values()) and not hasattr(loss, "probabilities"):
        needing = ", ".join(c for c, m in metrics.items() if m.needs_proba)
        raise ConfigError(
            f"metrics: {needing} need class probabilities, which loss '{config.loss.type}' does not give."
        )

    augmentations = [registry.AUGMENTATIONS.create(spec) for spec in config.data.augment]
    for i, augmentation in enumerate(augmentations):  # a rotate on signals fails here, before any run exists
        if hasattr(augmentation, "check"):
            try:
                augmentation.check(dataset.sample_shape)
            except NnctlError as exc:
                raise ConfigError(f"data.augment[{i}]: {exc}") from None

    return Experiment(
        indices=indices,
        dataset=dataset,
        penalties=penalties,
        constraints=constraints,
        augmentations=augmentations,
        config=config,
        task=dataset.task,
        feature_names=list(dataset.feature_names),
        class_names=list(dataset.class_names) if dataset.class_names else None,
        target_names=list(dataset.target_names) if dataset.target_names else None,
        num_classes=dataset.num_classes,
        splits=splits,
        normalizer=normalizer,
        target_normalizer=target_normalizer,
        table=table,
        network=network,
        loss=loss,
        optimizer=optimizer,
        metrics=metrics,
        device=device,
    )
