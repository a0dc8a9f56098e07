"""cc_net's perplexity scoring: SentencePiece tokens + a KenLM 5-gram trained on Wikipedia.

As cc_net's mining chain computes it (facebookresearch/cc_net@bda555b ``cc_net/mine.py``:
``perplexity.MultiSentencePiece(normalize=True)`` then ``perplexity.DocLM(normalize=False)``):
the *whole document* is normalised by ``text_normalizer.normalize`` (``filters.text.normalize``)
-- which removes the newlines with the other non-printing characters, so the lines are glued
without a separator -- tokenised by SentencePiece as one string, and that one line is scored
by KenLM with one <s>/</s>: ``10 ** (-log10 p / (n_pieces + 1))``, rounded to one decimal.
cc_net's cutoffs (``cc_net/data/cutoff.csv``, 30th and 60th percentiles: 340 and 520 for
English) were calibrated on exactly this score.  A document with no piece after normalising
gets no perplexity, and cc_net's bucket ``all``.  ``tests/reference`` holds cc_net's own
values on the shared sample.
Buckets (``PerplexityBucket``): ``head`` below the first cutoff, ``middle`` below the
second, else ``tail``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import InputError
from .text import normalize

# cc_net's English cutoffs (cutoff.csv rows 30 and 60: PerplexityBucket's default percentiles).
DEFAULT_CUTOFFS = {"en": (340.0, 520.0)}


@dataclass(frozen=True)
class LMPaths:
    """The two files of a perplexity model; local or remote (gs://...) paths."""
    sp_model: str
    kenlm_model: str

    @classmethod
    def in_dir(cls, directory: str | Path, lang: str = "en") -> "LMPaths":
        from core import fs

        return cls(fs.join(str(directory), f"{lang}.sp.model"), fs.join(str(directory), f"{lang}.arpa.bin"))

    def check(self) -> None:
        from core import fs

        for p in (self.sp_model, self.kenlm_model):
            if not fs.isfile(p):
                raise InputError(f"{p}: perplexity model missing (run `make lm` or `llama lm`)")


class PerplexityScorer:
    def __init__(self, paths: LMPaths):
        from core import fs

        paths.check()
        import kenlm
        import sentencepiece as spm

        # remote models are staged once per machine into a local cache
        self.sp = spm.SentencePieceProcessor(model_file=fs.stage(paths.sp_model, "perplexity model"))
        self.lm = kenlm.Model(fs.stage(paths.kenlm_model, "perplexity model"))

    def tokenize(self, text: str) -> str:
        """cc_net's ``MultiSentencePiece(normalize=True)``: the pieces of the normalised text."""
        return " ".join(self.sp.encode(normalize(text), out_type=str))

    def score(self, text: str) -> float | None:
        """cc_net's ``DocLM`` on the tokenised document (one line: the normaliser removed the
        newlines); None when there is no piece (cc_net sets no perplexity then)."""
        tokenized = self.tokenize(text)
        if not tokenized:
            return None
        log_score = self.lm.score(tokenized, bos=True, eos=True)
        return round(10.0 ** (-log_score / (len(tokenized.split()) + 1)), 1)


def bucket(perplexity: float | None, cutoffs: tuple[float, float]) -> str:
    """cc_net's ``PerplexityBucket.get_bucket`` for a language that has cutoffs."""
    if perplexity is None or perplexity < 0:
        return "all"
    head, middle = cutoffs
    if perplexity < head:
        return "head"
    if perplexity < middle:
        return "middle"
    return "tail"
