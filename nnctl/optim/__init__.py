"""Optimizers (registered in nnctl.optim.optimizers)."""
