"""Pictures of runs: learning curves, the Playground's picture, fits, confusion matrices, reports.

matplotlib is optional (the `plot` extra) and imported only by the functions that draw; the
sparkline is plain text and needs nothing.
"""
