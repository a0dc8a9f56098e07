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
    sp_model: Path
    kenlm_model: Path

    @classmethod
    def in_dir(cls, directory: str | Path, lang: str = "en") -> "LMPaths":
        d = Path(directory)
        return cls(d / f"{lang}.sp.model", d / f"{lang}.arpa.bin")

    def check(self) -> None:
        for p in (self.sp_model, self.kenlm_model):
            if not p.is_file():
                raise InputError(f"{p}: perplexity model missing (run `make lm` or `llama lm`)")


class PerplexityScorer:
    def __init__(self, paths: LMPaths):
        paths.check()
        import kenlm
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=str(paths.sp_model))
        self.lm = kenlm.Model(str(paths.kenlm_model))

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
