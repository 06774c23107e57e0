"""Inference: KV caches, batching engines, sampling, the text-generation server."""

__version__ = "0.1.0"
