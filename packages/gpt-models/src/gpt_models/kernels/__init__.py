"""Fast kernels, each one function with a plain PyTorch reference and a compiled variant."""
