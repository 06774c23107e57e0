"""Checkpoints: the original's torch and torch_dist layouts, sharded state dicts, resharding."""

__version__ = "0.1.0"
