"""Books (4.5% of LLaMA's mix): Gutenberg boilerplate removed, near-duplicate books removed
(MinHash LSH over character shingles, ``filters.books``: the longest copy of a group is kept).

The paper removes "books with more than 90% content overlap": here, an estimated Jaccard
similarity of >= 0.9 between the books' 20-character shingle sets.  RedPajama
(togethercomputer/RedPajama-Data@45b37c2:data_prep/book/dedup.py) approximates the same with
a 64-bit SimHash of 6-character features and a Hamming distance <= 5, and keeps the first
book of a group in its input order; on a distributed runner input order means nothing, so
the longest copy is kept here.  On the shared books both find the same group and keep the
same number of books (``tests/reference/test_redpajama_books_parity.py``)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
import logging

import apache_beam as beam
from apache_beam.metrics import Metrics

from core import fs
from filters.decode import decode_text, has_bom
from filters.books import band_keys, drop_by_components, estimated_jaccard, lsh_bands, minhash, strip_gutenberg
from core.errors import InputError

from core.options import REJECTED_HELP, fraction, option

from . import beam_utils
from core.schema import make_doc

log = logging.getLogger(__name__)


SUFFIXES = (".txt",)


def check_inputs(inputs, prefix=None):
    for spec in inputs:
        beam_utils.first_input(spec, ".txt books", SUFFIXES, prefix=prefix)


MAX_BOOK_BYTES = 64 << 20  # the largest real books are a few MB; a 200 MB "book" is not one


def read_book(path, counter, max_bytes: int = MAX_BOOK_BYTES):
    try:
        if fs.size(path) > max_bytes:  # skipped before it is read: MinHash memory grows with it
            counter("dropped_too_large")
            log.warning("skipped %s: over %d MB (--max-book-mb)", path, max_bytes >> 20)
            return
        raw = fs.read_bytes(path)
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    if b"\x00" in raw[:4096] and not has_bom(raw):  # UTF-16/32 text has NULs, and a BOM
        raise InputError(f"{path}: binary file, not a plain-text book")
    decoded = decode_text(raw)  # filters.decode: one bad byte costs one character, never the file
    if decoded.encoding not in ("utf-8", "utf-8-sig"):
        counter(f"decoded_as_{decoded.encoding}")
    if decoded.replaced:
        counter("invalid_utf8_sequences_replaced", decoded.replaced)
    text = decoded.text
    body, had_markers = strip_gutenberg(text)
    counter("gutenberg_boilerplate_removed" if had_markers else "no_gutenberg_markers")
    if not body:
        counter("empty")
        return
    name = fs.basename(path)
    yield make_doc(name.rsplit(".", 1)[0], "books", body, url=name, language="en",
                   metadata={"file": name, "chars_before_strip": len(text)})


class _Sketch(beam.DoFn):
    def __init__(self, num_perm, k):
        self.num_perm, self.k = num_perm, k

    def process(self, doc):
        yield doc["id"], len(doc["text"]), minhash(doc["text"], self.num_perm, self.k).tolist()


def _pairs(kv, threshold):
    """Books sharing one LSH bucket -> their pairs whose estimated Jaccard >= threshold."""
    _, books = kv
    books = sorted(books)
    for i, (a, la, ha) in enumerate(books):
        for b, lb, hb in books[i + 1:]:
            j = estimated_jaccard(ha, hb)
            if j >= threshold:
                yield (a, b), (la, lb, j)


def _components(edges):
    """The (small) set of confirmed pairs -> (dropped id, (kept id, jaccard))."""
    lengths = {}
    for (a, b), (la, lb, _) in edges:
        lengths[a], lengths[b] = la, lb
    yield from drop_by_components([(a, b, j) for (a, b), (_, _, j) in edges], lengths).items()


class _DropDuplicates(beam.DoFn):
    def __init__(self, rejected: bool = False):
        self.rejected = rejected

    def process(self, kv):
        _, joined = kv
        dropped = list(joined["dropped"])
        for doc in joined["doc"]:
            if dropped:
                kept, j = dropped[0]
                Metrics.counter("near_dedup", "dropped_near_duplicate").inc()
                log.info("near-duplicate: %s ~ %s (Jaccard %.3f): dropped", doc["id"], kept, j)
                if self.rejected:
                    yield beam_utils.reject(doc, "near_dedup", "near_duplicate", duplicate_of=kept,
                                            jaccard=f"{j:.3f}")
                continue
            beam_utils.count_kept("near_dedup", doc)
            yield doc


class NearDedup(beam.PTransform):
    """Book-level near-dedup as shuffles: MinHash per book, LSH band keys grouped with
    ``GroupByKey`` (candidate threshold ``threshold - 0.2``, floor 0.5, bands and rows as
    datasketch's MinHashLSH picks them), candidates confirmed by the MinHash Jaccard estimate
    >= ``threshold``, clusters = connected components of the (small) confirmed-pair set, the
    longest book of a cluster kept; the drops are joined back to the books by id and go to
    ``rejects`` (``beam_utils.Rejects``: counted as ``near_dedup/dropped_near_duplicate``, kept
    with ``duplicate_of`` and ``jaccard`` when asked)."""

    def __init__(self, threshold=0.9, num_perm=128, k=20, rejects: beam_utils.Rejects | None = None):
        super().__init__()
        self.threshold, self.num_perm, self.k = threshold, num_perm, k
        self.rejects = rejects or beam_utils.Rejects("", enabled=False)

    def expand(self, books):
        bands, rows = lsh_bands(max(0.5, self.threshold - 0.2), self.num_perm)
        dropped = (books
                   | "MinHash" >> beam.ParDo(_Sketch(self.num_perm, self.k))
                   | "Bands" >> beam.FlatMap(lambda s: ((key, s) for key in band_keys(s[2], bands, rows)))
                   | "Buckets" >> beam.GroupByKey()
                   | "Pairs" >> beam.FlatMap(_pairs, self.threshold)
                   | "OnePerPair" >> beam.CombinePerKey(max)
                   | "Edges" >> beam.combiners.ToList()
                   | "Components" >> beam.FlatMap(_components))
        joined = ({"doc": books | "ById" >> beam.Map(lambda d: (d["id"], d)), "dropped": dropped}
                  | "Join" >> beam.CoGroupByKey())
        return self.rejects.apply(joined, "Drop", _DropDuplicates(self.rejects.enabled))


def build(p, inputs, out_dir, threshold=0.9, num_perm=128, k=20, target_bytes=256 << 20, input_prefix=None,
          max_book_bytes=MAX_BOOK_BYTES, rejected=False):
    read = functools.partial(read_book, max_bytes=max_book_bytes)
    rejects = beam_utils.Rejects(out_dir, rejected, target_bytes)
    books = (p | "Files" >> beam_utils.ExpandInputs(inputs, SUFFIXES, prefix=input_prefix)
               | "Read" >> beam.ParDo(beam_utils.ReadFiles("read", read)))
    written = (books | "NearDedup" >> NearDedup(threshold, num_perm, k, rejects)
                     | "Shards" >> beam_utils.WriteShards(out_dir, lambda d: "books", target_bytes))
    rejects.write()
    return written


@dataclass
class Options:
    threshold: float = option(0.9, "near-duplicate Jaccard threshold", type=fraction)
    max_book_mb: float | None = option(None, "skip (and count) a book file larger than this (default 64)",
                                       type=float)
    rejected: bool = option(False, REJECTED_HELP)


def run(inputs, out_dir, threshold=0.9, target_bytes=256 << 20, runner="DirectRunner", beam_args=None,
        force=False, input_prefix=None, dry_run=False, max_book_mb: float | None = None, rejected: bool = False):
    check_inputs(inputs, input_prefix)
    cap = beam_utils.megabytes(max_book_mb, MAX_BOOK_BYTES)
    return beam_utils.run_step(
        lambda p: build(p, inputs, out_dir, threshold, target_bytes=target_bytes, input_prefix=input_prefix,
                        max_book_bytes=cap, rejected=rejected),
        out_dir, runner, beam_args, force, dry_run=dry_run,
        extra={"inputs": list(inputs), "near_dup_threshold": threshold})
