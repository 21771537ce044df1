"""ONNX export of trained runs (`nnctl export`): the exporter table, the graph builder, export_run.

The registry part imports nothing heavy; `export_run` needs the `onnx` extra (pip install 'nnctl[onnx]').
"""

from nnctl.export.registry import ExportError, exporter_for, exporter_names, register_exporter

__all__ = ["ExportError", "export_run", "exporter_for", "exporter_names", "register_exporter"]


def __getattr__(name: str):
    if name == "export_run":
        from nnctl.export.onnx_model import export_run

        return export_run
    raise AttributeError(f"module 'nnctl.export' has no attribute {name!r}")
