"""ArXiv LaTeX cleaning as the LLaMA paper describes it ("we removed everything before the
first section, as well as the bibliography.  We also removed the comments from the .tex
files, and inline-expanded definitions and macros written by users"), after RedPajama's
cleaner (togethercomputer/RedPajama-Data@45b37c2:data_prep/arxiv/arxiv_cleaner.py) with
its bugs fixed.  ``clean_paper_reference`` is RedPajama's cleaner exactly, bugs included
(``llama arxiv --reference``; byte-identical on the shared papers,
``tests/reference/test_redpajama_arxiv_parity.py``).

For one paper (a directory, a ``.tar.gz``/``.tar`` or a gzipped single ``.tex``):

1. every ``.tex`` file is decoded as UTF-8; a file that is not valid UTF-8 is counted
   (``decode_fallbacks``, never dropped) and decoded by ``filters.decode``: UTF-8 with each
   bad byte replaced, or Latin-1 when the file is evidently 8-bit -- one stray byte costs one
   character, not every accent of the paper (``--reference`` drops such papers, as RedPajama);
2. comments are removed: full comment lines disappear, inline ``%...`` is cut; ``\\%`` is
   text, not a comment, and so is a ``%`` inside verbatim/lstlisting/minted environments;
3. the main file (the one with ``\\documentclass``) has ``\\input``/``\\include`` followed
   recursively (missing files are noted);
4. user macros from ``\\newcommand``, ``\\renewcommand``, ``\\providecommand`` and ``\\def``
   anywhere in the paper, **including macros with arguments** and an optional first
   argument, are collected and their definitions removed;
5. everything before the first sectioning command is removed (as RedPajama);
6. the bibliography is removed (``thebibliography``/``references`` environments,
   ``\\bibliography{}``, ``\\bibliographystyle{}``) and everything after ``\\end{document}``;
7. macros are expanded inline, repeatedly, so macros using macros resolve;
8. runs of blank lines (left where definitions and comments were) become one blank line.

Where RedPajama's cleaner computes something else, and why (each asserted on the shared
papers by the parity test):

* It cleans each file on its own, in archive order, and a file without a section header
  becomes "": the content of ``\\input`` files is lost (celerite's tables) and the
  order is the tarball's, not the document's.  Here the files are inlined where they are input.
* Its "first section" is the first match of ``\\section{`` anywhere, including inside a
  definition such as ``\\renewcommand\\section{...}`` (celerite's text then starts with
  preamble macro definitions); ``\\paragraph`` alone never counts (its pattern lacks a
  ``|`` between ``paragraph`` and ``subparagraph``).  Here definitions are taken out first.
* It cuts *everything* after ``\\appendix``; the paper removes the bibliography only, and
  appendices are real content: kept here.  (It also cuts everything after the bibliography,
  so an appendix after it, as emcee's, is lost too.)
* Its inline-comment regex ``[^\\\\]%.+$`` also deletes the character before the ``%``.
* It expands argument-less macros only (the paper says "macros written by users"), with
  ``re.sub`` and the body as the replacement: a body with a non-ASCII character raises
  "bad escape" and the whole paper is dropped; a paper with a non-UTF-8 file is dropped too.
* Definitions after the first section stay in its text; here every definition is removed.

Macros that cannot be expanded safely are left as they are: names or bodies with ``@``
(LaTeX internals), redefinitions of sectioning and environment commands, and ``\\def`` with
delimited parameters.
"""
from __future__ import annotations

import gzip
import io
import zlib
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from core.errors import InputError

SECTIONING = ("part", "chapter", "section", "subsection", "subsubsection", "paragraph", "subparagraph")
_FIRST_SECTION_RE = re.compile(r"\\(?:%s)\*?\s*[\[{]" % "|".join(SECTIONING))
_PROTECTED = set(SECTIONING) | {"begin", "end", "input", "include", "item", "label", "ref",
                                "cite", "documentclass", "usepackage"}
_INCLUDE_RE = re.compile(r"\\(input|include)\s*(?:\{([^}]*)\}|\s+([^\s\\{}]+))")
_DEF_START_RE = re.compile(r"\\(newcommand|renewcommand|providecommand|DeclareRobustCommand)\*?"
                           r"|\\(?:long\s*\\|global\s*\\)*(?:g|e|x)?def(?![A-Za-z])")


@dataclass
class Macro:
    name: str
    nargs: int
    default: str | None
    body: str


@dataclass
class CleanReport:
    files: int = 0
    decode_fallbacks: list[str] = field(default_factory=list)
    missing_includes: list[str] = field(default_factory=list)
    macros: int = 0
    macros_skipped: int = 0
    expansions: int = 0


# ------------------------------------------------------------------ loading

def _decode(data: bytes, name: str, report: CleanReport) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        from .decode import decode_text

        report.decode_fallbacks.append(name)
        return decode_text(data).text


def load_paper(path: str | Path, report: CleanReport | None = None, limits: Limits | None = None) -> dict[str, str]:
    """{relative path: decoded text} of the paper's .tex files: a directory, a ``.tar.gz``/
    ``.tar``/``.gz``/``.tex`` file (local or remote)."""
    from core import fs

    report = report if report is not None else CleanReport()
    limits = limits or Limits()
    path = str(path)
    if fs.isdir(path):
        tex = fs.list_files(path, (".tex",))
        if sum(fs.size(f) for f in tex) > limits.max_tex_bytes:
            raise PaperTooLarge("tex_too_large", f"{path}: over {limits.max_tex_bytes >> 20} MB of .tex")
        raw = {fs.relpath(f, path): fs.read_bytes(f) for f in tex}
        if not raw:
            raise InputError(f"{path}: no .tex files in this paper")
        report.files = len(raw)
        return {k: _decode(v, f"{fs.basename(path)}/{k}", report) for k, v in raw.items()}
    if not fs.isfile(path):
        raise InputError(f"{path}: no such file or directory")
    if fs.size(path) > limits.max_scan_bytes:
        raise PaperTooLarge("archive_too_large", f"{path}: over {limits.max_scan_bytes >> 20} MB")
    return load_paper_bytes(path, fs.read_bytes(path), report, limits.max_tex_bytes, limits.max_scan_bytes)


class PaperTooLarge(Exception):
    """A paper past a size limit (a decompression bomb, a macro fan-out): skipped and counted."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


MAX_TEX_BYTES = 64 << 20        # decompressed .tex bytes per paper
MAX_SCAN_BYTES = 2 << 30        # decompressed bytes read from one paper's archive (figures included)
MAX_MACRO_GROWTH = 20           # expanded text <= 20x the text before expansion (or 4 MB)
MAX_EXPANSIONS = 1_000_000      # macro expansions per paper


@dataclass(frozen=True)
class Limits:
    """Per-paper caps (``llama arxiv --max-paper-mb --max-tex-mb --max-macro-growth``)."""
    max_tex_bytes: int = MAX_TEX_BYTES
    max_scan_bytes: int = MAX_SCAN_BYTES
    max_growth: int = MAX_MACRO_GROWTH
    max_expansions: int = MAX_EXPANSIONS


class _Capped(io.RawIOBase):
    """A stream that raises ``PaperTooLarge`` past ``cap`` bytes (decompressed, when it wraps
    a ``GzipFile``): an archive is never inflated past the cap, in memory or otherwise."""

    def __init__(self, raw, cap: int, name: str):
        self.raw, self.cap, self.name, self.n = raw, cap, name, 0

    def readable(self):
        return True

    def readinto(self, b):
        data = self.raw.read(len(b))
        self.n += len(data)
        if self.n > self.cap:
            raise PaperTooLarge("archive_too_large", f"{self.name}: inflates past {self.cap >> 20} MB")
        b[:len(data)] = data
        return len(data)


def load_paper_bytes(name: str, data: bytes, report: CleanReport | None = None,
                     max_tex_bytes: int = MAX_TEX_BYTES, max_scan_bytes: int = MAX_SCAN_BYTES) -> dict[str, str]:
    """The same from a paper's bytes (an arXiv source file: gzipped tar, gzipped .tex, tar or
    .tex), e.g. a member of a bulk ``arXiv_src_*.tar``; ``name`` is used in messages.  Read as
    a stream: at most ``max_scan_bytes`` decompressed bytes are read and at most
    ``max_tex_bytes`` of .tex kept (``PaperTooLarge`` past either)."""
    report = report if report is not None else CleanReport()
    base = PurePosixPath(name.rstrip("/").rsplit("/", 1)[-1])
    raw: dict[str, bytes] = {}

    def stream():
        f = io.BytesIO(data)
        return _Capped(gzip.GzipFile(fileobj=f) if data[:2] == b"\x1f\x8b" else f, max_scan_bytes, name)

    try:
        head = io.BufferedReader(stream()).read(512)
        if _is_tar(head):
            kept = 0
            with tarfile.open(fileobj=io.BufferedReader(stream()), mode="r|") as tar:
                for m in tar:
                    if m.isfile() and m.name.endswith(".tex"):
                        kept += m.size
                        if kept > max_tex_bytes:
                            raise PaperTooLarge("tex_too_large", f"{name}: over {max_tex_bytes >> 20} MB of .tex")
                        raw[m.name.lstrip("./")] = tar.extractfile(m).read()
        else:
            body = io.BufferedReader(stream()).read(max_tex_bytes + 1)
            if len(body) > max_tex_bytes:
                raise PaperTooLarge("tex_too_large", f"{name}: over {max_tex_bytes >> 20} MB of .tex")
            raw[base.name.removesuffix(".gz") if base.name.endswith(".tex.gz") else "main.tex"] = body
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(f"{name}: corrupt gzip ({e})") from None
    except tarfile.TarError as e:
        raise InputError(f"{name}: corrupt tar archive ({e})") from None
    if not raw:
        raise InputError(f"{name}: no .tex files in this paper")
    report.files = len(raw)
    return {k: _decode(v, f"{base.name}/{k}", report) for k, v in raw.items()}


def _is_tar(data: bytes) -> bool:
    return len(data) >= 262 and data[257:262] == b"ustar"


def main_file(files: dict[str, str]) -> str:
    cands = [k for k, v in files.items() if re.search(r"^[^%\n]*\\documentclass", v, re.M)]
    cands = cands or [k for k, v in files.items() if "\\begin{document}" in v]
    cands = cands or list(files)
    return max(cands, key=lambda k: (Path(k).stem in ("ms", "main", "paper"), len(files[k])))


# ------------------------------------------------------------------ comments

_VERBATIM_RE = re.compile(r"\\(begin|end)\{(verbatim|Verbatim|lstlisting|minted|comment)\*?\}")


def strip_comments(text: str) -> str:
    """Remove comments; lines inside verbatim-like environments are kept as they are."""
    out, verbatim = [], None
    for line in text.split("\n"):
        if verbatim:
            out.append(line)
            m = _VERBATIM_RE.search(line)
            if m and m.group(1) == "end" and m.group(2) == verbatim:
                verbatim = None
            continue
        i = _comment_start(line)
        m = _VERBATIM_RE.search(line if i is None else line[:i])
        if m and m.group(1) == "begin" and not re.search(r"\\end\{%s\}" % m.group(2), line):
            verbatim = m.group(2)
        if i is None:
            out.append(line)
        elif line[:i].strip() == "":
            continue  # a full comment line disappears
        else:
            out.append(line[:i].rstrip())
    return "\n".join(out)


def _comment_start(line: str) -> int | None:
    i = line.find("%")
    while i >= 0:
        backslashes = len(line[:i]) - len(line[:i].rstrip("\\"))
        if backslashes % 2 == 0:
            return i
        i = line.find("%", i + 1)
    return None


# ------------------------------------------------------------------ includes

def resolve_includes(files: dict[str, str], name: str, report: CleanReport, _stack=()) -> str:
    text = files[name]
    base = str(Path(name).parent)

    def repl(m):
        target = (m.group(2) or m.group(3) or "").strip()
        key = _find_file(files, target, base)
        if key is None:
            report.missing_includes.append(target)
            return ""
        if key in _stack or key == name:
            return ""
        return resolve_includes(files, key, report, _stack + (name,))

    return _INCLUDE_RE.sub(repl, text)


def _find_file(files, target, base):
    for cand in (target, target + ".tex", str(Path(base) / target), str(Path(base) / (target + ".tex"))):
        cand = str(Path(cand)).lstrip("./")
        if cand in files:
            return cand
    return None


# ------------------------------------------------------------------ macros

def _group(text: str, i: int) -> tuple[str, int] | None:
    """Balanced ``{...}`` at i (content, index after), or a single token."""
    n = len(text)
    while i < n and text[i] in " \t\n":
        i += 1
    if i >= n:
        return None
    if text[i] == "{":
        depth, j = 0, i
        while j < n:
            c = text[j]
            if c == "\\":
                j += 2
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1:j], j + 1
            j += 1
        return None
    if text[i] == "\\":
        m = re.match(r"\\([A-Za-z@]+|.)", text[i:])
        return m.group(0), i + len(m.group(0))
    if text[i] == "}":
        return None
    return text[i], i + 1


def _bracket(text: str, i: int) -> tuple[str, int] | None:
    j = i
    while j < len(text) and text[j] in " \t":
        j += 1
    if j < len(text) and text[j] == "[":
        k = text.find("]", j)
        if k > 0:
            return text[j + 1:k], k + 1
    return None


def extract_macros(text: str, report: CleanReport) -> tuple[dict[str, Macro], str]:
    """Collect macro definitions and return (macros, text without the definitions)."""
    macros: dict[str, Macro] = {}
    out, pos = [], 0
    for m in _DEF_START_RE.finditer(text):
        if m.start() < pos:
            continue
        parsed = _parse_def(text, m)
        if parsed is None:
            continue
        macro, end = parsed
        out.append(text[pos:m.start()])
        pos = end
        if macro is None:
            report.macros_skipped += 1
            continue
        macros[macro.name] = macro
    out.append(text[pos:])
    report.macros = len(macros)
    return macros, "".join(out)


def _parse_def(text: str, m) -> tuple[Macro | None, int] | None:
    i = m.end()
    if m.group(1):  # \newcommand family
        g = _group(text, i)
        if g is None:
            return None
        name, i = g
        name = name.strip()
        nargs, default = 0, None
        b = _bracket(text, i)
        if b:
            if not b[0].strip().isdigit():
                return None
            nargs, i = int(b[0]), b[1]
            b = _bracket(text, i)
            if b:
                default, i = b
    else:  # \def\name#1#2{...}
        mm = re.match(r"\s*(\\(?:[A-Za-z@]+|.))", text[i:])
        if not mm:
            return None
        name, i = mm.group(1), i + mm.end()
        params = re.match(r"((?:#\d)*)\s*\{", text[i:])
        if not params:  # delimited parameters: remove nothing, expand nothing
            return None
        nargs, default = len(params.group(1)) // 2, None
        i += len(params.group(1))
    body = _group(text, i)
    if body is None or not name.startswith("\\"):
        return None
    body_text, end = body
    bare = name[1:]
    safe = (re.fullmatch(r"[A-Za-z]+", bare) and bare not in _PROTECTED and "@" not in body_text
            and not _DEF_START_RE.search(body_text) and "\\let" not in body_text)
    return (Macro(bare, nargs, default, body_text) if safe else None), end


def expand_macros(text: str, macros: dict[str, Macro], report: CleanReport, max_passes: int = 10,
                  max_growth: int = MAX_MACRO_GROWTH, max_expansions: int = MAX_EXPANSIONS) -> str:
    """Expand user macros inline, pass after pass (macros using macros), at most
    ``max_passes``; a paper whose text would grow past ``max_growth`` times its size (or
    4 MB) or take more than ``max_expansions`` expansions raises ``PaperTooLarge`` (macros
    that fan out: 12 nested macros each using the next 10 times)."""
    if not macros:
        return text
    limit = max(max_growth * len(text), 4 << 20)
    pattern = re.compile(r"\\(%s)(?![A-Za-z@])" % "|".join(sorted(map(re.escape, macros), key=len, reverse=True)))
    for _ in range(max_passes):
        out, pos, changed, size = [], 0, False, 0
        for m in pattern.finditer(text):
            if m.start() < pos:
                continue
            mac = macros[m.group(1)]
            i, args = m.end(), []
            if mac.default is not None:
                b = _bracket(text, i)
                if b:
                    args.append(b[0])
                    i = b[1]
                else:
                    args.append(mac.default)
            ok = True
            while len(args) < mac.nargs:
                g = _group(text, i)
                if g is None:
                    ok = False
                    break
                args.append(g[0])
                i = g[1]
            if not ok:
                continue
            body = mac.body
            for k in range(mac.nargs, 0, -1):
                body = body.replace(f"#{k}", args[k - 1])
            # keep a following letter from gluing onto a control word: \foo bar -> body bar
            out.append(text[pos:m.start()])
            out.append(body)
            size += m.start() - pos + len(body)
            pos, changed = i, True
            report.expansions += 1
            if size > limit or report.expansions > max_expansions:
                raise PaperTooLarge("macro_expansion_limit",
                                    f"macros expand past {'%d expansions' % max_expansions if size <= limit else '%d MB' % (limit >> 20)}")
        out.append(text[pos:])
        text = "".join(out)
        if not changed:
            break
    return text


# ------------------------------------------------------------------ structure

_BIB_ENV_RE = re.compile(r"\\begin\{(thebibliography|references|REFERENCES)\}.*?\\end\{\1\}", re.S)
_BIB_CMD_RE = re.compile(r"\\(bibliography|bibliographystyle)\s*\{[^}]*\}")


def remove_bibliography(text: str) -> str:
    text = _BIB_ENV_RE.sub("", text)
    text = _BIB_CMD_RE.sub("", text)
    end = text.find("\\end{document}")
    return text[:end] if end >= 0 else text


def remove_preamble(text: str) -> str | None:
    m = _FIRST_SECTION_RE.search(text)
    return text[m.start():] if m else None


def clean_paper(files: dict[str, str], report: CleanReport | None = None, limits: Limits | None = None) -> str | None:
    """The cleaned text of a paper, or None if it has no sectioning command."""
    report = report if report is not None else CleanReport()
    files = {k: strip_comments(v) for k, v in files.items()}
    text = resolve_includes(files, main_file(files), report)
    macros, text = extract_macros(text, report)
    text = remove_preamble(text)
    if text is None:
        return None
    text = remove_bibliography(text)
    limits = limits or Limits()
    text = expand_macros(text, macros, report, max_growth=limits.max_growth, max_expansions=limits.max_expansions)
    return re.sub(r"\n\s*\n(\s*\n)+", "\n\n", text).strip()


# ------------------------------------------------------------------ RedPajama, exactly

class ReferenceFailure(Exception):
    """Where RedPajama's ``create_record`` catches an exception and drops the paper."""


_RP_HEADER = "".join(
    [r"^(.*?)("]
    + [r"\\\b%s\b\*?(?:\[(.*?)\])?\{(.*?)\}|" % s for s in ("chapter", "part", "section", "subsection")]
    + [r"\\\bsubsubsection\b\*?(?:\[(.*?)\])?\{(.*?)\}|",
       # RedPajama's pattern has no "|" here, so \paragraph only counts when \subparagraph follows it
       r"\\\bparagraph\b\*?(?:\[(.*?)\])?\{(.*?)\}",
       r"\\\bsubparagraph\b\*?(?:\[(.*?)\])?\{(.*?)\}",
       r")"])
_RP_HEADER_RE = re.compile(_RP_HEADER, re.DOTALL)
_RP_LINE_COMMENT_RE = re.compile(r"(?m)^%.*\n?", re.MULTILINE)
_RP_INLINE_COMMENT_RE = re.compile(r"[^\\]%.+$", re.MULTILINE)
_RP_TAIL_RE = re.compile(r"(\\appendix|\\begin\{references\}|\\begin\{REFERENCES\}|"
                         r"\\begin\{thebibliography\}|\\bibliography\{.*\}).*$", re.DOTALL)
_RP_NEWCOMMAND_RE = re.compile(r"\\\bnewcommand\b\*?\{(\\[a-zA-Z0-9]+?)\}\{(.*?)\}$", re.MULTILINE)
_RP_DEF_RE = re.compile(r"\\def\s*(\\[a-zA-Z0-9]+?)\s*\{(.*?)\}$", re.MULTILINE)


def _rp_escaped(s: str) -> str:
    return s.encode("unicode-escape").decode("utf-8")


def clean_paper_reference(files: list[str]) -> str:
    """RedPajama's ``clean_tex_files`` (togethercomputer/RedPajama-Data@45b37c2:
    data_prep/arxiv/arxiv_cleaner.py), bugs included, for the parity suite and for users who
    want RedPajama's ArXiv exactly (``llama arxiv --reference``): each file, in archive order,
    cut to start at its first section-like header ("" if it has none: an ``\\input`` file
    without one is lost), line comments removed, then ``[^\\\\]%.+$`` (which also takes the
    character before the ``%``), then everything from the first ``\\appendix`` or bibliography
    to the end; argument-less ``\\newcommand``/``\\def`` macros of every file expanded with
    ``re.sub``; the files joined with newlines.  Raises ``ReferenceFailure`` where RedPajama's
    code raises (a macro body with a non-ASCII character is a "bad escape" in ``re.sub``),
    i.e. where it drops the paper."""
    if not files:
        return ""
    macros: dict[str, str] = {}
    for text in files:
        for reg in (_RP_NEWCOMMAND_RE, _RP_DEF_RE):
            for m in reg.finditer(text):
                macros[_rp_escaped(m.group(1))] = _rp_escaped(m.group(2))
    out = []
    for text in files:
        if not _RP_HEADER_RE.search(text):
            out.append("")
            continue
        text = _RP_HEADER_RE.sub(r"\2", text)
        text = _RP_LINE_COMMENT_RE.sub("", text)
        text = _RP_INLINE_COMMENT_RE.sub("", text)
        text = _RP_TAIL_RE.sub("", text)
        for name, value in macros.items():
            try:
                text = re.sub("(" + name + ")([^a-zA-Z0-9])", value + r"\2", text)
            except re.error as e:
                raise ReferenceFailure(f"macro {name}: {e}") from None
        out.append(text)
    return "\n".join(out)
