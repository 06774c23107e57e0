"""GPT models: transformer config, attention, MLP, norms, rotary, layers, HF and original name mappings."""

__version__ = "0.1.0"
