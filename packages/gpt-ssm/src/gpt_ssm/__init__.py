"""Mamba-2 mixer: mamba-ssm kernels when present, a pure-PyTorch scan otherwise."""

__version__ = "0.1.0"
