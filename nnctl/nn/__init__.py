"""The NumPy engine: layers, network, losses. Importing it registers the built-in layers."""

from nnctl.nn import (  # noqa: F401  (registers components)  # noqa: F401  (images and signals)  # noqa: F401  (sequence layers)
    activations,
    conv,
    dense,
    dropout,
    embedding,
    norm,
    polynomial,
    pool,
    recurrent,
    regularizers,
    reshape,
    residual,
)
from nnctl.nn.layer import Layer
from nnctl.nn.network import Network

__all__ = ["Layer", "Network"]
