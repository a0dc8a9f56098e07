"""Line dedup as Beam shuffles, with cc_net's semantics.

cc_net (facebookresearch/cc_net@bda555b, ``cc_net/dedup.py``): ``HashesCollector`` adds
the hashes of every line of every document of a dedup group to a ``FlatHashSet``, whose
value for a key is 0 the first time a *document* adds it and 1 afterwards (a line repeated
inside one document is added in one call, so it stays 0); ``DuplicatesRemover`` then
removes, from *every* document, the lines whose value is 1 -- no copy is kept -- and
``finalize_doc`` drops the later repeats of a line inside a document, keeping its first
copy.  Lines are keyed by ``filters.text.line_hash`` (cc_net's ``normalize_for_dedup`` +
``str_hash``).  A document left without lines is dropped.

Here, without any side input or global combine, in two shuffles of the data (plus the
small one of step 2's combiner):

1. (group, line hash) -> id of each document that has the line, grouped by key; the
   group's ids are read once, as a stream (so a boilerplate line in millions of documents
   needs no memory on the worker): from the second id on, every id is emitted with the
   hash, and the first one with it -- (document id, duplicate hash);
2. a document's duplicate hashes are concatenated (``ConcatBytes``, a lifted combiner: one
   string per document per bundle crosses the shuffle, not one record per line), grouped
   with the (packed) documents by id, and each document drops its duplicate lines and its
   in-document repeats.

Keys and values cross the shuffles as byte strings (``beam_utils.Packed``).

The dedup group is the whole run by default; ``group_files=N`` dedups within groups of
N consecutive input files, as cc_net's ``hash_in_mem`` does with its shards (a document's
group is carried in its ``metadata["dedup_group"]``).
"""
from __future__ import annotations

import hashlib
import re
from array import array
from typing import Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from filters.text import line_hash

from .beam_utils import JoinPacked, Packed, Rejects, count_kept, pack, reject, split_joined, unpack

GROUP = "dedup_group"


def remove_lines(text: str, duplicates: set[int], hash_fn=line_hash, hashes=None) -> tuple[list[str], int]:
    """cc_net's ``DuplicatesRemover`` + ``finalize_doc`` on one document: the lines kept (a
    line whose hash is in ``duplicates`` is removed; a repeat inside the document is removed,
    its first copy kept) and the number of lines before.  ``hashes``: the lines' hashes when
    already computed (one per line, in order)."""
    lines = text.split("\n")
    if hashes is None:
        hashes = [hash_fn(line) for line in lines]
    kept, seen = [], set()
    for line, h in zip(lines, hashes):
        if h not in duplicates and h not in seen:
            kept.append(line)
        seen.add(h)
    return kept, len(lines)


def _group(doc) -> str:
    return (doc.get("metadata") or {}).get(GROUP, "")


def _line_key(group: str, h: int) -> bytes:
    return group.encode("utf-8") + b"\0" + h.to_bytes(8, "little")


def docs_sharing_line(kv):
    """(line key, ids of the documents that have it) -> (id, 8-byte hash) for every document
    of a line that two or more documents have; the ids are read once, in order."""
    key, ids = kv
    dup = key[-8:]
    it = iter(ids)
    first = next(it, None)
    for other in it:
        if first is not None:
            yield first, dup
            first = None
        yield other, dup


class _HashLines(beam.DoFn):
    """Each line hashed once: (line key, document id) for every distinct line of a document
    to the ``LINES`` output, and the document with its lines' hashes (8 bytes each, in
    order) for the join, so the removal does not hash the text again."""
    LINES = "lines"

    def __init__(self, hash_fn):
        self.hash_fn = hash_fn

    def process(self, d):
        hashes = array("Q", [self.hash_fn(ln) for ln in d["text"].split("\n")])
        group, doc_id = _group(d), d["id"]
        for h in set(hashes):
            yield beam.pvalue.TaggedOutput(self.LINES, (_line_key(group, h), doc_id))
        yield d, hashes.tobytes()


class _Remove(beam.DoFn):
    def __init__(self, step: str):
        self.step = step
        self.c = {k: Metrics.counter(step, k) for k in
                  ("documents_in", "lines_in", "lines", "lines_removed", "documents_emptied")}

    def process(self, kv):
        docs, hashes = split_joined(kv[1], 8)  # the document(s) of an id, its duplicate hashes
        duplicates = {int.from_bytes(h, "little") for h in hashes}
        for doc, line_hashes in docs:  # normally one; documents sharing an id share the decisions
            kept, n = remove_lines(doc["text"], duplicates, hashes=array("Q", line_hashes))
            self.c["documents_in"].inc()
            self.c["lines_in"].inc(n)
            self.c["lines_removed"].inc(n - len(kept))
            if not kept:
                self.c["documents_emptied"].inc()
                continue
            self.c["lines"].inc(len(kept))
            md = dict(doc.get("metadata") or {}, original_nlines=n, nlines=len(kept))
            md.pop(GROUP, None)
            doc = dict(doc, text="\n".join(kept), metadata={k: str(v) for k, v in md.items()})
            count_kept(self.step, doc)
            yield doc


class CCNetDedup(beam.PTransform):
    """Cross-document line dedup with cc_net's semantics (see the module docstring)."""

    def __init__(self, step: str = "dedup", hash_fn=line_hash):
        super().__init__()
        self.step, self.hash_fn = step, hash_fn

    def expand(self, docs):
        hashed = docs | "HashLines" >> beam.ParDo(_HashLines(self.hash_fn)).with_outputs(_HashLines.LINES,
                                                                                        main="docs")
        lines = hashed[_HashLines.LINES]
        lines.element_type = beam.typehints.KV[bytes, str]  # byte-string coders for the shuffle's keys/values
        dups = (lines
                | "GroupLines" >> beam.GroupByKey()
                | "DupOfDoc" >> beam.FlatMap(docs_sharing_line).with_output_types(Packed))
        return ({"records": hashed.docs, "items": dups}
                | "JoinDocs" >> JoinPacked(lambda r: r[0]["id"])
                | "Remove" >> beam.ParDo(_Remove(self.step)))


# ------------------------------------------------------------------ C4 (tfds)

def c4_line_key(line: str) -> str:
    """tfds ``_emit_url_to_lines``: the md5 of the stripped, lower-cased line."""
    return hashlib.md5(line.strip().lower().encode("utf-8")).hexdigest()


def _url_rank(url: str) -> str:
    return hashlib.md5(url.encode("utf-8")).hexdigest()


class SmallestUrl(beam.CombineFn):
    """tfds ``Top.PerKey(1, key=_hash_text, reverse=True)``: the URL with the smallest md5."""

    def create_accumulator(self):
        return None

    def add_input(self, acc, url):
        return url if acc is None or (_url_rank(url), url) < (_url_rank(acc), acc) else acc

    def merge_accumulators(self, accs):
        best = None
        for a in accs:
            if a is not None:
                best = self.add_input(best, a)
        return best

    def extract_output(self, acc):
        return acc


def remove_c4_lines(text: str, keep: set[str]) -> list[str]:
    """tfds ``_remove_lines_from_text``: a line is kept if this page is the one selected for it
    and it is not a repeat (case-insensitive) of a line kept earlier in the page."""
    kept, seen = [], set()
    for line in text.split("\n"):
        key = c4_line_key(line)
        if key in keep and key not in seen:
            kept.append(line)
            seen.add(key)
    return kept


class _RemoveC4(beam.DoFn):
    def __init__(self, step: str, min_sentences: int, splitter: str = "rule", rejected: bool = False):
        self.step, self.min_sentences, self.splitter, self.rejected = step, min_sentences, splitter, rejected

    def _drop(self, page, reason, kept):
        Metrics.counter(self.step, f"dropped_{reason}").inc()
        if self.rejected:  # the page as it came, before its lines were removed
            yield reject(page, self.step, reason, lines_kept=len(kept))

    def process(self, kv):
        from filters.c4 import count_sentences

        pages, keys = split_joined(kv[1], 32)  # the page(s) of a URL, the line keys kept for it
        keep = {k.decode("ascii") for k in keys}
        c = lambda name, n=1: Metrics.counter(self.step, name).inc(n)  # noqa: E731
        for page in pages:
            lines = page["text"].split("\n")
            kept = remove_c4_lines(page["text"], keep)
            c("documents_in")
            c("lines_in", len(lines))
            c("lines_removed", len(lines) - len(kept))
            text = "\n".join(kept)
            if not text:
                yield from self._drop(page, "empty", kept)
                continue
            if self.min_sentences and count_sentences(text, self.splitter) < self.min_sentences:
                yield from self._drop(page, "too_few_sentences", kept)
                continue
            c("lines", len(kept))
            page = dict(page, text=text)
            count_kept(self.step, page)
            yield page


class C4Dedup(beam.PTransform):
    """tfds ``c4_utils.remove_duplicate_text`` (tensorflow/datasets@3e77995): every line
    (md5 of the stripped, lower-cased line) is kept only in the page with the smallest md5
    of its URL; repeats inside a page keep their first copy; a page left empty, or with
    fewer than ``min_sentences`` sentences after dedup, is dropped (to ``rejects``, a
    ``beam_utils.Rejects``, when given).  Pages are joined by URL (unique after ``DedupUrls``)."""

    def __init__(self, step: str = "dedup", min_sentences: int = 3, splitter: str = "rule", rejects=None):
        super().__init__()
        self.step, self.min_sentences, self.splitter = step, min_sentences, splitter
        self.rejects = rejects or Rejects("", enabled=False)

    def expand(self, pages):
        keep = (pages
                | "LineUrls" >> beam.FlatMap(lambda d: ((c4_line_key(ln), d["url"]) for ln in d["text"].split("\n")))
                  .with_output_types(Tuple[str, str])
                | "SelectUrl" >> beam.CombinePerKey(SmallestUrl())
                | "UrlLine" >> beam.Map(lambda kv: (kv[1], kv[0].encode("ascii"))).with_output_types(Packed))
        joined = {"records": pages, "items": keep} | "Join" >> JoinPacked(lambda d: d["url"])
        return self.rejects.apply(joined, "Remove",
                                  _RemoveC4(self.step, self.min_sentences, self.splitter, self.rejects.enabled))


def normalize_url(url: str) -> str:
    """tfds ``c4_utils.normalize_url``."""
    url = re.sub(r"https?:\/\/(www\.)?", "", url)
    url = re.sub(r"\?(utm_|ref|feed).*", "", url)
    return url.rstrip("/")


def newest_page(kv):
    """tfds ``select_newest_page``: of the (packed) pages of one normalised URL, the one with
    the latest WARC-Date.  tfds keeps the first it meets among equal dates (an order Beam
    does not fix); here the smallest id wins, so the choice is reproducible."""
    _, pages = kv
    pages = sorted(map(unpack, pages), key=lambda d: d["id"])
    best = max(pages, key=lambda d: (d.get("metadata") or {}).get("warc_date", ""))  # first of the newest
    count_kept("url_dedup", best)
    if len(pages) > 1:
        Metrics.counter("url_dedup", "dropped_duplicate_url").inc(len(pages) - 1)
    return best


class DedupUrls(beam.PTransform):
    """tfds: ``normalize_url``, group by it, keep the newest page (pages without a URL are
    dropped, as tfds' WET splitter drops them)."""

    def expand(self, pages):
        def keyed(d):
            if not d.get("url"):
                Metrics.counter("url_dedup", "dropped_no_url").inc()
                return
            yield normalize_url(d["url"]), pack(d)

        return (pages | "NormalizeUrl" >> beam.FlatMap(keyed).with_output_types(Packed)
                      | "GroupUrl" >> beam.GroupByKey()
                      | "Newest" >> beam.Map(newest_page))
