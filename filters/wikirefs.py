"""The URLs Wikipedia cites in ``<ref>`` elements: where LLaMA's CC quality classifier takes
its positives from ("pages used as references in Wikipedia"), extracted as RedPajama does
(togethercomputer/RedPajama-Data@45b37c2:data_prep/cc/classifier/extract_urls.py).

RedPajama reads the dump's XML line by line: on each line, the span from the first bare
``<ref>`` to the last ``</ref>`` (greedy), and in it every match of its URL expression
(``_URL`` below, its expression verbatim).  ``ref_urls(text, reference=True)`` does exactly
that on a page's text, XML-escaped as the dump holds it (``&`` ``<`` ``>`` ``"`` as
entities), line by line: the same URLs in the same order as the script on the shared dumps
(``tests/reference/test_redpajama_wikirefs_parity.py``).

Deliberate fix (the default, ``reference=False``): the same expressions on the decoded text,
its HTML entities decoded too (wikitext writes ``&amp;`` in URLs, which MediaWiki renders as
``&``).
On the escaped text the URL expression takes ``&`` as part of a URL and stops at ``;``, so a
URL followed by ``</ref>`` ends in ``&lt``, one with a query string is cut at ``&amp``, one
in quotes ends in ``&quot``: 656 of the 5,414 URLs RedPajama's script extracts from the
shared dumps are mangled so, and would never match a crawled page's URL.
"""
from __future__ import annotations

import html
import re
from typing import Iterator

_REF_SPAN_ESCAPED = re.compile("&lt;ref&gt(.*)&lt;/ref&gt;")
_REF_SPAN = re.compile("<ref>(.*)</ref>")
_URL = re.compile(r"\b(?:https?|telnet|gopher|file|wais|ftp):[\w/#~:.?+=&%@!\-.:?\\-]+?"
                  r"(?=[.:?\-]*(?:[^\w/#~:.?+=&%@!\-.:?\-]|$))")


def xml_escaped(text: str) -> str:
    """A page's text as a MediaWiki XML dump writes it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def ref_urls(text: str, reference: bool = False) -> Iterator[str]:
    """The URLs cited in a page's ``<ref>`` elements, in order, repeats included."""
    span = _REF_SPAN_ESCAPED if reference else _REF_SPAN
    if reference:
        text = xml_escaped(text)
    for line in text.split("\n"):
        m = span.search(line)
        if m is not None:
            yield from _URL.findall(m.group(0) if reference else html.unescape(m.group(0)))


_DEFAULT_PORTS = {"http": "80", "https": "443", "ftp": "21"}


def url_key(url: str) -> str | None:
    """The key a cited URL and a crawled page's URL are joined on (RedPajama fetched the cited
    URLs itself, so it needed none): the same page whatever the scheme (``http``/``https``),
    the host's case, a leading ``www.``, a default port, a fragment or a trailing ``/``.
    The path and query are kept as written (servers differ on case and encoding).  ``None``
    for what is not an absolute URL with a host."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        host, port = (parts.hostname or ""), parts.port
    except ValueError:  # e.g. an unclosed IPv6 bracket or a port that is not a number
        return None
    if not host or not parts.scheme:
        return None
    scheme = parts.scheme.lower()
    host = host.removeprefix("www.")
    if port is not None and str(port) != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    path = parts.path.rstrip("/") or ""
    query = f"?{parts.query}" if parts.query else ""
    family = "web" if scheme in ("http", "https") else scheme
    return f"{family}://{host}{path}{query}"
