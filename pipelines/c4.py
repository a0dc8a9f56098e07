"""C4 (15% of LLaMA's mix) from Common Crawl WET/WARC (or JSONL pages), as tfds builds it.

    read -> clean_page (filters.c4) -> line dedup across pages (one copy kept) ->
    >= 3 sentences again -> LDNOOBW bad-words page filter -> English by fastText LID

Line dedup: tfds ``remove_duplicate_text`` keys the stripped line; one copy of a line
repeated across pages is kept (here: in the page with the smallest id).  tfds identifies
language with langdetect at 0.99; LLaMA's description and this pipeline use fastText
(lid.176) with a configurable threshold (default 0.5, as CCNet).
"""
from __future__ import annotations

import hashlib

import apache_beam as beam
from apache_beam.metrics import Metrics

from filters.c4 import MIN_NUM_SENTENCES, clean_page, count_sentences, has_badword

from . import beam_utils
from .ccnet import LanguageID, check_inputs, read_cc_inputs


def _exact_line_key(line: str) -> int:
    return int.from_bytes(hashlib.md5(line.strip().encode("utf-8")).digest()[:8], "big")


class CleanPage(beam.DoFn):
    def process(self, doc):
        counts: dict = {}
        text = clean_page(doc["text"], counts)
        for k, v in counts.items():
            Metrics.counter("clean", k).inc(v)
        if text is None:
            return
        Metrics.counter("clean", "documents").inc()
        yield dict(doc, text=text)


def _enough_sentences(doc):
    ok = sum(count_sentences(ln) for ln in doc["text"].split("\n")) >= MIN_NUM_SENTENCES
    Metrics.counter("sentences", "documents" if ok else "dropped_too_few_sentences").inc()
    return ok


def _no_badwords(doc):
    bad = has_badword(doc["text"])
    Metrics.counter("badwords", "dropped" if bad else "documents").inc()
    return not bad


def build(p, inputs, out_dir, lid_model, lang_threshold=0.5, target_bytes=256 << 20, input_prefix=None):
    docs = read_cc_inputs(p, inputs, "c4", input_prefix)
    return (docs
            | "Clean" >> beam.ParDo(CleanPage())
            | "Dedup" >> beam_utils.DedupLines("dedup", _exact_line_key)
            | "Sentences" >> beam.Filter(_enough_sentences)
            | "BadWords" >> beam.Filter(_no_badwords)
            | "LangID" >> beam.ParDo(LanguageID(lid_model, ("en",), lang_threshold))
            | "Shards" >> beam_utils.WriteShards(out_dir, lambda d: "c4", target_bytes))


def run(inputs, out_dir, lid_model, lang_threshold=0.5, target_bytes=256 << 20, runner="DirectRunner",
        beam_args=None, force=False, input_prefix=None, dry_run=False):
    check_inputs(inputs, input_prefix)
    return beam_utils.run_step(
        lambda p: build(p, inputs, out_dir, lid_model, lang_threshold, target_bytes, input_prefix),
        out_dir, runner, beam_args, force, dry=dry_run, extra={"inputs": list(inputs)})
