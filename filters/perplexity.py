"""cc_net's perplexity scoring: SentencePiece tokens + a KenLM 5-gram trained on Wikipedia.

Each line is normalised (``filters.text.normalize``), tokenised with SentencePiece,
scored by KenLM with <s>/</s>; the document perplexity is
``10 ** (-sum(log10 p) / sum(n_tokens + 1))``, rounded to one decimal as cc_net does.
Buckets: ``head`` below the first cutoff, ``middle`` below the second, else ``tail``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .text import normalize

# cc_net's English cutoffs (33rd / 66th perplexity percentiles); configurable per language.
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

    def tokenize(self, line: str) -> str:
        return " ".join(self.sp.encode(normalize(line), out_type=str))

    def score(self, text: str) -> float:
        log_score, length = 0.0, 0
        for line in text.split("\n"):
            tokenized = self.tokenize(line)
            if not tokenized:
                continue
            log_score += self.lm.score(tokenized, bos=True, eos=True)
            length += len(tokenized.split()) + 1
        if length == 0:
            return float("inf")
        return round(10.0 ** (-log_score / length), 1)


def bucket(perplexity: float, cutoffs: tuple[float, float]) -> str:
    head, middle = cutoffs
    if perplexity < head:
        return "head"
    if perplexity < middle:
        return "middle"
    return "tail"
