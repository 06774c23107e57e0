"""GPT models: transformer config, attention, MLP, norms, rotary, layers, HF and original name mappings."""

from gpt_models.model import GPTModel
from gpt_models.transformer_config import (
    TransformerConfig,
    TransformerConfigError,
    UnsupportedFeatureError,
)

__version__ = "0.1.0"

__all__ = ["GPTModel", "TransformerConfig", "TransformerConfigError", "UnsupportedFeatureError"]
