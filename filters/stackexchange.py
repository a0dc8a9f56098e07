"""StackExchange: Posts.xml streamed into question/answers documents (LLaMA / RedPajama).

A document is one question as RedPajama builds it
(togethercomputer/RedPajama-Data@45b37c2:data_prep/stack_exchange/filter.py and
post_processing.py): ``Q: <title> <body>`` then ``A: <body>`` for each answer, one per line,
sorted by score, highest first; HTML turned into text as its ``cleanhtml`` does (list items
as ``*`` lines, then BeautifulSoup's ``get_text`` with lxml, here computed from lxml's tree
directly).  Three documented fixes (``reference=True`` turns them off: byte-identical to
RedPajama's output on the shared site, ``tests/reference/test_redpajama_stackexchange_parity.py``):
scores sorted as numbers (RedPajama sorts the strings), ``<br>`` as a newline (its text
glues the words around it), no empty ``*`` line before each ordered list.
Sites whose name starts with ``meta.`` are excluded; the list of sites to keep is
configurable (``PAPER_SITES``: the 28 largest sites, as LLaMA used; default: all
non-meta sites, so that the bundled sample site is processed).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

from core.errors import InputError

# The 28 largest StackExchange sites by dump size (LLaMA: "the 28 largest websites").
PAPER_SITES = (
    "stackoverflow.com math.stackexchange.com superuser.com serverfault.com askubuntu.com "
    "electronics.stackexchange.com physics.stackexchange.com unix.stackexchange.com "
    "tex.stackexchange.com english.stackexchange.com gaming.stackexchange.com "
    "stats.stackexchange.com apple.stackexchange.com softwareengineering.stackexchange.com "
    "ell.stackexchange.com mathoverflow.net codereview.stackexchange.com gis.stackexchange.com "
    "dba.stackexchange.com salesforce.stackexchange.com wordpress.stackexchange.com "
    "mathematica.stackexchange.com scifi.stackexchange.com rpg.stackexchange.com "
    "diy.stackexchange.com travel.stackexchange.com academia.stackexchange.com "
    "worldbuilding.stackexchange.com"
).split()


MAX_ROW_BYTES = 16 << 20  # one post: StackExchange caps a body at 30,000 characters
ARCHIVE = ".7z"
SEVEN_Z_MAGIC = b"7z\xbc\xaf\x27\x1c"


def site_of(posts_path: str | Path) -> str:
    """The site of a ``<site>/Posts.xml`` or of a dump archive (``beer.stackexchange.com.7z``,
    ``stackoverflow.com-Posts.7z``)."""
    parts = str(posts_path).rstrip("/").split("/")
    name = parts[-1]
    if name.lower() == "posts.xml":
        return parts[-2] if len(parts) > 1 else ""
    if name.endswith(ARCHIVE):
        return name[: -len(ARCHIVE)].removesuffix("-Posts")
    return name.rsplit(".", 1)[0]


def is_posts_input(name: str) -> bool:
    return name.lower() == "posts.xml" or name.endswith(ARCHIVE)


def iter_archive_posts(path: str, skipped=None, max_row_bytes: int = MAX_ROW_BYTES) -> Iterator[dict]:
    """The posts of a site's ``.7z`` dump archive, as the data dump distributes them: the
    archive is copied to local scratch space, its ``Posts.xml`` extracted to disk and streamed
    (memory: one row; disk: the archive plus its Posts.xml)."""
    import py7zr

    from core import fs

    with fs.scratch_dir("llama-se-") as tmp:
        local = fs.join(tmp, "site.7z")
        fs.copy_file(path, local)
        try:
            with py7zr.SevenZipFile(local, "r") as z:
                member = next((n for n in z.getnames() if n.rsplit("/", 1)[-1].lower() == "posts.xml"), None)
                if member is None:
                    raise InputError(f"{path}: no Posts.xml in this archive")
                z.extract(path=tmp, targets=[member])
        except (py7zr.exceptions.Bad7zFile, py7zr.exceptions.ArchiveError, OSError) as e:
            raise InputError(f"{path}: not a readable 7z archive ({type(e).__name__}: {e})") from None
        yield from iter_posts(fs.join(tmp, member), max_row_bytes=max_row_bytes, skipped=skipped)


def is_meta(site: str) -> bool:
    return site.startswith("meta.") or ".meta." in site


UNIT_BYTES = 64 << 20


def post_units(path: str, unit_bytes: int = UNIT_BYTES) -> Iterator[tuple[str, int, int]]:
    """A Posts.xml as byte ranges (work units read in parallel); a row belongs to the range
    its line starts in.  The data dump writes one ``<row .../>`` per line (newlines inside
    bodies are escaped as ``&#xA;``), so a range is parsed line by line."""
    from core import fs

    size = fs.size(path)
    for start in range(0, max(size, 1), unit_bytes):
        yield path, start, (start + unit_bytes if start + unit_bytes < size else None)  # None: to the end


def iter_posts(path: str | Path, start: int = 0, end: int | None = None, max_row_bytes: int = MAX_ROW_BYTES,
               skipped=None) -> Iterator[dict]:
    """Question (PostTypeId 1) and answer (2) rows whose line starts in ``[start, end)``
    (default: the whole file); other post types are skipped.  Memory is one line: a row over
    ``max_row_bytes`` is skipped unread (``skipped()`` is called; expat would take minutes
    on one huge attribute)."""
    from core import fs

    path = str(path)
    try:
        f = fs.open_read(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    with f:
        if start:
            f.seek(start - 1)
            fs.bounded_line(f, max_row_bytes)  # to the first line that starts at or after `start`
        pos, last = f.tell(), b""
        while end is None or pos < end:
            line, n = fs.bounded_line(f, max_row_bytes)
            if line is None:
                pos += n
                if skipped is not None:
                    skipped()
                continue
            if not line:
                if last != b"</posts>":
                    raise InputError(f"{path}: malformed Posts.xml (truncated: it does not end with </posts>)")
                break
            pos += len(line)
            s = line.strip()
            if s:
                last = s
            if not s.startswith(b"<row"):
                continue
            try:
                elem = ET.fromstring(s)
            except ET.ParseError as e:
                raise InputError(f"{path}: malformed Posts.xml (row at byte {pos - len(line)}: {e})") from None
            if elem.get("PostTypeId") in ("1", "2"):
                yield dict(elem.attrib)


_ASCII_SPACES = frozenset("\x20\x0a\x09\x0c\x0d")
_PRESERVE = frozenset({"pre", "textarea"})           # BeautifulSoup keeps whitespace inside these
_NOT_TEXT = frozenset({"script", "style", "template", "rt", "rp"})  # its non-text string containers
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_HTML_PARSER = None


def _soup_strings(el, preserve: bool):
    """The strings BeautifulSoup's ``get_text()`` joins, from lxml's tree of the same markup
    (BeautifulSoup's "lxml" builder is fed by this parser): every text and tail, a
    whitespace-only one collapsed to "\\n" (if it holds one) or " " outside ``pre``/``textarea``,
    none inside script/style/template/rt/rp, none of comments or processing instructions."""
    tag = el.tag if isinstance(el.tag, str) else None
    if tag is not None and tag not in _NOT_TEXT:
        inner = preserve or tag in _PRESERVE
        yield _collapse(el.text, inner)
        for child in el:
            yield from _soup_strings(child, inner)
            yield _collapse(child.tail, inner)


def _collapse(s: str | None, preserve: bool) -> str:
    if not s:
        return ""
    if not preserve and all(c in _ASCII_SPACES for c in s):
        return "\n" if "\n" in s else " "
    return s


def get_text(html: str) -> str:
    """``BeautifulSoup(html, "lxml").get_text()``, computed with lxml alone (~7x faster)."""
    global _HTML_PARSER
    import lxml.etree

    if not html or not html.strip():
        return ""
    if _HTML_PARSER is None:
        _HTML_PARSER = lxml.etree.HTMLParser()
    try:
        root = lxml.etree.fromstring(html, _HTML_PARSER)
    except lxml.etree.ParserError:  # nothing but markup lxml drops
        return ""
    return "" if root is None else "".join(_soup_strings(root, False))


def html_to_text(html: str, reference: bool = False) -> str:
    """RedPajama's ``cleanhtml``: list items become ``"\\n*"`` lines, then BeautifulSoup's text.
    Two fixes unless ``reference``: ``<br>`` becomes a newline (its text would glue the words
    on both sides of it), and ``<ol>`` no longer adds an empty ``*`` line before its items."""
    html = html.replace("<li>", "\n*").replace("</li>", "")
    html = html.replace("<ol>", "\n*" if reference else "").replace("</ol>", "")
    if not reference:
        html = _BR.sub("\n", html)
    return get_text(html)


def format_question(question: dict, answers: list[dict], reference: bool = False) -> tuple[str, list[dict]]:
    """The Q/A text and the answers in output order, as RedPajama's ``post_processing.py``:
    ``Q: <title> <body>`` then ``\\nA: <answer>`` per answer, highest score first.  Fixed unless
    ``reference``: RedPajama sorts the scores as strings (so "9" ranks above "10", "-1"
    above "0"); here as numbers, ties in dump order (by Id)."""
    if reference:
        ordered = sorted(answers, key=lambda a: a.get("Score", "0"), reverse=True)
    else:
        ordered = sorted(answers, key=lambda a: (-_int(a.get("Score")), _int(a.get("Id"))))
    text = "Q: " + html_to_text(f"{question.get('Title', '')} {question.get('Body', '')}", reference)
    if ordered:
        text += "\nA: " + "\nA: ".join(html_to_text(a.get("Body", ""), reference) for a in ordered)
    return text, ordered


def _int(s) -> int:
    try:
        return int(s)
    except (TypeError, ValueError):
        return 0
