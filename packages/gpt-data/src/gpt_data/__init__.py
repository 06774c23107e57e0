"""Indexed datasets, GPT/SFT/mock datasets, blending, samplers, the preprocessing pipeline."""

__version__ = "0.1.0"
