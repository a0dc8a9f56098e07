"""Where the bundled data, models and outputs live (all overridable by env vars)."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def shared_data() -> Path:
    return Path(os.environ.get("LLAMA_SHARED_DATA", REPO.parent / "shared" / "data"))


def out_dir() -> Path:
    return Path(os.environ.get("LLAMA_OUT", REPO / "out"))


def lid_model() -> Path:
    return Path(os.environ.get("LLAMA_LID_MODEL",
                               shared_data() / "models" / "fasttext-lid.176" / "lid.176.ftz"))


def llama_tokenizer() -> Path:
    """The LLaMA vocabulary as a HuggingFace tokenizer.json (GitHub's alpha-per-token rule)."""
    return Path(os.environ.get("LLAMA_TOKENIZER_JSON",
                               shared_data() / "models" / "llama-tokenizer-hf" / "llama-test-tokenizer.json"))


def lm_dir() -> Path:
    return Path(os.environ.get("LLAMA_LM_DIR", out_dir() / "lm"))
