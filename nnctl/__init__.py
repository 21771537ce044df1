"""nnctl: train neural networks from YAML experiment files with a small NumPy engine."""

__version__ = "0.1.0"
