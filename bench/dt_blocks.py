"""datatrove pieces for `make bench` (bench.peers), in a module of their own so that
datatrove's worker processes can import them: its language filter on the project's local
lid.176 file, cc_net's perplexity by datatrove's own ``KenlmModel`` (normalise,
SentencePiece, KenLM) on the project's Wikipedia LM (no downloads), and the CCNet-like
pipeline run by ``LocalPipelineExecutor`` (``python -m bench.dt_blocks CORPUS OUT TASKS``).
Only imported when datatrove is installed (``make bench-setup``)."""
from __future__ import annotations

import importlib.util

from datatrove.utils import _import_utils

_dist = _import_utils._is_distribution_available


def _available(name: str):
    """datatrove asks for the ``fasttext-numpy2-wheel`` distribution; this project installs
    ``fasttext-numpy2``, the same ``fasttext`` module (the wheel would replace it)."""
    if name == "fasttext-numpy2-wheel" and importlib.util.find_spec("fasttext") is not None:
        return True
    return _dist(name)


_import_utils._is_distribution_available = _available

from datatrove.pipeline.filters.base_filter import BaseFilter  # noqa: E402
from datatrove.utils.perplexity import KenlmModel  # noqa: E402


class _LocalKenlm(KenlmModel):
    def __init__(self, sp_model: str, arpa_bin: str):
        super().__init__("local", "en")
        self.sp_model, self.arpa_bin = sp_model, arpa_bin

    @property
    def model(self):
        import kenlm

        if self._model is None:
            self._model = kenlm.Model(self.arpa_bin)
        return self._model

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            import sentencepiece

            sp = sentencepiece.SentencePieceProcessor(model_file=self.sp_model)

            class _Pieces:
                def tokenize(self, text):
                    return " ".join(sp.encode_as_pieces(text))
            self._tokenizer = _Pieces()
        return self._tokenizer


class LocalPerplexity(BaseFilter):
    name = "cc_net perplexity (local LM)"

    def __init__(self, sp_model: str, arpa_bin: str):
        super().__init__()
        self.sp_model, self.arpa_bin = sp_model, arpa_bin
        self._lm = None

    def filter(self, doc) -> bool:
        if self._lm is None:
            self._lm = _LocalKenlm(self.sp_model, self.arpa_bin)
        doc.metadata["perplexity"] = self._lm.get_perplexity(doc.text)
        return True


from datatrove.utils.lid import FT176LID  # noqa: E402


class LocalFT176(FT176LID):
    """datatrove's lid.176 language ID on the project's local model file (no download)."""

    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText

            from core import paths

            self._model = _FastText(str(paths.lid_model()))
        return self._model


def language_filter():
    from datatrove.pipeline.filters import LanguageFilter

    f = LanguageFilter(languages=["en"], language_threshold=0.5)
    f.model = LocalFT176(["en"])
    return f


def run_ccnet(corpus: str, out: str, tasks: int) -> None:
    """datatrove's nearest CCNet: read (its ``WarcReader`` for WET files, ``JsonlReader`` for
    JSON lines) -> fastText LID (en, 0.5) -> cc_net's perplexity -> JSONL.  It has no
    single-pass line dedup, so it does less work than the project's."""
    from pathlib import Path

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader, WarcReader
    from datatrove.pipeline.writers import JsonlWriter

    from core import paths

    lm = paths.lm_dir()
    reader = (WarcReader(corpus, glob_pattern="*.warc.wet.gz") if any(Path(corpus).glob("*.warc.wet.gz"))
              else JsonlReader(corpus, glob_pattern="*.jsonl.gz"))
    pipe = [reader, language_filter(),
            LocalPerplexity(str(lm / "en.sp.model"), str(lm / "en.arpa.bin")),
            JsonlWriter(f"{out}/docs")]
    LocalPipelineExecutor(pipeline=pipe, tasks=tasks, workers=tasks, logging_dir=f"{out}/logs").run()


if __name__ == "__main__":
    import sys

    run_ccnet(sys.argv[1], sys.argv[2], int(sys.argv[3]))
