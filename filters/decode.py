"""Text files that are not always clean UTF-8 (books, LaTeX sources): decoded so that one bad
byte never changes how the rest of a file reads.

* A byte-order mark decides: UTF-8 (the mark dropped), UTF-16 or UTF-32 (LE/BE).
* Otherwise UTF-8, with each invalid byte sequence replaced by U+FFFD and counted -- unless
  the file is evidently in an 8-bit code page: more invalid sequences than valid multi-byte
  UTF-8 characters (an ISO-8859-1/cp1252 text has almost no valid ones), then Latin-1.
  A single stray byte in a UTF-8 book therefore costs one character, not every accent
  (``calÃ¨che``), and an ASCII file with one stray byte keeps every other character either way.
* Line ends are normalised: ``\\r\\r\\n`` (a CRLF file converted twice) and ``\\r\\n`` become
  ``\\n``, as does a lone ``\\r``.
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),  # before UTF-16: LE marks share a prefix
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_NEWLINES = re.compile(r"\r\r\n|\r\n|\r")
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]+")
_REPLACEMENT = "\ufffd"


@dataclass
class Decoded:
    text: str
    encoding: str        # "utf-8", "utf-8-sig", "utf-16", "utf-32" or "latin-1"
    replaced: int = 0    # invalid UTF-8 sequences replaced by U+FFFD


def has_bom(raw: bytes) -> bool:
    return any(raw.startswith(bom) for bom, _ in _BOMS)


def decode_text(raw: bytes) -> Decoded:
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return Decoded(normalize_newlines(raw.decode(encoding)), encoding)
            except UnicodeDecodeError:
                text = raw.decode(encoding, "replace")
                return Decoded(normalize_newlines(text), encoding, text.count(_REPLACEMENT))
    try:
        return Decoded(normalize_newlines(raw.decode("utf-8")), "utf-8")
    except UnicodeDecodeError:
        pass
    text = raw.decode("utf-8", "replace")
    replaced = text.count(_REPLACEMENT) - raw.count(_REPLACEMENT.encode("utf-8"))
    if replaced > len(_UTF8_MULTIBYTE.findall(raw)):
        return Decoded(normalize_newlines(raw.decode("latin-1")), "latin-1")
    return Decoded(normalize_newlines(text), "utf-8", replaced)


def normalize_newlines(text: str) -> str:
    return _NEWLINES.sub("\n", text) if "\r" in text else text
