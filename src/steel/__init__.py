"""Steel: pretrain, fine-tune and evaluate a ~1B-parameter Chinese-first LLM on a handful of GPUs."""

__version__ = "0.1.0"
