"""StackExchange (2% of LLaMA's mix): questions with their answers sorted by score."""
from __future__ import annotations


import functools
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.metrics import Metrics

from core import fs
from core.errors import InputError
from filters.stackexchange import (MAX_ROW_BYTES, SEVEN_Z_MAGIC, ARCHIVE, PAPER_SITES, format_question, is_meta, is_posts_input,
                                  iter_archive_posts, iter_posts, post_units, site_of)

from core.options import option

from . import beam_utils
from core.schema import make_doc


def check_inputs(inputs, prefix=None):
    for spec in inputs:
        f = beam_utils.first_input(spec, "Posts.xml or .7z site archives", prefix=prefix, where=is_posts_input)
        with fs.open_read(f) as fh:
            head = fh.read(512).lstrip(b"\xef\xbb\xbf")
        if f.endswith(ARCHIVE):
            if not head.startswith(SEVEN_Z_MAGIC):
                raise InputError(f"{f}: not a 7z archive")
        elif b"<posts" not in head:
            raise InputError(f"{f}: not a StackExchange Posts.xml (no <posts> element)")


def _selected(path, sites):
    """Meta sites are excluded (counted); with ``sites``, only those sites are read."""
    site = site_of(path)
    if is_meta(site):
        Metrics.counter("read", "excluded_meta_sites").inc()
        return False
    if sites and site not in sites:
        Metrics.counter("read", "unselected_sites").inc()
        return False
    return True


def _units(path):
    """A Posts.xml in byte ranges; a site archive as one unit (it is extracted to disk)."""
    return [(path, 0, None)] if path.endswith(ARCHIVE) else post_units(path)


def read_posts(unit, counter, max_row_bytes: int = MAX_ROW_BYTES):
    path, start, end = unit
    site = site_of(path)
    too_large = lambda: counter("dropped_row_too_large")  # noqa: E731
    posts = (iter_archive_posts(path, skipped=too_large, max_row_bytes=max_row_bytes) if path.endswith(ARCHIVE)
             else iter_posts(path, start, end, max_row_bytes=max_row_bytes, skipped=too_large))
    for post in posts:
        counter("questions" if post["PostTypeId"] == "1" else "answers")
        key = post["Id"] if post["PostTypeId"] == "1" else post.get("ParentId", "")
        yield (site, key), post


class _Format(beam.DoFn):
    def __init__(self, reference: bool = False):
        self.reference = reference

    def process(self, kv):
        (site, qid), posts = kv
        posts = list(posts)
        questions = [p for p in posts if p["PostTypeId"] == "1"]
        answers = [p for p in posts if p["PostTypeId"] == "2"]
        if not questions:
            Metrics.counter("format", "orphan_answers").inc(len(answers))
            return
        q = questions[0]
        text, ordered = format_question(q, answers, reference=self.reference)
        Metrics.counter("format", "unanswered" if not answers else "answered").inc()
        doc = make_doc(f"{site}/{qid}", "stackexchange", text, url=f"https://{site}/questions/{qid}",
                       language="en",
                       metadata={"site": site, "question_id": qid, "score": q.get("Score", "0"),
                                 "answer_scores": ",".join(a.get("Score", "0") for a in ordered),
                                 "accepted_answer_id": q.get("AcceptedAnswerId", ""),
                                 "tags": q.get("Tags", "")})
        beam_utils.count_kept("format", doc)
        yield doc


def build(p, inputs, out_dir, target_bytes=256 << 20, sites=None, input_prefix=None, reference=False,
          max_row_bytes=MAX_ROW_BYTES):
    return (p | "Files" >> beam_utils.ExpandInputs(inputs, prefix=input_prefix, where=is_posts_input)
              | "Sites" >> beam.Filter(_selected, sites)
              | "Ranges" >> beam.FlatMap(_units)
              | "SpreadRanges" >> beam.Reshuffle()
              | "Posts" >> beam.ParDo(beam_utils.ReadFiles(
                  "read", functools.partial(read_posts, max_row_bytes=max_row_bytes), documents=False))
              | "ByQuestion" >> beam.GroupByKey()
              | "Format" >> beam.ParDo(_Format(reference))
              | "Shards" >> beam_utils.WriteShards(out_dir, lambda d: "stackexchange", target_bytes))


@dataclass
class Options:
    sites: tuple[str, ...] | None = option(None, "sites to keep; 'paper' = LLaMA's 28 largest (default: all "
                                                 "non-meta)", nargs="+", type=str)
    reference: bool = option(False, "RedPajama's post_processing.py exactly: scores sorted as strings, <br> "
                                    "glues words, an empty '*' line before ordered lists")
    max_post_mb: float | None = option(None, "skip (and count) a Posts.xml row larger than this (default 16)",
                                       type=float)


def run(inputs, out_dir, sites=None, target_bytes=256 << 20, runner="DirectRunner", beam_args=None,
        force=False, input_prefix=None, dry_run=False, reference=False, max_post_mb=None):
    if sites and "paper" in sites:
        sites = set(PAPER_SITES) | (set(sites) - {"paper"})
    elif sites:
        sites = set(sites)
    check_inputs(inputs, input_prefix)
    sites = sorted(sites) if sites else None

    def some_site(stats):
        if not stats["counters"].get("read", {}).get("files"):
            raise InputError(f"no Posts.xml of a selected, non-meta site in {', '.join(inputs)}")

    extra = {"inputs": list(inputs), "sites": sites or "all", **({"reference": True} if reference else {})}
    max_row = beam_utils.megabytes(max_post_mb, MAX_ROW_BYTES)
    return beam_utils.run_step(lambda p: build(p, inputs, out_dir, target_bytes, sites, input_prefix, reference,
                                               max_row),
                               out_dir, runner, beam_args, force, dry_run=dry_run, before_complete=some_site,
                               extra=extra)
