"""Data: sources (registered in nnctl.registry.DATA_SOURCES), splits and input normalization."""

from nnctl.data.dataset import Dataset

__all__ = ["Dataset"]
