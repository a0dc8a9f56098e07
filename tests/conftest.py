import os
from pathlib import Path

import pytest

os.environ.setdefault("DS_ACCELERATOR", "cpu")

from core import paths  # noqa: E402
from pipelines import registry  # noqa: E402

DATA = paths.shared_data()

# `make test-fast` (-m "not slow") leaves out what runs whole pipelines or trains: these
# modules, every test that uses a fixture which runs a pipeline, and tests marked slow.
_SLOW_MODULES = {"test_scale.py", "test_dag.py", "test_train.py"}
_SLOW_FIXTURES = {"corpus", "ccnet_out", "wiki_rows", "tokenizer_model", "lm_dir", "github_rows", "se_rows"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if (item.path.name in _SLOW_MODULES or _SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))):
            item.add_marker(pytest.mark.slow)


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


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, data, lm_dir) -> Path:
    """Every source pipeline run once on the bundled data, laid out like `out/`."""
    from pipelines import ccnet, quality, wikirefs

    root = tmp_path_factory.mktemp("corpus")
    ccnet.run(ccnet.CCNetConfig([str(data / "cc")], str(root / "ccnet"), str(lm_dir), str(paths.lid_model())))
    for src in registry.pipelines():  # every registered source, at its defaults (Wikipedia keeps its rejects)
        opts = src.options()(rejected=True) if src.name == "wikipedia" else None
        src.run([str(data / src.input)], str(root / src.out_dir), opts)
    wikirefs.run([str(data / "wikipedia")], str(root / "wikirefs"))
    quality.train(str(root / "ccnet"), str(root / "quality"), refs_dir=str(root / "wikirefs"),
                  wiki_dir=str(root / "wikipedia"), epoch=50, lr=0.5)
    quality.run(str(root / "ccnet"), str(root / "cc"), str(root / "quality" / "model.bin"))
    return root


@pytest.fixture(scope="session")
def tokenizer_model(corpus) -> Path:
    """A BPE tokenizer with LLaMA's trainer spec trained on the corpus (vocab 8000)."""
    from tokenizer.train import train_tokenizer

    return train_tokenizer([str(corpus / s.out_dir) for s in registry.SOURCES], corpus / "tokenizer",
                           vocab_size=8000)
