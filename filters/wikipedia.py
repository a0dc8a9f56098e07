"""Streaming MediaWiki XML dump reader and wikitext cleaning, as the HuggingFace
``wikipedia`` builder (huggingface/datasets@9af57f2:datasets/wikipedia/wikipedia.py, v2.0.0,
its last version in that repository).

Reading: the dump is parsed incrementally (``iterparse``; elements are cleared as soon as a
page is done), so memory does not grow with the dump; a multistream dump with its index is
cut into units at bz2 stream boundaries (``dump_units``).  Articles are the builder's:
namespace 0, not a ``<redirect>``, text present, non-empty after cleaning.  The language
is the dump's ``dbname`` (``enwiki`` -> ``en``).  Extension: the XML's own encoding is
used, so a UTF-16 dump is read (the builder decodes UTF-8 only and fails on it).

Cleaning (``clean_wikitext``) is ``_parse_and_clean_wikicode``: per section (lead and
headings included) remove links to files (``File``/``Image``/``Media`` and the language's
aliases), turn category links into their bare names (kept in the text, as the builder
does), remove ``<ref>`` and ``<table>`` tags, ``strip_code``, strip, drop magic words
(``__NOTOC__``); sections joined by a blank line.  The namespace aliases are the builder's
for the 20 LLaMA languages; for any other language the dump's own File/Category names
(from ``<siteinfo>``) are added.  With both fixes below off, the output is the builder's,
byte for byte, on every article of the shared sample (364 articles of the 4 dumps the
builder reads; the UTF-16 copy gives its UTF-8 twin's text: ``tests/reference/test_hf_wikipedia_parity.py``).

Two deliberate fixes of builder bugs (on by default; each a keyword of ``clean_wikitext``):

* ``fix_skips``: the builder removes nodes while iterating mwparserfromhell's filter
  generator, which walks the node list by index, so the node right after each removed one
  is never visited: a ``<ref>`` after a ``<ref>`` leaks its citation into the article, a
  file link after a file link leaks its caption.  Here nodes are collected, then removed.
* ``fallback``: where mwparserfromhell's tokenizer gives up on a region (real, cut articles
  do this), the builder's text keeps the region's raw markup (``<ref>...</ref>``,
  ``{| ... |}``, ``[[...]]``, ``{{...}}``); here it is removed by regexes.

Together they change 31 of the 364 sample articles, by deletions only (23,811 of 5.9 M
characters, 0.4%; mean similarity to the builder's text 0.98).
"""
from __future__ import annotations

import bz2
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Iterator

from core.errors import InputError

LLAMA_WIKI_LANGS = ("bg ca cs da de en es fr hr hu it nl pl pt ro ru sl sr sv uk").split()
# MediaWiki's names and aliases of the File (6) and Category (14) namespaces in the 20
# languages, as the builder's MEDIA_ALIASES / CAT_ALIASES list them for these languages
# (huggingface/datasets@9af57f2:datasets/wikipedia/wikipedia.py); English's are the defaults.
MEDIA_DEFAULT = ("File", "Image", "Media")
CATEGORY_DEFAULT = ("Category",)
MEDIA_ALIASES = {
    "bg": ["Медия", "Файл", "Картинка"], "ca": ["Fitxer", "Imatge"], "cs": ["Soubor", "Média", "Obrázok"],
    "da": ["Billede", "Fil"], "de": ["Medium", "Datei", "Bild"], "es": ["Medio", "Archivo", "Imagen"],
    "fr": ["Média", "Fichier"], "hr": ["Mediji", "DT", "Slika", "F", "Datoteka"],
    "hu": ["Kép", "Fájl", "Média"], "it": ["Immagine"], "nl": ["Bestand", "Afbeelding"],
    "pl": ["Plik", "Grafika"], "pt": ["Multimédia", "Ficheiro", "Arquivo", "Imagem"],
    "ro": ["Fişier", "Imagine", "Fișier"], "ru": ["Медиа", "Файл", "Изображение"], "sl": ["Slika", "Datoteka"],
    "sr": ["Датотека", "Medij", "Slika", "Медија", "Datoteka", "Медиј", "Medija", "Слика"],
    "sv": ["Fil", "Bild"], "uk": ["Медіа", "Медиа", "Файл", "Изображение", "Зображення"],
}
CAT_ALIASES = {
    "bg": ["Категория"], "ca": ["Categoria"], "cs": ["Kategorie"], "da": ["Kategori"], "de": ["Kategorie"],
    "es": ["CAT", "Categoría"], "fr": ["Catégorie"], "hr": ["CT", "KT", "Kategorija"], "hu": ["Kategória"],
    "it": ["CAT", "Categoria"], "nl": ["Categorie"], "pl": ["Kategoria"], "pt": ["Categoria"],
    "ro": ["Categorie"], "ru": ["Категория", "К"], "sl": ["Kategorija"], "sr": ["Kategorija", "Категорија"],
    "sv": ["Kategori"], "uk": ["Категория", "Категорія"],
}


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


MAX_PAGE_BYTES = 64 << 20  # a <page> larger than this is skipped unparsed (--max-page-mb)


class _CapPages(io.RawIOBase):
    """A dump's XML bytes with every ``<page>`` element over ``cap`` bytes cut out before the
    XML parser sees it (which would hold it whole), ``skipped()`` called for each; memory:
    one page of at most ``cap``.  Dumps write ``<page>`` and ``</page>`` on lines of their own,
    which is what is recognised; a line over ``cap`` outside a page is an error.  Applies to
    UTF-8 dumps (every Wikimedia dump); a UTF-16 one passes through uncapped."""

    def __init__(self, f, cap: int, skipped, path: str):
        from core import fs

        self.f, self.cap, self.skipped, self.path = f, cap, skipped, path
        self.buf, self.pos = b"", 0
        self._bounded_line = fs.bounded_line  # bound once: _line runs for every line of the dump

    def readable(self):
        return True

    def close(self):
        self.f.close()
        super().close()

    def readinto(self, b):
        while self.pos >= len(self.buf):
            self.buf, self.pos = self._next(), 0
            if not self.buf:
                return 0
        n = min(len(b), len(self.buf) - self.pos)
        b[:n] = self.buf[self.pos:self.pos + n]
        self.pos += n
        return n

    def _line(self):
        return self._bounded_line(self.f, self.cap)[0]

    def _next(self) -> bytes:
        line = self._line()
        if line is None:
            raise InputError(f"{self.path}: a line of over {self.cap} bytes outside any <page> "
                             f"(--max-page-mb; dumps write one element per line)")
        if not line.lstrip().startswith((b"<page>", b"<page ")) or line.rstrip().endswith(b"</page>"):
            return line
        page, size = [line], len(line)
        while True:
            line = self._line()
            if line == b"":
                return b"".join(page)  # truncated: the parser reports it
            if line is not None:
                size += len(line)
                page.append(line)
                if line.rstrip().endswith(b"</page>") and size <= self.cap:
                    return b"".join(page)
            if line is None or size > self.cap:
                while line is None or not line.rstrip().endswith(b"</page>"):
                    line = self._line()
                    if line == b"":
                        break
                self.skipped()
                return b"\n"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class DumpInfo:
    """What a dump's ``<siteinfo>`` says: its ``dbname`` (so its language) and the local
    names of its File and Category namespaces."""

    def __init__(self):
        self.dbname = ""
        self.namespaces: dict[str, str] = {}  # "6"/"14" -> the dump's name for it

    @property
    def lang(self) -> str:
        return self.dbname[:-4] if self.dbname.endswith("wiki") else self.dbname

    def _pattern(self, default, aliases, key):
        names = [*default, *aliases.get(self.lang, [])]
        own = self.namespaces.get(key)
        if own and own.lower() not in {n.lower() for n in names}:
            names.append(own)  # a language the alias table does not list
        return re.compile("^(?:%s):" % "|".join(re.escape(n) for n in names), re.IGNORECASE)

    def media_pattern(self) -> re.Pattern:
        """Links to remove: ``^(?:File|Image|Media|<aliases>):``, case-insensitive."""
        return self._pattern(MEDIA_DEFAULT, MEDIA_ALIASES, "6")

    def category_pattern(self) -> re.Pattern:
        return self._pattern(CATEGORY_DEFAULT, CAT_ALIASES, "14")


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


def iter_pages(path: str, info: DumpInfo | None = None, unit: tuple | None = None,
               max_page_bytes: int = MAX_PAGE_BYTES, skipped=None) -> Iterator[WikiPage]:
    """All pages of a dump, or of one unit of a multistream dump (``dump_units``); every
    namespace, redirects flagged; streamed (parsed pages are cleared as they go).  A page over
    ``max_page_bytes`` is skipped unparsed, calling ``skipped()``."""
    info = info if info is not None else DumpInfo()
    try:
        f = _open(path) if unit is None else _open_unit(path, unit)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    f = io.BufferedReader(_CapPages(f, max_page_bytes, skipped or (lambda: None), path), buffer_size=1 << 20)
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
                    info.namespaces[elem.get("key")] = elem.text.strip()
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


_MAGIC_WORD = re.compile("__[A-Z]*__")  # behaviour switches such as __NOTOC__


def clean_wikitext(raw: str, info: DumpInfo, *, fix_skips: bool = True, fallback: bool = True) -> str:
    """A page's wikitext as the HF builder's ``_parse_and_clean_wikicode`` cleans it (see
    the module docstring): per section (lead and headings included), remove file/image/
    media links, turn category links into their bare names, remove ``<ref>`` and ``<table>``
    tags, then ``strip_code``, strip, drop magic words; sections joined by a blank line.

    ``fix_skips`` (default): nodes are collected before any is removed.  The builder
    removes them while iterating mwparserfromhell's filter generator, which walks the node
    list by index, so the node after each removed one is never visited -- a table or a
    category link right after a removed link or ref stays as it is.  ``fix_skips=False``
    reproduces that.

    ``fallback`` (default): where mwparserfromhell could not parse a region, the builder's
    text keeps its raw markup (``<ref>...</ref>``, ``{| ... |}``, ``[[...]]``, ``{{...}}``);
    here those are removed by ``_fallback_clean``.  Both switches off give the builder's
    output exactly (``tests/reference/test_hf_wikipedia_parity.py``).

    Speed (``fix_skips``, the default; 3.5x this project's cleaner before issue 15, f997bd5
    (median of 5 interleaved runs over the 365 articles of the shared dumps, ~15 MB of wikitext), the same
    text on every article of them, ``tests/reference``): what the cleaning throws away is never
    built.  mwparserfromhell's C tokenizer is cheap, its Python tree builder is not; templates
    and comments (``strip_code`` drops them), ``<ref>`` tags and tables (the cleaning removes
    every one) are cut from the token stream before the tree is built -- except inside a
    wikilink's title (its text decides media/category) and, for tables, inside any wikilink
    (a category link keeps its stripped text); italic and bold on one line become their
    contents, a link whose title and text are plain text on one line (most links), and
    neither a file nor a category, becomes its text, and a run of text one token.  Nodes are
    removed through a parent map made in one walk, not ``Wikicode.remove``, which searches the
    section from its root for each node.  ``fix_skips=False`` keeps the tree path: its skipped
    node depends on every node."""
    media, category = info.media_pattern(), info.category_pattern()
    if fix_skips:
        text = _clean_pruned(raw, media, category)
    else:
        text = _clean_tree(raw, media, category, fix_skips=False)
    return _fallback_clean(text, media, category) if fallback else text


def _clean_tree(raw: str, media: re.Pattern, category: re.Pattern, *, fix_skips: bool) -> str:
    """The builder's cleaning on mwparserfromhell's whole tree (before ``_fallback_clean``);
    ``media``/``category``: the dump's ``DumpInfo`` patterns."""
    import mwparserfromhell

    wikicode = mwparserfromhell.parse(raw)

    def remove(obj, section):
        try:
            section.remove(obj)
        except ValueError:  # a node inside one already removed
            pass

    def link(obj, section):
        title = str(obj.title)
        if media.match(title):
            remove(obj, section)
        elif category.match(title):
            try:
                obj.text = category.sub("", obj.__strip__())
            except ValueError:
                pass

    sections = []
    for section in wikicode.get_sections(flat=True, include_lead=True, include_headings=True):
        links = section.ifilter_wikilinks(recursive=True)
        for obj in (list(links) if fix_skips else links):
            link(obj, section)
        tags = section.ifilter_tags(matches=lambda t: str(t.tag) in _REMOVED_TAGS, recursive=True)
        for obj in (list(tags) if fix_skips else tags):
            remove(obj, section)
        sections.append(_MAGIC_WORD.sub("", section.strip_code().strip()))
    return "\n\n".join(sections)


_REMOVED_TAGS = ("ref", "table")


def _skip(toks, i: int, opens, closes) -> int:
    """The index after the construct opened at ``toks[i]`` (nesting of ``opens``/``closes``)."""
    depth = 0
    for j in range(i, len(toks)):
        c = type(toks[j])
        if c in opens:
            depth += 1
        elif c in closes:
            depth -= 1
            if depth == 0:
                return j + 1
    return len(toks)


_STYLES = ("''", "'''")  # italic and bold as wiki markup: a tag whose stripped text is its contents
_STYLE_SPAN = 400  # tokens: a longer italic or bold span keeps its tag


def _one_line(toks, i: int) -> bool:
    """Whether the italic or bold tag opened at ``toks[i]`` holds no newline (no text token
    with one, no entity, no heading) within ``_STYLE_SPAN`` tokens: then its stripped text is
    its contents' (``Tag.__strip__`` strips the contents with ``collapse``, which trims and
    folds newlines; a style that the tokenizer ran over several lines does span them)."""
    from mwparserfromhell.parser import tokens as T

    depth = 0
    for j in range(i, min(len(toks), i + _STYLE_SPAN)):
        t = toks[j]
        c = type(t)
        if c is T.Text:
            if "\n" in t.text:
                return False
        elif c is T.TagOpenOpen:
            depth += 1
        elif c is T.TagCloseSelfclose or c is T.TagCloseClose:
            depth -= 1
            if depth == 0:
                return True
        elif c is T.HTMLEntityStart or c is T.HeadingStart:
            return False
    return False


def _plain_link(toks, i: int, media: re.Pattern, category: re.Pattern):
    """For a wikilink opened at ``toks[i]`` whose title and text are plain text on one line
    and whose title is neither a file nor a category: (the index after it, the text tokens
    that its stripped text is -- its text's, or its title's when it has no ``|``); else None.
    Most links are such, and the cleaning keeps only their text (``Wikilink.__strip__``)."""
    from mwparserfromhell.parser import tokens as T

    text, sep, close = T.Text, T.WikilinkSeparator, T.WikilinkClose
    title, shown, part = [], None, None
    for j in range(i + 1, len(toks)):
        t = toks[j]
        c = type(t)
        if c is text:
            if "\n" in t.text:
                return None
            (title if shown is None else shown).append(t)
        elif c is sep and shown is None:
            shown = []
        elif c is close:
            part = j
            break
        else:
            return None
    if part is None:
        return None
    name = "".join(t.text for t in title)
    if media.match(name) or category.match(name):
        return None
    return part + 1, (title if shown is None else shown)


def _pruned_tokens(toks, media: re.Pattern, category: re.Pattern) -> tuple[list, bool]:
    """The token stream without templates, comments, refs and tables, and with italic and bold
    markup unwrapped to their contents, plain links (``_plain_link``) as their text and runs
    of text as one token (see ``clean_wikitext``); and whether a ref or table tag was kept
    (inside a wikilink)."""
    from mwparserfromhell.parser import tokens as T

    out, i, n, links, kept = [], 0, len(toks), [], False  # links: per open wikilink, in its title?
    tags: list[bool] = []  # per open tag: unwrapped?
    text, template, comment, tag_open = T.Text, T.TemplateOpen, T.CommentStart, T.TagOpenOpen
    tag_close_open, tag_open_close, tag_close_close = T.TagCloseOpen, T.TagOpenClose, T.TagCloseClose
    link_open, link_sep, link_close = T.WikilinkOpen, T.WikilinkSeparator, T.WikilinkClose
    run: list[str] = []  # text not yet written: one Text token (one node to build, to strip)
    while i < n:
        t = toks[i]
        c = type(t)
        if c is text:  # most tokens
            run.append(t.text)
            i += 1
            continue
        name = toks[i + 1].text if c is tag_open and i + 1 < n and type(toks[i + 1]) is text else None
        in_title = links and links[-1]
        if not in_title:
            if c is template:
                i = _skip(toks, i, (template,), (T.TemplateClose,))
                continue
            if c is comment:
                i = _skip(toks, i, (comment,), (T.CommentEnd,))
                continue
            if name == "ref" or (name == "table" and not links):
                i = _skip(toks, i, (tag_open,), (T.TagCloseSelfclose, T.TagCloseClose))
                continue
        if c is tag_open:
            style = (not in_title and t.get("wiki_markup") in _STYLES and i + 2 < n
                     and type(toks[i + 2]) is tag_close_open and _one_line(toks, i))
            tags.append(style)
            if style:  # TagOpenOpen, name, TagCloseOpen
                i += 3
                continue
        elif c is tag_open_close and tags:
            if tags.pop() and i + 2 < n and type(toks[i + 2]) is tag_close_close:  # TagOpenClose, name, TagCloseClose
                i += 3
                continue
        elif c is T.TagCloseSelfclose and tags:
            tags.pop()
        kept = kept or name in _REMOVED_TAGS
        if c is link_open:
            plain = None if in_title else _plain_link(toks, i, media, category)
            if plain is not None:
                i, shown = plain
                run.extend(x.text for x in shown)
                continue
            links.append(True)
        elif c is link_sep and links:
            links[-1] = False
        elif c is link_close and links:
            links.pop()
        if run:
            out.append(text(text="".join(run)))
            run = []
        out.append(t)
        i += 1
    if run:
        out.append(text(text="".join(run)))
    return out, kept


def _walk(code, kind, pred=None) -> tuple[dict, list]:
    """{id(node): the Wikicode holding it} for every node under ``code``, and the nodes of
    ``kind`` (and ``pred``) in ``Wikicode.ifilter(recursive=True)``'s order (pre-order)."""
    parents, found = {}, []

    def visit(c):
        for node in c.nodes:
            parents[id(node)] = c
            if isinstance(node, kind) and (pred is None or pred(node)):
                found.append(node)
            for child in node.__children__():
                visit(child)
    visit(code)
    return parents, found


def _descendants(node, out: set) -> None:
    stack = list(node.__children__())
    while stack:
        for n in stack.pop().nodes:
            out.add(id(n))
            stack.extend(n.__children__())


_MARKUP_CHARS = re.compile(r"[{}\[\]<>|=&'\"#*;:/\\\-!\n]")  # mwparserfromhell's tokenizer MARKERS


def _as_text(s: str):
    """What ``parse_anything(s)`` makes of a string without markup characters (one Text node),
    without a parser run; other strings are left to the parser."""
    if not s or _MARKUP_CHARS.search(s):
        return s
    from mwparserfromhell.nodes import Text
    from mwparserfromhell.smart_list import SmartList
    from mwparserfromhell.wikicode import Wikicode

    return Wikicode(SmartList([Text(s)]))


def _clean_pruned(raw: str, media: re.Pattern, category: re.Pattern) -> str:
    """``_clean_tree(fix_skips=True)``, faster: the tree built from the pruned token stream."""
    from mwparserfromhell.nodes import Tag, Wikilink
    from mwparserfromhell.parser import Parser

    parser = Parser()
    toks, kept_tags = _pruned_tokens(parser._tokenizer.tokenize(raw, 0, False), media, category)
    wikicode = parser._builder.build(toks)
    sections = []
    for section in wikicode.get_sections(flat=True, include_lead=True, include_headings=True):
        gone: set[int] = set()  # nodes no longer in the tree (Wikicode.remove would not find them)

        def remove(obj, parents):
            if id(obj) in gone:
                return
            nodes = parents[id(obj)].nodes
            for k, node in enumerate(nodes):
                if node is obj:
                    nodes.pop(k)
                    break
            gone.add(id(obj))
            _descendants(obj, gone)

        parents, links = _walk(section, Wikilink)
        maybe_tags = kept_tags
        for obj in links:
            if id(obj) in gone:
                continue
            title = str(obj.title)
            if media.match(title):
                remove(obj, parents)
            elif category.match(title):
                if obj.text is not None:
                    _descendants(obj, gone)
                try:
                    new = category.sub("", obj.__strip__())
                    obj.text = _as_text(new)
                except ValueError:  # as _clean_tree
                    continue
                maybe_tags = maybe_tags or "<" in new or "{|" in new  # reparsed: could make a tag
        if maybe_tags:
            parents, tags = _walk(section, Tag, lambda t: str(t.tag) in _REMOVED_TAGS)
            for obj in tags:
                remove(obj, parents)
        sections.append(_MAGIC_WORD.sub("", section.strip_code().strip()))
    return "\n\n".join(sections)


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


def _fallback_clean(text: str, media: re.Pattern, category: re.Pattern) -> str:
    """Where mwparserfromhell's tokenizer gives up on a region (it happens on real, cut
    articles), the region comes back as plain text with its markup; remove the same
    constructs with regexes: refs, tables, templates, media links, and links turned into
    their text (category links into their bare name, as the parser's path does)."""
    if not any(m in text for m in ("<ref", "{|", "{{", "[[", "</")):
        return text
    text = _drop_tables(_REF_RE.sub("", text))
    for _ in range(5):
        new = _TEMPLATE_RE.sub("", text)
        if new == text:
            break
        text = new
    for _ in range(3):  # file captions can hold links: innermost first
        text = _LINK_RE.sub(lambda m: "" if media.match(m.group(0)[2:]) else category.sub("", m.group(2)), text)
    return _TAG_RE.sub("", text)


def iter_articles(path: str, info: DumpInfo | None = None) -> Iterator[WikiPage]:
    """Namespace-0, non-redirect pages with cleaned text."""
    info = info if info is not None else DumpInfo()
    for page in iter_pages(path, info):
        if page.ns != 0 or page.redirect:
            continue
        page.text = clean_wikitext(page.text, info)
        if page.text:
            yield page
