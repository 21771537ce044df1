"""Training: the loop, metrics and evaluation."""
