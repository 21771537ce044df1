"""Run directories and checkpoints: the only code that writes training outputs."""
