"""Pretraining: `steel train` (trainer, checkpoints, distributed wrapping, optimizer, metrics, plots)."""
