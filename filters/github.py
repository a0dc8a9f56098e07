"""GitHub code filtering as in LLaMA / RedPajama-1T ``data_prep/github``.

* Licence: each repository's licence is detected from its LICENSE / COPYING /
  LICENCE files (any extension); only MIT, BSD and Apache-2.0 repositories are kept.
  GPL/LGPL/AGPL/MPL/other and repositories with no licence file are dropped and counted.
* Files: RedPajama's extension whitelist; drop files whose longest line is over 1000
  characters, whose average line length is over 100, or whose fraction of
  alphanumeric characters is under 0.25.
* A leading licence/copyright header comment (``/* ... */`` block or a run of
  ``//``/``#``/``--``/``;`` line comments mentioning copyright, licence or permission)
  is stripped, as LLaMA's paper describes ("boilerplate such as headers").
* Exact dedup on the SHA-256 of the content, across the whole run (pipeline side).
"""
from __future__ import annotations

import re

EXTENSIONS = {
    ".asm", ".bat", ".cmd", ".c", ".h", ".cs", ".cpp", ".hpp", ".c++", ".h++", ".cc", ".hh",
    ".cmake", ".css", ".dockerfile", ".f90", ".f", ".f03", ".f08", ".f77", ".f95", ".for", ".fpp",
    ".go", ".hs", ".html", ".java", ".js", ".jl", ".lua", ".md", ".markdown", ".php", ".php3",
    ".php4", ".php5", ".phps", ".phpt", ".pl", ".pm", ".pod", ".perl", ".ps1", ".psd1", ".psm1",
    ".py", ".rb", ".rs", ".sql", ".scala", ".sh", ".bash", ".command", ".zsh", ".ts", ".tsx",
    ".tex", ".vb", ".xml", ".rst", ".m", ".smali",
}
FILENAMES = {"Dockerfile", "Makefile"}
PERMISSIVE = {"mit", "bsd", "apache-2.0"}
MAX_LINE_LENGTH = 1000
MAX_AVG_LINE_LENGTH = 100
MIN_ALNUM_FRACTION = 0.25
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
    name = path.rsplit("/", 1)[-1]
    if name in FILENAMES:
        return True
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in EXTENSIONS


def quality_reason(content: str) -> str | None:
    """Why RedPajama's heuristics drop this file, or None to keep it."""
    lines = content.splitlines() or [""]
    lengths = [len(x) for x in lines]
    if max(lengths) > MAX_LINE_LENGTH:
        return "max_line_length"
    if sum(lengths) / len(lengths) > MAX_AVG_LINE_LENGTH:
        return "avg_line_length"
    if not content or sum(c.isalnum() for c in content) / len(content) < MIN_ALNUM_FRACTION:
        return "alnum_fraction"
    return None


_HEADER_WORDS = re.compile(r"copyright|licen[cs]e|permission is hereby|all rights reserved|spdx",
                           re.IGNORECASE)
_LINE_COMMENT = re.compile(r"^\s*(//|#|--|;|%)")


def strip_license_header(content: str) -> str:
    """Remove a leading licence/copyright comment; other leading comments are kept."""
    text = content.lstrip("\ufeff")
    lead = len(text) - len(text.lstrip())
    body = text[lead:]
    if body.startswith("/*"):
        end = body.find("*/")
        if end > 0 and _HEADER_WORDS.search(body[:end]):
            return body[end + 2:].lstrip("\r\n")
        return content
    lines = body.splitlines(keepends=True)
    n = 0
    if lines and lines[0].startswith("#!"):
        n = 1  # keep a shebang line
    start = n
    while n < len(lines) and _LINE_COMMENT.match(lines[n]) and not lines[n].lstrip().startswith("#!"):
        n += 1
    block = "".join(lines[start:n])
    if n > start and _HEADER_WORDS.search(block):
        return "".join(lines[:start] + lines[n:]).lstrip("\r\n")
    return content
