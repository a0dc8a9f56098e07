"""Streaming MediaWiki XML dump reader and wikitext cleaning.

The dump is parsed incrementally (``iterparse``; elements are cleared as soon as
a page is done), so memory does not grow with the dump.  The XML encoding comes
from the document itself, so UTF-16 dumps (the Bulgarian sample) work.  The
language is the dump's ``dbname`` (``enwiki`` -> ``en``).

Cleaning follows the HuggingFace ``wikipedia`` builder: remove file/image/
category links, ``<ref>``/``<table>`` tags and the reference-list templates,
then ``strip_code`` (which keeps link text and drops other templates and
comments).  Fix over the builder: it removes nodes while iterating the filter
generator, which skips the sibling after each removed node (so every other
``<ref>`` survived); here the nodes are collected first, then removed.  Difference: the builder only knows the English namespace names plus
a hard-coded alias table; here the File/Category names (and their aliases) are
read from the dump's own ``<siteinfo>``, so every language is covered.
"""
from __future__ import annotations

import bz2
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Iterator

from .errors import InputError

LLAMA_WIKI_LANGS = ("bg ca cs da de en es fr hr hu it nl pl pt ro ru sl sr sv uk").split()
_REF_TEMPLATES = {"reflist", "notelist", "notelist-ua", "notelist-lr", "notelist-ur",
                  "notelist-lg", "references"}
_ALWAYS_DROP_PREFIXES = ("File", "Image", "Media", "Category")


@dataclass
class WikiPage:
    page_id: str
    title: str
    ns: int
    redirect: bool
    text: str
    lang: str
    dbname: str


def _open(path: str):
    """The dump's XML bytes (local or gs://), decompressed by signature (bz2, gzip)."""
    from core import fs

    return fs.open_decompressed(path)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class DumpInfo:
    def __init__(self):
        self.dbname = ""
        self.drop_prefixes: set[str] = {p.lower() for p in _ALWAYS_DROP_PREFIXES}

    @property
    def lang(self) -> str:
        return self.dbname[:-4] if self.dbname.endswith("wiki") else self.dbname


UNIT_BYTES = 32 << 20


def index_of(dump: str) -> str | None:
    """The ``-index.txt.bz2`` beside a ``...-multistream.xml.bz2`` dump (Wikimedia's naming)."""
    name = dump.rstrip("/")
    if "multistream" not in name.rsplit("/", 1)[-1] or not name.endswith(".xml.bz2"):
        return None
    return name[: -len(".xml.bz2")] + "-index.txt.bz2"


def is_index(path: str) -> bool:
    return path.endswith(("-index.txt.bz2", "-index.txt"))


def dump_units(path: str, unit_bytes: int = UNIT_BYTES) -> Iterator[tuple]:
    """A dump as work units.  A multistream dump with its index is cut at bz2 stream
    boundaries (the index's offsets) into units of about ``unit_bytes`` compressed bytes,
    each ``(path, (header_end, start, end))``; any other dump is one unit ``(path, None)``,
    read in one streaming pass with constant memory."""
    from core import fs

    idx = index_of(path)
    if not idx or not fs.isfile(idx):
        yield path, None
        return
    offsets = sorted({int(line.split(":", 1)[0]) for line in fs.iter_lines(idx) if line})
    if not offsets:
        yield path, None
        return
    header_end = start = offsets[0]  # the first stream holds <mediawiki> and <siteinfo> only
    for off in offsets[1:]:
        if off - start >= unit_bytes:
            yield path, (header_end, start, off)
            start = off
    yield path, (header_end, start, None)  # the last unit runs to the end (with </mediawiki>)


class _Chain(io.RawIOBase):
    def __init__(self, parts):
        self.parts = list(parts)

    def readable(self):
        return True

    def readinto(self, b):
        while self.parts:
            part = self.parts[0]
            data = part.read(len(b)) if hasattr(part, "read") else part
            if isinstance(part, bytes):
                self.parts[0] = data[len(b):]
                data = data[:len(b)]
                if not self.parts[0]:
                    self.parts.pop(0)
            elif not data:
                self.parts.pop(0)
                continue
            b[:len(data)] = data
            return len(data)
        return 0


def _open_unit(path: str, unit: tuple):
    """One unit of a multistream dump as a well-formed XML stream: the dump's header (its
    first bz2 stream, up to ``</siteinfo>``), the unit's streams decompressed, ``</mediawiki>``."""
    from core import fs

    header_end, start, end = unit
    with fs.open_read(path) as raw:
        head = bz2.decompress(raw.read(header_end))
        raw.seek(start)
        body = raw.read(end - start) if end is not None else raw.read()
    cut = head.find(b"</siteinfo>")
    head = head[: cut + len(b"</siteinfo>")] if cut >= 0 else head
    parts = [head, bz2.BZ2File(io.BytesIO(body))] + ([b"</mediawiki>"] if end is not None else [])
    return io.BufferedReader(_Chain(parts), buffer_size=1 << 20)


def iter_pages(path: str, info: DumpInfo | None = None, unit: tuple | None = None) -> Iterator[WikiPage]:
    """All pages of a dump, or of one unit of a multistream dump (``dump_units``); every
    namespace, redirects flagged; streamed (parsed pages are cleared as they go)."""
    info = info if info is not None else DumpInfo()
    try:
        f = _open(path) if unit is None else _open_unit(path, unit)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    with f:
        try:
            context = ET.iterparse(f, events=("start", "end"))
            root = None
            page: dict = {}
            for event, elem in context:
                tag = _local(elem.tag)
                if root is None:
                    root = elem
                    if tag != "mediawiki":
                        raise InputError(f"{path}: not a MediaWiki XML dump (root <{tag}>)")
                if event == "start":
                    if tag == "page":
                        page = {"redirect": False}
                    continue
                if tag == "dbname":
                    info.dbname = (elem.text or "").strip()
                elif tag == "namespace" and elem.get("key") in ("6", "14") and elem.text:
                    info.drop_prefixes.add(elem.text.strip().lower())
                elif tag == "title":
                    page["title"] = elem.text or ""
                elif tag == "ns":
                    page["ns"] = int(elem.text or 0)
                elif tag == "id" and "id" not in page:
                    page["id"] = elem.text or ""
                elif tag == "redirect":
                    page["redirect"] = True
                elif tag == "text":
                    page["text"] = elem.text or ""
                elif tag == "page":
                    yield WikiPage(page.get("id", ""), page.get("title", ""), page.get("ns", 0),
                                   page["redirect"], page.get("text", ""), info.lang, info.dbname)
                    root.clear()
                elif tag == "siteinfo":
                    root.clear()
        except ET.ParseError as e:
            raise InputError(f"{path}: malformed XML ({e})") from None
        except (OSError, EOFError) as e:
            raise InputError(f"{path}: cannot decompress ({e})") from None


def clean_wikitext(raw: str, drop_prefixes: set[str]) -> str:
    import mwparserfromhell

    wikicode = mwparserfromhell.parse(raw)
    pattern = re.compile(r"^\s*:?\s*(?:%s)\s*:" % "|".join(re.escape(p) for p in sorted(drop_prefixes)),
                         re.IGNORECASE)

    def remove(obj, section):
        try:
            section.remove(obj)
        except ValueError:
            pass

    parts = []
    for section in wikicode.get_sections(flat=True, include_lead=True, include_headings=True):
        # Collect first, remove after: removing while a filter generator runs skips nodes.
        doomed = [o for o in section.ifilter_wikilinks(recursive=True) if pattern.match(str(o.title))]
        doomed += list(section.ifilter_templates(
            matches=lambda t: str(t.name).strip().lower() in _REF_TEMPLATES, recursive=True))
        doomed += list(section.ifilter_tags(matches=lambda t: str(t.tag).lower() in ("ref", "table"),
                                            recursive=True))
        for obj in doomed:
            remove(obj, section)
        text = section.strip_code().strip()
        if text:
            parts.append(text)
    text = _fallback_clean("\n\n".join(parts), pattern)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


_REF_RE = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref\s*>", re.S | re.I)
_TEMPLATE_RE = re.compile(r"\{\{[^{}]*\}\}")
_LINK_RE = re.compile(r"\[\[([^\[\]|]*\|)?([^\[\]]*)\]\]")
_TAG_RE = re.compile(r"</?(?:small|big|sup|sub|span|div|center|blockquote|br|nowiki|poem|u|s|i|b|ref)\b[^>]*>", re.I)


def _drop_tables(text: str) -> str:
    """Drop wikitable lines ``{| ... |}``; a table cut off without ``|}`` ends at a line
    that is not table syntax (``|``, ``!``) after a blank line."""
    out, depth, blank = [], 0, False
    for line in text.split("\n"):
        st = line.strip()
        if st.startswith("{|"):
            depth += 1
            continue
        if depth:
            if st.startswith("|}"):
                depth -= 1
            elif blank and st and not st.startswith(("|", "!")):
                depth = 0
                out.append(line)
            blank = not st
            continue
        out.append(line)
    return "\n".join(out)


def _fallback_clean(text: str, drop_link_re: re.Pattern) -> str:
    """Where mwparserfromhell's tokenizer gives up on a region (it happens on real, cut
    articles) the region comes back as plain text; remove the same constructs with regexes."""
    if not any(m in text for m in ("<ref", "{|", "{{", "[[", "</")):
        return text
    text = _drop_tables(_REF_RE.sub("", text))
    for _ in range(5):
        new = _TEMPLATE_RE.sub("", text)
        if new == text:
            break
        text = new
    for _ in range(3):  # file captions can hold links: innermost first
        text = _LINK_RE.sub(lambda m: "" if drop_link_re.match(m.group(0)[2:]) else m.group(2), text)
    return _TAG_RE.sub("", text)


def iter_articles(path: str, info: DumpInfo | None = None) -> Iterator[WikiPage]:
    """Namespace-0, non-redirect pages with cleaned text."""
    info = info if info is not None else DumpInfo()
    for page in iter_pages(path, info):
        if page.ns != 0 or page.redirect:
            continue
        page.text = clean_wikitext(page.text, info.drop_prefixes)
        if page.text:
            yield page
