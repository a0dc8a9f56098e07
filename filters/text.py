"""Text normalisation and line hashing exactly as cc_net does them.

``normalize`` / ``normalize_for_dedup`` follow cc_net's ``text_normalizer.py``:
lower-case, digits -> 0, the Unicode punctuation table removed (dedup) or
mapped to ASCII (LM), non-printing characters removed, accents stripped (LM).
``line_hash`` is cc_net's key: the first 8 bytes of SHA-1 of the normalised
line, as an unsigned 64-bit integer.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata

UNICODE_PUNCT = {
    "，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"',
    "１": '"', "」": '"', "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":",
    "？": "?", "！": "!", "（": "(", "）": ")", "；": ";", "–": "-", "—": " - ", "．": ". ",
    "～": "~", "’": "'", "…": "...", "━": "-", "〈": "<", "〉": ">", "【": "[", "】": "]",
    "％": "%", "►": "-",
}
_PUNCT_CLASS = "".join(re.escape(c) for c in UNICODE_PUNCT)
UNICODE_PUNCT_RE = re.compile(f"[{_PUNCT_CLASS}]")
_NON_PRINTING = "".join(map(chr, list(range(0, 32)) + list(range(127, 160))))
NON_PRINTING_CHARS_RE = re.compile(f"[{re.escape(_NON_PRINTING)}]")
PUNCT_OR_NON_PRINTING_RE = re.compile(f"[{_PUNCT_CLASS}{re.escape(_NON_PRINTING)}]")
DIGIT_RE = re.compile(r"\d")


def strip_accents(line: str) -> str:
    nfd = unicodedata.normalize("NFD", line)
    return "".join(c for c in nfd if unicodedata.category(c) != "Mn")


def replace_unicode_punct(text: str) -> str:
    return "".join(UNICODE_PUNCT.get(c, c) for c in text)


def normalize(line: str, accent: bool = True, case: bool = True, numbers: bool = True,
              punct: int = 1) -> str:
    """cc_net's normaliser, used before SentencePiece/KenLM scoring and LM training."""
    line = line.strip()
    if not line:
        return line
    if case:
        line = line.lower()
    if accent:
        line = strip_accents(line)
    if numbers:
        line = DIGIT_RE.sub("0", line)
    if punct == 1:
        line = replace_unicode_punct(line)
    elif punct == 2:
        line = UNICODE_PUNCT_RE.sub("", line)
    return NON_PRINTING_CHARS_RE.sub("", line)


def normalize_for_dedup(line: str) -> str:
    """strip, lower-case, digits -> 0, remove Unicode punctuation and non-printing chars."""
    line = line.strip()
    if not line:
        return line
    line = DIGIT_RE.sub("0", line.lower())
    return PUNCT_OR_NON_PRINTING_RE.sub("", line)


def line_hash(line: str) -> int:
    """cc_net's paragraph key: the first 8 bytes of the SHA-1 of the dedup-normalised line, read
    as a little-endian uint64 -- the integer cc_net's ``dedup.str_hash`` (``np.frombuffer(...,
    dtype=np.uint64)``) gives on the little-endian machines it runs on."""
    digest = hashlib.sha1(normalize_for_dedup(line).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")
