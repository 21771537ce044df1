"""The NumPy engine: layers, network, losses. Importing it registers the built-in layers."""

from nnctl.nn import activations, dense, dropout, norm, polynomial, regularizers  # noqa: F401  (registers components)
from nnctl.nn import conv, pool, reshape, residual  # noqa: F401  (images and signals)
from nnctl.nn import embedding, recurrent  # noqa: F401  (sequence layers)
from nnctl.nn.layer import Layer
from nnctl.nn.network import Network

__all__ = ["Layer", "Network"]
