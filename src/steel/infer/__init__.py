"""Inference: loading models, KV-cached generation, interactive chat, export to a plain HF directory."""
