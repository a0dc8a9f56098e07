"""Lenient, streaming WARC / WET reader and HTML-to-text extraction.

Common Crawl files are read record by record without loading the file.  The
reader trusts ``Content-Length`` when the bytes after the block really are the
next ``WARC/1.x`` header (or the end of file).  When they are not -- cc_net's own
test WET declares 109 bytes for a 311-byte body, which makes strict readers
such as warcio truncate the record and then abort the file -- the block is
re-synchronised on the next ``WARC/1.x`` line, the record is kept whole and the
anomaly is counted.  A record cut off by the end of the file (or a gzip stream
that ends early or is corrupt) is reported and skipped; every record before it
is still delivered.

Any WARC version is read (``WARC/1.0``, ``WARC/1.1`` and the ``WARC/0.17``/``0.18`` of older
crawlers); a ``WARC-Target-URI`` written as ``<uri>`` (wget, WARC/0.x) is unwrapped as warcio
does; in a WET page's text, ``\r\n`` and ``\r\r\n`` line ends become ``\n`` (read as
universal newlines, ``\r\r\n`` would be two line breaks and double-space the page).

Memory is bounded by ``max_record_bytes`` (``MAX_RECORD_BYTES``, 64 MB; ``--max-record-mb``):
a record whose block is longer -- declared by its ``Content-Length``, or found so when a
wrong length is re-synchronised -- is read past in 1 MB pieces and skipped
(``ReadReport.oversized``), as is an HTTP payload that inflates past the cap
(``Content-Encoding: gzip``) and a header block over 1 MB.  Common Crawl truncates the
payloads it stores at 1 MB, so real data never reaches the default.
"""
from __future__ import annotations

import io
import re
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

from core.errors import InputError

_GZIP_MAGIC = b"\x1f\x8b"
MAX_RECORD_BYTES = 64 << 20   # per record block (and per inflated HTTP payload)
MAX_HEADER_BYTES = 1 << 20    # per WARC header block
_PIECE = 1 << 20              # read size when skipping, and the longest line held


@dataclass
class WarcRecord:
    headers: dict[str, str]
    block: bytes
    index: int
    anomaly: str | None = None

    @property
    def type(self) -> str:
        return self.headers.get("warc-type", "")


@dataclass
class ReadReport:
    """What went wrong while reading one file (counted, never raised)."""
    records: int = 0
    length_mismatch: int = 0
    truncated: int = 0
    oversized: int = 0
    garbage_lines: int = 0
    stream_error: str | None = None
    notes: list[str] = field(default_factory=list)


def open_maybe_gzip(path: str) -> BinaryIO:
    """The file's bytes (local or gs://, through Beam's FileSystems), gunzipped when gzip."""
    from core import fs

    return fs.open_decompressed(path)


def check_warc_file(path: str) -> None:
    """Raise InputError with a one-line reason if ``path`` is not a WARC/WET file."""
    try:
        with open_maybe_gzip(path) as f:
            head = f.read(4096)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a WARC/WET file") from None
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(f"{path}: not readable as gzip ({e})") from None
    if not head.lstrip(b"\r\n").startswith(b"WARC/"):
        raise InputError(f"{path}: not a WARC/WET file (does not start with a 'WARC/' header)")


class _Stream:
    """A line/byte reader with push-back."""

    def __init__(self, f: BinaryIO):
        self.f = f
        self.pending: list[bytes] = []

    def readline(self) -> bytes:
        if self.pending:
            line = self.pending.pop()
            if not line.endswith(b"\n") and not self.pending:
                line += self.f.readline(_PIECE)  # a fragment cut by read(): complete it
            return line
        return self.f.readline(_PIECE)  # a longer line comes in pieces: never held whole

    def read(self, n: int) -> bytes:
        out = []
        while self.pending and n > 0:
            chunk = self.pending.pop()
            if len(chunk) > n:
                self.pending.append(chunk[n:])
                chunk = chunk[:n]
            out.append(chunk)
            n -= len(chunk)
        if n > 0:
            out.append(self.f.read(n))
        return b"".join(out)

    def unread(self, data: bytes) -> None:
        # Pushed back line by line so that readline() keeps returning whole lines.
        self.pending.extend(reversed(data.splitlines(keepends=True)))


_HEADER_LINE = re.compile(rb"WARC/\d+\.\d+\r?\n")
# in a block that a wrong Content-Length made too long; read() may have cut the line short
_HEADER_IN_BLOCK = re.compile(rb"(?:\r\n\r\n|\n\n)(WARC/[\d.]*(?:\r?\n|\Z))")


def _is_header_start(line: bytes) -> bool:
    return _HEADER_LINE.fullmatch(line) is not None


class _OversizedHeader(Exception):
    pass


def _parse_headers(s: _Stream) -> dict[str, str] | None:
    headers: dict[str, str] = {}
    size = 0
    while True:
        line = s.readline()
        if not line:
            return None  # EOF inside the header: truncated
        if line in (b"\r\n", b"\n"):
            return headers
        size += len(line)
        if size > MAX_HEADER_BYTES:
            raise _OversizedHeader
        text = line.decode("utf-8", "replace")
        if ":" in text:
            k, v = text.split(":", 1)
            k, v = k.strip().lower(), v.strip()
            if k == "warc-target-uri" and v.startswith("<") and v.endswith(">"):
                v = v[1:-1]  # wget / WARC/0.x: <uri>
            headers[k] = v


def _skip_block(s: _Stream, length: int, tail: bytes = b"") -> None:
    """Read past ``length`` more bytes of an oversized block in pieces -- stopping early at a
    record header that a wrong (too long) Content-Length would have swallowed."""
    while length > 0:
        piece = s.read(min(_PIECE, length))
        if not piece:
            return
        length -= len(piece)
        window = tail + piece
        cut = _find_header(window)
        if cut is not None:
            s.unread(window[cut:])
            return
        tail = window[-64:]


def iter_warc_records(path: str, report: ReadReport | None = None,
                      max_record_bytes: int = MAX_RECORD_BYTES) -> Iterator[WarcRecord]:
    """The records of a WARC/WET file, streamed (see the module docstring for what is
    repaired, counted and skipped)."""
    report = report if report is not None else ReadReport()
    index = 0
    try:
        with open_maybe_gzip(path) as f:
            s = _Stream(f)
            line = s.readline()
            while line:
                if not _is_header_start(line):
                    if line.strip():
                        report.garbage_lines += 1
                    line = s.readline()
                    continue
                try:
                    headers = _parse_headers(s)
                except _OversizedHeader:
                    report.oversized += 1
                    report.notes.append(f"record {index}: header block over {MAX_HEADER_BYTES} bytes; skipped")
                    line = _next_header(s)
                    index += 1
                    continue
                if headers is None:
                    report.truncated += 1
                    report.notes.append(f"record {index}: file ends inside its header")
                    return
                try:
                    length = int(headers.get("content-length", "0"))
                except ValueError:
                    length = -1
                block = s.read(max(min(length, max_record_bytes), 0))  # memory: at most the cap
                anomaly = None
                # A declared length that swallowed the next record's header: cut there.
                cut = _find_header(block)
                if cut is not None:
                    s.unread(block[cut:])
                    block = block[:cut]
                    anomaly = "content_length_mismatch"
                elif length < 0 or len(block) < min(length, max_record_bytes):
                    report.truncated += 1
                    report.notes.append(f"record {index}: block shorter than Content-Length (file truncated)")
                    return
                elif length > max_record_bytes:
                    _skip_block(s, length - len(block), block[-64:])
                    report.oversized += 1
                    report.notes.append(f"record {index}: Content-Length {length} over the {max_record_bytes}-byte "
                                        f"cap (--max-record-mb); skipped")
                    line = _next_header(s)
                    index += 1
                    continue
                # What follows must be blank lines, then the next header or EOF.
                trailer = []
                nxt = s.readline()
                while nxt in (b"\r\n", b"\n"):
                    trailer.append(nxt)
                    nxt = s.readline()
                if nxt and not _is_header_start(nxt):
                    # Declared length too short: the block goes on to the next header.
                    extra, size = trailer + [nxt], len(block) + sum(map(len, trailer)) + len(nxt)
                    nxt = s.readline()
                    while nxt and not _is_header_start(nxt) and size <= max_record_bytes:
                        extra.append(nxt)
                        size += len(nxt)
                        nxt = s.readline()
                    if size > max_record_bytes:
                        report.oversized += 1
                        report.notes.append(f"record {index}: block runs past the {max_record_bytes}-byte cap "
                                            f"(--max-record-mb); skipped")
                        line = nxt if nxt and _is_header_start(nxt) else _next_header(s)
                        index += 1
                        continue
                    block += b"".join(extra).rstrip(b"\r\n")
                    anomaly = "content_length_mismatch"
                if anomaly:
                    report.length_mismatch += 1
                report.records += 1
                yield WarcRecord(headers, block, index, anomaly)
                index += 1
                line = nxt
    except (EOFError, OSError, zlib.error) as e:
        report.stream_error = f"{type(e).__name__}: {e}"
        report.notes.append(f"stream stopped after record {index}: {report.stream_error}")


def _next_header(s: _Stream) -> bytes:
    """Read past lines to the next record header line (b"" at the end of the file)."""
    line = s.readline()
    while line and not _is_header_start(line):
        line = s.readline()
    return line


def _find_header(block: bytes) -> int | None:
    m = _HEADER_IN_BLOCK.search(block)
    return m.start(1) if m else None


# ---------------------------------------------------------------- HTTP / HTML

def _dechunk(body: bytes) -> bytes:
    out, pos = [], 0
    while pos < len(body):
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            break
        try:
            size = int(body[pos:eol].split(b";")[0].strip() or b"0", 16)
        except ValueError:
            return body  # not really chunked
        if size == 0:
            break
        out.append(body[eol + 2:eol + 2 + size])
        pos = eol + 2 + size + 2
    return b"".join(out)


class OversizedPayload(Exception):
    pass


def _inflate(body: bytes, wbits: int, cap: int) -> bytes:
    d = zlib.decompressobj(wbits)
    out = d.decompress(body, cap + 1)
    if len(out) > cap:
        raise OversizedPayload
    if not d.eof:
        raise EOFError("compressed payload ends early")  # as gzip.decompress: the body stays as stored
    return out


def split_http_response(block: bytes, max_payload: int = MAX_RECORD_BYTES) -> tuple[int, dict[str, str], bytes]:
    """Split an ``application/http; msgtype=response`` block into status, headers, payload
    (decoded if gzip/deflate; ``OversizedPayload`` if it inflates past ``max_payload``)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = block.find(sep)
        if i >= 0:
            head, body = block[:i], block[i + len(sep):]
            break
    else:
        return 0, {}, b""
    lines = head.decode("iso-8859-1").splitlines()
    status = 0
    if lines and lines[0].startswith("HTTP/"):
        parts = lines[0].split()
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = {}
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    enc = headers.get("content-encoding", "").lower()
    try:
        if enc in ("gzip", "x-gzip"):
            body = _inflate(body, 16 + zlib.MAX_WBITS, max_payload)
        elif enc == "deflate":
            body = _inflate(body, -zlib.MAX_WBITS, max_payload)
    except (OSError, zlib.error, EOFError):
        pass  # Common Crawl usually stores the payload decoded already
    return status, headers, body


def html_to_text(payload: bytes, content_type: str = "") -> str:
    """Visible text of an HTML page, one block per line (like Common Crawl's WET)."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import detect_encoding
    from resiliparse.parse.html import HTMLTree

    charset = None
    for part in content_type.split(";"):
        part = part.strip()
        if part.lower().startswith("charset="):
            charset = part.split("=", 1)[1].strip("\"' ")
    encoding = charset or detect_encoding(payload)
    try:
        tree = HTMLTree.parse_from_bytes(payload, encoding)
    except (LookupError, ValueError):
        tree = HTMLTree.parse_from_bytes(payload, detect_encoding(payload))
    text = extract_plain_text(tree, main_content=False, alt_texts=False, links=False,
                              list_bullets=False, preserve_formatting=True)
    lines = (ln.strip() for ln in text.splitlines())
    return "\n".join(ln for ln in lines if ln)


def record_text(rec: WarcRecord, max_payload: int = MAX_RECORD_BYTES) -> tuple[str | None, str]:
    """Text of a document record, or (None, reason) for records that carry no page text
    (``oversized_payload``: its HTTP payload inflates past ``max_payload``)."""
    if rec.type == "conversion":
        text = rec.block.decode("utf-8", "replace").replace("\r\r\n", "\n").replace("\r\n", "\n")
        return text.strip(), "wet"
    if rec.type == "response" and "msgtype=response" in rec.headers.get("content-type", ""):
        try:
            status, headers, payload = split_http_response(rec.block, max_payload)
        except OversizedPayload:
            return None, "oversized_payload"
        if status != 200:
            return None, "http_status"
        ctype = headers.get("content-type", "")
        if ctype and "html" not in ctype.lower():
            return None, "not_html"
        return html_to_text(payload, ctype), "warc_html"
    return None, "not_a_document"


def read_documents(path: io.IOBase | str, report: ReadReport | None = None,
                   max_record_bytes: int = MAX_RECORD_BYTES):
    """Yield ``(index, url, text, headers, anomaly)`` for every page of a WARC/WET file."""
    report = report if report is not None else ReadReport()
    for rec in iter_warc_records(path, report, max_record_bytes):
        text, kind = record_text(rec, max_record_bytes)
        if text is None:
            if kind == "oversized_payload":
                report.oversized += 1
                report.notes.append(f"record {rec.index}: HTTP payload inflates past the {max_record_bytes}-byte "
                                    f"cap (--max-record-mb); skipped")
            continue
        yield rec.index, rec.headers.get("warc-target-uri", ""), text, rec.headers, rec.anomaly
