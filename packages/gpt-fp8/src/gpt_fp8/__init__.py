"""FP8 recipes: Transformer Engine when present, an exact pure-PyTorch emulation otherwise."""

__version__ = "0.1.0"
