"""SentencePiece BPE tokenizer with LLaMA's trainer spec, and the Tokenizer used everywhere."""
from .tokenizer import Tokenizer  # noqa: F401
