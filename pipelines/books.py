"""Books (4.5% of LLaMA's mix): Gutenberg boilerplate removed, near-duplicate books removed
(MinHash LSH over character shingles, ``filters.books``: the longest copy of a group is kept)."""
from __future__ import annotations

from pathlib import Path

import apache_beam as beam
from apache_beam.metrics import Metrics

from filters.books import minhash, near_duplicates, strip_gutenberg
from filters.errors import InputError
from filters.paths import expand_paths

from . import beam_utils
from .schema import make_doc


def expand_inputs(inputs):
    return expand_paths(inputs, ".txt books", (".txt",))


def read_book(path, counter):
    raw = Path(path).read_bytes()
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
    yield make_doc(Path(path).stem, "books", body, url=str(Path(path).name), language="en",
                   metadata={"file": Path(path).name, "chars_before_strip": len(text)})


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


def build(p, files, out_dir, threshold=0.9, num_perm=128, k=20, target_bytes=256 << 20):
    books = (p | "Files" >> beam.Create(files) | "Reshuffle" >> beam.Reshuffle()
               | "Read" >> beam.ParDo(beam_utils.ReadFiles("read", read_book)))
    dropped = (books | "MinHash" >> beam.ParDo(_Sketch(num_perm, k))
                     | "All" >> beam.combiners.ToList()
                     | "LSH" >> beam.FlatMap(_find_duplicates, threshold, num_perm))
    return (books | "Drop" >> beam.ParDo(_DropDuplicates(), dropped=beam.pvalue.AsDict(dropped))
                  | "Shards" >> beam_utils.WriteShards(out_dir, lambda d: "books", target_bytes))


def run(inputs, out_dir, threshold=0.9, target_bytes=256 << 20, runner="DirectRunner", beam_args=None,
        force=False):
    files = expand_inputs(inputs)
    return beam_utils.run_step(lambda p: build(p, files, out_dir, threshold, target_bytes=target_bytes),
                               out_dir, runner, beam_args, force,
                               extra={"inputs": files, "near_dup_threshold": threshold})
