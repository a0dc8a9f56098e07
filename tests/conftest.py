import os
from pathlib import Path

import pytest

os.environ.setdefault("DS_ACCELERATOR", "cpu")

from filters import paths  # noqa: E402

DATA = paths.shared_data()


@pytest.fixture(scope="session")
def data() -> Path:
    assert DATA.is_dir(), f"bundled data not found at {DATA} (set LLAMA_SHARED_DATA)"
    return DATA


@pytest.fixture(scope="session")
def lm_dir(data) -> Path:
    """The Wikipedia perplexity model (built once, reused from `make lm` when present)."""
    from pipelines.lm import train_lm

    enwiki = sorted((data / "wikipedia").glob("enwiki-*"))
    train_lm([str(p) for p in enwiki], paths.lm_dir())
    return paths.lm_dir()
