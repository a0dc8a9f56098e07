"""The CCNet pipeline (LLaMA's CommonCrawl, 67% of the mix) as an Apache Beam pipeline.

    read WET/WARC (+ JSONL) -> paragraph dedup -> fastText LID -> SentencePiece/KenLM
    perplexity -> <lang>_<head|middle|tail> Parquet shards + stats.json

Paragraph dedup exactly as cc_net (facebookresearch/cc_net@bda555b ``cc_net/dedup.py``),
as Beam shuffles (``pipelines.dedup.CCNetDedup``): every line is keyed by cc_net's
``normalize_for_dedup`` + ``str_hash``; a line that occurs in two or more documents of the
dedup group is removed from every one of them (no copy is kept), a line repeated inside
one document keeps its first copy, and documents left without lines are dropped.  The
group is the whole run, or ``--dedup-group-files N`` consecutive input files (cc_net's
``hash_in_mem``).

Language ID uses lid.176 on the whole deduplicated text; documents below the
threshold or not in ``languages`` are dropped and counted per language under
``langid/dropped_<lang>``.  Perplexity and buckets follow ``filters.perplexity``.
"""
from __future__ import annotations

import functools
import io
import json
import logging
import zlib
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.metrics import Metrics

from core import fs
from core.errors import InputError
from filters.perplexity import DEFAULT_CUTOFFS, LMPaths, bucket
from filters.text import line_hash
from filters.warc import MAX_RECORD_BYTES, ReadReport, check_warc_file, read_documents

from . import beam_utils, dedup
from core.schema import make_doc

log = logging.getLogger(__name__)
WARC_SUFFIXES = (".warc", ".wet", ".warc.gz", ".wet.gz", ".warc.wet", ".warc.wet.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz")


@dataclass
class CCNetConfig:
    inputs: list[str]
    out_dir: str
    lm_dir: str
    lid_model: str
    languages: tuple[str, ...] = ("en",)
    lang_threshold: float = 0.5
    cutoffs: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_CUTOFFS))
    target_shard_bytes: int = 256 << 20
    runner: str = "DirectRunner"
    beam_args: list[str] = field(default_factory=list)
    force: bool = False
    input_prefix: str | None = None  # for relative lines of a paths manifest
    dedup_group_files: int = 0  # 0: dedup across the whole run; N: within groups of N input files
    dry_run: bool = False
    max_record_mb: float | None = None  # skip (and count) a WARC record or JSON line over this (default 64)
    rejected: bool = False  # keep the dropped documents in out_dir/_rejected/ (beam_utils.Rejects)


SUFFIXES = WARC_SUFFIXES + JSONL_SUFFIXES


def check_inputs(inputs: list[str], prefix: str | None = None) -> None:
    """Each input spec (file, directory, glob, paths manifest) exists and its first file is a
    WARC/WET or JSON-lines file: a one-line error at launch.  The full file list is made
    inside the pipeline (``beam_utils.ExpandInputs``); a bad file found there fails the step
    naming it."""
    for spec in inputs:
        f = beam_utils.first_input(spec, ".warc/.wet/.jsonl files", SUFFIXES, prefix=prefix)
        if f.endswith(JSONL_SUFFIXES):
            _check_jsonl(f)
        else:
            check_warc_file(f)


def read_cc_inputs(p, inputs: list[str], source: str, prefix: str | None = None, group_files: int = 0,
                   max_record_bytes: int = MAX_RECORD_BYTES):
    read = (functools.partial(read_cc_file, source=source, max_record_bytes=max_record_bytes) if not group_files
            else functools.partial(_read_grouped, source=source, max_record_bytes=max_record_bytes))
    return (p | "Inputs" >> beam_utils.ExpandInputs(inputs, SUFFIXES, prefix=prefix, group_files=group_files)
              | "Read" >> beam.ParDo(beam_utils.ReadFiles("read", read)))


def _read_grouped(item, counter, source, max_record_bytes=MAX_RECORD_BYTES):
    path, group = item
    for doc in read_cc_file(path, counter, source, max_record_bytes):
        doc["metadata"][dedup.GROUP] = group
        yield doc


def _check_jsonl(path: str) -> None:
    try:
        with fs.open_decompressed(path) as f:
            first = io.TextIOWrapper(f, encoding="utf-8").readline()
        doc = json.loads(first)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a JSON-lines file ({type(e).__name__}: {e})") from None
    if not isinstance(doc, dict) or not ({"text", "raw_content"} & doc.keys()):
        raise InputError(f"{path}: JSON lines need a 'text' or 'raw_content' field")


def read_cc_file(path: str, counter, source: str = "common_crawl", max_record_bytes: int = MAX_RECORD_BYTES):
    """One WARC/WET or JSON-lines file -> documents, for ``beam_utils.ReadFiles``.

    Damaged records (wrong lengths, a truncated or corrupt compressed stream, bad JSON lines)
    are counted and skipped, keeping everything before them, as Common Crawl data needs; so
    is a record or JSON line over ``max_record_bytes`` (``oversized_records``), read past
    without being held."""
    name = fs.basename(path)
    docs = _read_jsonl(path, name, source, counter, max_record_bytes) if path.endswith(JSONL_SUFFIXES) \
        else _read_warc(path, name, source, counter, max_record_bytes)
    for doc in docs:
        if not doc["text"].strip():
            counter("empty_documents")
            continue
        yield doc


def _read_warc(path, name, source, counter, max_record_bytes):
    report = ReadReport()
    for index, url, text, headers, anomaly in read_documents(path, report, max_record_bytes):
        meta = {"source_file": name, "record_index": index,
                "warc_record_id": headers.get("warc-record-id", ""), "warc_date": headers.get("warc-date", "")}
        if anomaly:
            meta["anomaly"] = anomaly
        yield make_doc(f"{name}/{index:07d}", source, text, url=url, metadata=meta)
    counter("records", report.records)
    counter("length_mismatch", report.length_mismatch)
    counter("truncated_records", report.truncated)
    counter("oversized_records", report.oversized)
    if report.stream_error:
        counter("stream_errors")
    for note in report.notes:
        log.warning("%s: %s", path, note)


def _read_jsonl(path, name, source, counter, max_record_bytes):
    i = -1
    try:
        with fs.open_decompressed(path) as raw:
            for i, line in enumerate(fs.bounded_lines(raw, max_record_bytes)):
                counter("records")
                if line is None:
                    counter("oversized_records")
                    log.warning("%s:%d: line over %d bytes (--max-record-mb); skipped", path, i + 1, max_record_bytes)
                    continue
                try:
                    d = json.loads(line.decode("utf-8", "replace"))
                    text = d.get("raw_content") or d.get("text") or ""
                except (json.JSONDecodeError, AttributeError):
                    counter("bad_json_lines")
                    log.warning("%s:%d: not valid JSON; skipped", path, i + 1)
                    continue
                url = d.get("url") or (d.get("metadata") or {}).get("url") or d.get("id", "")
                yield make_doc(f"{name}/{i:07d}", source, text, url=str(url),
                               metadata={"source_file": name, "record_index": i})
    except (OSError, EOFError, zlib.error) as e:
        counter("stream_errors")
        log.warning("%s: stream stopped after line %d (%s: %s)", path, i + 1, type(e).__name__, e)


class IdentifyLanguage(beam.DoFn):
    """fastText lid.176 on the whole document (newlines joined, as cc_net): ``language`` and
    the raw ``lang_score``; ``language_kept`` decides, ``round_score`` rounds the kept."""

    def __init__(self, model_path: str):
        self.model_path = model_path

    def setup(self):
        from filters.langid import LanguageIdentifier

        self.lid = LanguageIdentifier(self.model_path)  # staged locally when remote

    def process(self, doc):
        lang, score = self.lid.predict(doc["text"])
        yield dict(doc, language=lang, lang_score=score)


def language_kept(languages, threshold: float, doc) -> str | None:
    """cc_net's language filter: one of ``languages`` at ``score >= threshold`` (the raw score)."""
    lang = doc["language"]
    if lang not in languages:
        return lang
    return None if doc["lang_score"] >= threshold else f"{lang}_below_threshold"


def round_score(doc):
    Metrics.counter("langid", "lines").inc(doc["text"].count("\n") + 1)
    return dict(doc, lang_score=round(doc["lang_score"], 4))


def filter_language(docs, rejects, lid_model: str, languages, threshold: float):
    """Language identification and cc_net's filter on it, through the filter contract."""
    import functools

    scored = docs | "IdentifyLanguage" >> beam.ParDo(IdentifyLanguage(lid_model))
    kept = rejects.keep_if(scored, "langid", functools.partial(language_kept, frozenset(languages), threshold),
                           label="LangID")
    return kept | "RoundScore" >> beam.Map(round_score)


class Perplexity(beam.DoFn):
    def __init__(self, lm_dir: str, cutoffs: dict):
        self.lm_dir, self.cutoffs = lm_dir, cutoffs

    def setup(self):
        from filters.perplexity import PerplexityScorer

        self.scorers = {}
        for lang in self.cutoffs:
            self.scorers[lang] = PerplexityScorer(LMPaths.in_dir(self.lm_dir, lang))

    def process(self, doc):
        lang = doc["language"]
        if lang not in self.scorers:  # no LM for this language: kept, unbucketed
            Metrics.counter("perplexity", f"no_lm_{lang}").inc()
            yield dict(doc, bucket="all")
            return
        pp = self.scorers[lang].score(doc["text"])
        b = bucket(pp, self.cutoffs[lang])
        Metrics.counter("perplexity", f"{lang}_{b}").inc()
        yield dict(doc, perplexity=pp, bucket=b)


def build(p: beam.Pipeline, cfg: CCNetConfig):
    docs = read_cc_inputs(p, cfg.inputs, "common_crawl", cfg.input_prefix, cfg.dedup_group_files,
                          beam_utils.megabytes(cfg.max_record_mb, MAX_RECORD_BYTES))
    deduped = docs | "Dedup" >> dedup.CCNetDedup("dedup", line_hash)
    rejects = beam_utils.Rejects(cfg.out_dir, cfg.rejected, cfg.target_shard_bytes)
    lid = filter_language(deduped, rejects, cfg.lid_model, cfg.languages, cfg.lang_threshold)
    scored = lid | "Perplexity" >> beam.ParDo(Perplexity(cfg.lm_dir, cfg.cutoffs))
    rejects.write()
    return scored | "Shards" >> beam_utils.WriteShards(
        cfg.out_dir, key_fn=lambda d: f"{d['language']}_{d['bucket']}",
        target_bytes=cfg.target_shard_bytes)


def run(cfg: CCNetConfig) -> dict | None:
    """Run the pipeline; returns the stats, or None when the output was already complete."""
    check_inputs(cfg.inputs, cfg.input_prefix)
    for lang in cfg.cutoffs:
        LMPaths.in_dir(cfg.lm_dir, lang).check()
    if not fs.isfile(cfg.lid_model):
        raise InputError(f"{cfg.lid_model}: fastText language-ID model not found")
    return beam_utils.run_step(lambda p: build(p, cfg), cfg.out_dir, cfg.runner,
                               cfg.beam_args, cfg.force, dry_run=cfg.dry_run, extra={"inputs": list(cfg.inputs), "config": {
                                       "languages": list(cfg.languages),
                                       "lang_threshold": cfg.lang_threshold,
                                       "dedup_group_files": cfg.dedup_group_files,
                                       **({"max_record_mb": cfg.max_record_mb} if cfg.max_record_mb else {}),
                                       "cutoffs": {k: list(v) for k, v in cfg.cutoffs.items()}}})
