"""Supervised fine-tuning: chat data rendering, label masking, packing, self-cognition, `steel sft`."""
