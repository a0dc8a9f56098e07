"""C4 (15% of LLaMA's mix) from Common Crawl WET/WARC (or JSONL pages), as tfds builds it
(tensorflow/datasets@3e77995 ``tensorflow_datasets/text/c4_utils.py``, ``c4.py``), in tfds'
order:

    read -> page length <= 190,000 chars (``is_valid_length``) -> URL dedup (``normalize_url``,
    newest page kept: ``select_newest_page``) -> clean_page (``filters.c4``) -> line dedup
    across pages (``remove_duplicate_text``: a line is kept only in the page with the smallest
    md5 of its URL, in-page repeats removed, then >= 3 sentences again) -> English -> LDNOOBW
    bad-words page filter

Both dedups are Beam shuffles (``pipelines.dedup``).  Language (``lang_id``): ``"tfds"``
(the default) is tfds' ``detect_english`` -- langdetect, seed 0, best prediction ``en`` at
probability >= 0.99 -- the filter of the public C4 that LLaMA trained on ("the publicly
available C4 dataset"); ``"fasttext"`` is lid.176 as in CCNet, with ``lang_threshold``
(default 0.5).  Sentences are counted with NLTK's punkt English model as tfds counts them
when it is installed (``make setup`` downloads it); without it (offline) by a punctuation
rule, with a warning, and the splitter used is recorded in stats.json (``config.sentences``;
``--sentences punkt`` refuses to run without the model).
"""
from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
from apache_beam.metrics import Metrics

import logging

from filters.c4 import (LANG_IDS, MIN_NUM_SENTENCES, PUNKT_MISSING, SPLITTERS, clean_page, default_splitter,
                        has_badword, langdetect_english, punkt_available)
from core.errors import InputError

from core import paths
from core.options import MAX_RECORD_HELP, REJECTED_HELP, fraction, option

from . import beam_utils
from filters.warc import MAX_RECORD_BYTES

from .ccnet import check_inputs, filter_language, read_cc_inputs
from .dedup import C4Dedup, DedupUrls

MAX_PAGE_CHARS = 190_000  # tfds is_valid_length


def too_long(doc) -> str | None:
    """tfds ``is_valid_length``."""
    return None if len(doc["text"]) <= MAX_PAGE_CHARS else "too_long"


class CleanPage(beam.DoFn):
    """tfds ``clean_page``: line counts as ``clean/line_*``; a dropped page as
    ``clean/dropped_<reason>`` (too_few_sentences, lorem_ipsum, curly_bracket), a reject when asked."""

    def __init__(self, splitter: str = "rule", rejected: bool = False):
        self.splitter, self.rejected = splitter, rejected

    def process(self, doc):
        counts: dict = {}
        text = clean_page(doc["text"], counts, self.splitter)
        for k, v in counts.items():
            Metrics.counter("clean", "dropped_" + k[len("page_"):] if k.startswith("page_") else k).inc(v)
        if text is None:
            if self.rejected:
                reason = next(k for k in counts if k.startswith("page_"))[len("page_"):]
                yield beam_utils.reject(doc, "clean", reason)
            return
        doc = dict(doc, text=text)
        beam_utils.count_kept("clean", doc)
        yield doc


def not_english(doc) -> str | None:
    """tfds ``detect_english`` (``filters.c4.langdetect_english``): None for English."""
    return langdetect_english(doc["text"])


def badword(doc) -> str | None:
    """tfds' LDNOOBW page filter."""
    return "badword" if has_badword(doc["text"]) else None


def build(p, inputs, out_dir, lid_model, lang_threshold=0.5, target_bytes=256 << 20, input_prefix=None,
          lang_id="tfds", sentences="rule", max_record_bytes=MAX_RECORD_BYTES, rejected=False):
    rejects = beam_utils.Rejects(out_dir, rejected, target_bytes)
    docs = read_cc_inputs(p, inputs, "c4", input_prefix, max_record_bytes=max_record_bytes)
    docs = (rejects.keep_if(docs, "length", too_long)
            | "UrlDedup" >> DedupUrls())
    docs = rejects.apply(docs, "Clean", CleanPage(sentences, rejected))
    docs = docs | "Dedup" >> C4Dedup("dedup", MIN_NUM_SENTENCES, sentences, rejects)
    if lang_id == "tfds":
        english = rejects.keep_if(docs, "langid", not_english, label="LangID") | "English" >> beam.Map(
            lambda d: dict(d, language="en"))
    else:
        english = filter_language(docs, rejects, lid_model, ("en",), lang_threshold)
    kept = rejects.keep_if(english, "badwords", badword, label="BadWords")
    rejects.write()
    return kept | "Shards" >> beam_utils.WriteShards(out_dir, lambda d: "c4", target_bytes)


@dataclass
class Options:
    lid_model: str | None = option(None, "fastText lid.176 model for --lang-id fasttext (default: the bundled "
                                         "one)", type=str, data="models/fasttext-lid.176/lid.176.ftz")
    lang_id: str = option(LANG_IDS[0], "tfds: langdetect, en at >= 0.99, as the public C4 LLaMA used (default); "
                                       "fasttext: lid.176 at --lang-threshold, as CCNet", choices=LANG_IDS)
    lang_threshold: float = option(0.5, "for --lang-id fasttext", type=fraction)
    sentences: str | None = option(None, "sentence counter: NLTK punkt as tfds (default when installed) or a "
                                         "punctuation rule (the default without it, with a warning)",
                                   type=str, choices=("punkt", "rule"))
    max_record_mb: float | None = option(None, MAX_RECORD_HELP, type=float)
    rejected: bool = option(False, REJECTED_HELP)


def run(inputs, out_dir, lid_model=None, lang_threshold=0.5, target_bytes=256 << 20, runner="DirectRunner",
        beam_args=None, force=False, input_prefix=None, dry_run=False, lang_id="tfds", sentences=None,
        max_record_mb: float | None = None, rejected: bool = False):
    """``sentences``: "punkt" (tfds), "rule", or None for punkt when installed, else the rule.
    ``max_record_mb``: a WARC record or JSON line over this is skipped and counted (default 64)."""
    check_inputs(inputs, input_prefix)
    lid_model = str(lid_model or paths.lid_model())
    if lang_id not in LANG_IDS:
        raise InputError(f"--lang-id {lang_id!r}: expected one of {', '.join(LANG_IDS)}")
    if sentences is None:
        sentences = default_splitter()
        if sentences == "rule":
            logging.getLogger(__name__).warning("C4: %s; counting sentences by rule instead", PUNKT_MISSING.split(":")[0])
    elif sentences not in SPLITTERS:
        raise InputError(f"--sentences {sentences!r}: expected one of {', '.join(SPLITTERS)}")
    elif sentences == "punkt" and not punkt_available():
        raise InputError(PUNKT_MISSING)
    return beam_utils.run_step(
        lambda p: build(p, inputs, out_dir, lid_model, lang_threshold, target_bytes, input_prefix, lang_id,
                        sentences, beam_utils.megabytes(max_record_mb, MAX_RECORD_BYTES), rejected),
        out_dir, runner, beam_args, force, dry_run=dry_run,
        extra={"inputs": list(inputs), "config": {"lang_id": lang_id, "sentences": sentences,
                                                  **({"max_record_mb": max_record_mb} if max_record_mb else {})}})
