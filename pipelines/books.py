"""Books (4.5% of LLaMA's mix): Gutenberg boilerplate removed, near-duplicate books removed
(MinHash LSH over character shingles, ``filters.books``: the longest copy of a group is kept)."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from filters.books import minhash, near_duplicates, strip_gutenberg
from core import fs
from filters.errors import InputError

from . import beam_utils
from .schema import make_doc


SUFFIXES = (".txt",)


def check_inputs(inputs, prefix=None):
    for spec in inputs:
        beam_utils.first_input(spec, ".txt books", SUFFIXES, prefix=prefix)


def read_book(path, counter):
    try:
        raw = fs.read_bytes(path)
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    if b"\x00" in raw[:4096]:
        raise InputError(f"{path}: binary file, not a plain-text book")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        counter("decode_fallback_latin1")
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
        yield doc["id"], len(doc["text"]), minhash(doc["text"], self.num_perm, self.k).hashvalues.tolist()


def _find_duplicates(sketches, threshold, num_perm):
    dropped = near_duplicates(sketches, threshold, num_perm)
    return [(d, kept) for d, kept in dropped.items()]


class _DropDuplicates(beam.DoFn):
    def process(self, doc, dropped):
        if doc["id"] in dropped:
            kept, j = dropped[doc["id"]]
            Metrics.counter("near_dedup", "dropped").inc()
            import logging
            logging.getLogger(__name__).info("near-duplicate: %s ~ %s (Jaccard %.3f): dropped",
                                             doc["id"], kept, j)
            return
        Metrics.counter("near_dedup", "documents").inc()
        yield doc


def build(p, inputs, out_dir, threshold=0.9, num_perm=128, k=20, target_bytes=256 << 20, input_prefix=None):
    books = (p | "Files" >> beam_utils.ExpandInputs(inputs, SUFFIXES, prefix=input_prefix)
               | "Read" >> beam.ParDo(beam_utils.ReadFiles("read", read_book)))
    dropped = (books | "MinHash" >> beam.ParDo(_Sketch(num_perm, k))
                     | "All" >> beam.combiners.ToList()
                     | "LSH" >> beam.FlatMap(_find_duplicates, threshold, num_perm))
    return (books | "Drop" >> beam.ParDo(_DropDuplicates(), dropped=beam.pvalue.AsDict(dropped))
                  | "Shards" >> beam_utils.WriteShards(out_dir, lambda d: "books", target_bytes))


def run(inputs, out_dir, threshold=0.9, target_bytes=256 << 20, runner="DirectRunner", beam_args=None,
        force=False, input_prefix=None, dry_run=False):
    check_inputs(inputs, input_prefix)
    return beam_utils.run_step(
        lambda p: build(p, inputs, out_dir, threshold, target_bytes=target_bytes, input_prefix=input_prefix),
        out_dir, runner, beam_args, force, dry=dry_run,
        extra={"inputs": list(inputs), "near_dup_threshold": threshold})
