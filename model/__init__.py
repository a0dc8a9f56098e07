"""The LLaMA-1 architecture."""
from .llama import CONFIGS, ModelArgs, Transformer  # noqa: F401
