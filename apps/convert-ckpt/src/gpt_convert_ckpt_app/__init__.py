"""Convert checkpoints between the original's formats and HF transformers."""
