"""GitHub code filtering as RedPajama-1T ``data_prep/github`` does it, for LLaMA's GitHub
(togethercomputer/RedPajama-Data@f54b86f, the release; unchanged on branch ``rp_v1``:
``github_clean_dedup_local.py``,
``github_global_dedup.py``, ``github_run_filter.py``), in RedPajama's order:

* Licence: RedPajama takes MIT, BSD and Apache-2.0 repositories from BigQuery's licence
  field; here each repository's licence is detected from its LICENSE / COPYING / LICENCE
  files (any extension) when the input gives none.  Others (GPL/LGPL/AGPL/MPL/none) are
  dropped and counted.
* ``.crt`` files and a top-level ``LICENSE`` are skipped; exact dedup on the MD5 of the raw
  content, across the whole run (RedPajama: per chunk, then ``github_global_dedup``; it
  keeps the first copy it meets, here the smallest document id, so the choice is
  reproducible).
* ``clean_copyright_comments``, as released with the data (f54b86f): the first ``/* ... */``
  block anywhere in the file is removed if it mentions "copyright", and then nothing else
  is done; a file without such a block loses every leading line that starts with ``//``,
  ``#`` or ``--`` (no indentation), or is empty -- greedily, whatever it says, shebangs
  included ("most are copyright headers").  RedPajama's main branch later rewrote this
  (c09b93d, after RedPajama-1T was built); the data was made by the release.
* Statistics on the cleaned text (``get_filecontent_stats``): longest line, ``len(text) /
  number of lines`` (newlines counted, as RedPajama), share of alphanumeric characters.
* ``discard_record``: empty; path not ending with one of RedPajama's whitelist suffixes
  (case-sensitive, ``.C``/``.H`` included, ``Dockerfile``/``Makefile`` as suffixes);
  longest line > 1000; mean line length > 100; alphanumeric share < 0.25; alphabetic
  characters per token < 1.5.  The last counts tokens with the tokenizer LLaMA trains on
  (the LLaMA vocabulary, ``--tokenizer``) where RedPajama used Pythia's (GPT-NeoX BPE):
  LLaMA's splits every digit and has fewer whitespace-run pieces, so it gives code more
  tokens and this threshold drops somewhat more files than RedPajama's -- a deliberate
  choice (the issue's: the project's own tokenizer), measured in ``tests/reference``.
"""
from __future__ import annotations

import re

# RedPajama's extensions_whitelist, in its order (matched with str.endswith on the path)
WHITELIST = (".asm", ".bat", ".cmd", ".c", ".h", ".cs", ".cpp", ".hpp", ".c++", ".h++", ".cc", ".hh",
             ".C", ".H", ".cmake", ".css", ".dockerfile", ".f90", ".f", ".f03", ".f08", ".f77", ".f95",
             ".for", ".fpp", ".go", ".hs", ".html", ".java", ".js", ".jl", ".lua", ".md", ".markdown",
             ".php", ".php3", ".php4", ".php5", ".phps", ".phpt", ".pl", ".pm", ".pod", ".perl", ".ps1",
             ".psd1", ".psm1", ".py", ".rb", ".rs", ".sql", ".scala", ".sh", ".bash", ".command", ".zsh",
             ".ts", ".tsx", ".tex", ".vb", "Dockerfile", "Makefile", ".xml", ".rst", ".m", ".smali")
PERMISSIVE = {"mit", "bsd", "apache-2.0"}
MAX_LINE_LENGTH = 1000
MAX_AVG_LINE_LENGTH = 100
MIN_ALNUM_FRACTION = 0.25
MIN_ALPHA_PER_TOKEN = 1.5
LICENSE_FILE_RE = re.compile(r"^(licen[cs]e|copying)([.\-_].*)?$", re.IGNORECASE)

# Ordered: the first match wins (copyleft phrases before the permissive ones they quote).
_LICENSE_PATTERNS = [
    ("agpl", r"GNU AFFERO GENERAL PUBLIC LICENSE"),
    ("lgpl", r"GNU LESSER GENERAL PUBLIC LICENSE|GNU LIBRARY GENERAL PUBLIC LICENSE"),
    ("gpl", r"GNU GENERAL PUBLIC LICENSE"),
    ("mpl", r"Mozilla Public License"),
    ("apache-2.0", r"Apache License,?\s+Version 2\.0|www\.apache\.org/licenses/LICENSE-2\.0"),
    ("mit", r"Permission is hereby granted, free of charge, to any person obtaining a copy"),
    ("bsd", r"Redistribution and use in source and binary forms, with or without\s+modification"),
    ("unlicense", r"This is free and unencumbered software released into the public domain"),
]


def detect_license(text: str) -> str:
    """SPDX-like family of a licence file's text: mit, bsd, apache-2.0, gpl, ... or 'unknown'."""
    flat = re.sub(r"\s+", " ", text)
    # The title at the top decides first (GPL-3's body mentions the Affero licence).
    for scope in (flat[:600], flat):
        for name, pattern in _LICENSE_PATTERNS:
            if re.search(pattern, scope, re.IGNORECASE):
                return name
    return "unknown"


def is_license_file(name: str) -> bool:
    return bool(LICENSE_FILE_RE.match(name))


def extension_ok(path: str) -> bool:
    return path.endswith(WHITELIST)


def skip_reason(path: str) -> str | None:
    """RedPajama's ``preprocess_source`` skips certificates and the top-level LICENSE."""
    if path.endswith(".crt"):
        return "certificate"
    if path == "LICENSE":
        return "license_file"
    return None


_C_BLOCK = re.compile(r"/\*[^*]*\*+(?:[^/*][^*]*\*+)*/")
_COPYRIGHT = re.compile("copyright", re.IGNORECASE)


def clean_copyright_comments(content: str) -> str:
    """RedPajama's ``clean_copyright_comments`` as released (see the module docstring)."""
    m = _C_BLOCK.search(content)
    if m:
        if _COPYRIGHT.search(m.group(0)):
            content = content[:m.start()] + content[m.end():]
        return content
    lines = content.split("\n")
    skip = 0
    for line in lines:
        if line and not line.startswith(("//", "#", "--")):
            break
        skip += 1
    return "\n".join(lines[skip:]) if skip else content


def file_stats(content: str) -> dict:
    """RedPajama's ``get_filecontent_stats``."""
    lengths = [len(x) for x in content.splitlines()]
    if not lengths:
        return {"line_count": 0, "max_line_length": 0, "avg_line_length": 0, "alnum_prop": 0}
    return {"line_count": len(lengths), "max_line_length": max(lengths),
            "avg_line_length": len(content) / len(lengths),
            "alnum_prop": sum(c.isalnum() for c in content) / len(content)}


def discard_reason(text: str, path: str, count_tokens) -> str | None:
    """Why RedPajama's ``discard_record`` drops this (cleaned) file, or None to keep it;
    ``count_tokens(text)`` is the tokenizer's token count."""
    if not text:
        return "empty"
    if not extension_ok(path):
        return "extension"
    st = file_stats(text)
    if st["max_line_length"] > MAX_LINE_LENGTH:
        return "max_line_length"
    if st["avg_line_length"] > MAX_AVG_LINE_LENGTH:
        return "avg_line_length"
    if st["alnum_prop"] < MIN_ALNUM_FRACTION:
        return "alnum_fraction"
    if sum(c.isalpha() for c in text) / count_tokens(text) < MIN_ALPHA_PER_TOKEN:
        return "alpha_per_token"
    return None


class TokenCounter:
    """Token counts for the alpha-per-token rule: a HuggingFace ``tokenizer.json`` (the LLaMA
    vocabulary by default) or a SentencePiece ``.model`` (the project's own tokenizer);
    local or remote, staged once per machine."""

    def __init__(self, path: str):
        from core import fs

        local = fs.stage(path, "tokenizer")
        if path.endswith(".json"):
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(local)
            self.count = lambda text: len(tok.encode(text, add_special_tokens=False).ids)
        else:
            import sentencepiece as spm

            sp = spm.SentencePieceProcessor(model_file=local)
            self.count = lambda text: len(sp.encode(text))

    def __call__(self, text: str) -> int:
        return self.count(text)
