"""ArXiv (2.5% of LLaMA's mix): LaTeX sources cleaned by ``filters.latex``.

Input: papers as directories, ``.tar.gz``/``.tar`` or ``.gz`` files, or a directory of those;
and arXiv's bulk source archives (``arXiv_src_YYMM_NNN.tar``, tars of per-paper ``.gz``
files, as the requester-pays bucket serves them), which are streamed member by member, each
paper becoming its own work unit (reshuffled), so one archive never sits in memory."""
from __future__ import annotations

import functools
from dataclasses import dataclass
import logging

import apache_beam as beam

from core import fs
from core.errors import InputError
from filters.latex import (MAX_SCAN_BYTES, CleanReport, Limits, PaperTooLarge, ReferenceFailure, clean_paper,
                           clean_paper_reference, load_paper, load_paper_bytes)

from core.options import REJECTED_HELP, option

from . import beam_utils
from core.schema import make_doc

PAPER_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".gz", ".tex")


def papers_of(spec: str) -> list[str]:
    """The papers an input spec stands for: itself (an archive, a .tex file, or a directory
    with .tex files at its top), else the paper directories and archives directly under it."""
    if fs.isfile(spec):
        return [spec]
    files = [fs.relpath(f, spec) for f in fs.list_files(spec)]
    if any("/" not in f and f.endswith(".tex") for f in files):
        return [spec]
    papers = {f for f in files if "/" not in f and f.endswith(PAPER_SUFFIXES)}
    papers |= {f.split("/")[0] for f in files if f.count("/") == 1 and f.endswith(".tex")}
    return [fs.join(spec, p) for p in sorted(papers)]


def check_inputs(inputs):
    for spec in inputs:
        if fs.isfile(spec):
            if not spec.endswith(PAPER_SUFFIXES):
                raise InputError(f"{spec}: not a paper (expected a directory, .tar.gz, .gz or .tex)")
        elif not fs.isdir(spec):
            raise InputError(f"{spec}: no such file or directory")
        elif not fs.list_files(spec, PAPER_SUFFIXES, limit=1):
            raise InputError(f"{spec}: no papers (directories with .tex files or .tar.gz/.gz) here")


def is_bulk(path: str) -> bool:
    name = fs.basename(path)
    return name.startswith("arXiv_src_") and name.endswith(".tar")


def paper_items(path: str, max_scan_bytes: int = MAX_SCAN_BYTES):
    """path -> (name, None) for a paper; a bulk archive -> (member name, bytes) per paper,
    streamed (``tarfile`` in stream mode: one member in memory at a time)."""
    if not is_bulk(path):
        yield path, None
        return
    import tarfile

    from apache_beam.metrics import Metrics

    try:
        with fs.open_read(path) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                if not m.name.endswith((".gz", ".tex")):  # PDF-only submissions have no source
                    Metrics.counter("read", "bulk_members_without_source").inc()
                    continue
                Metrics.counter("read", "bulk_members").inc()
                if m.size > max_scan_bytes:
                    Metrics.counter("read", "dropped_archive_too_large").inc()
                    continue
                yield f"{path}/{m.name}", tar.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        Metrics.counter("read", "file_errors").inc()
        Metrics.counter("read", f"unreadable:{path}").inc()
        import logging

        logging.getLogger(__name__).error("%s: corrupt bulk archive (%s)", path, e)


def _paper_name(path: str) -> str:
    name = fs.basename(path)
    for suffix in PAPER_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def read_paper(item, counter, reference: bool = False, limits: Limits | None = None, rejected: bool = False):
    """A paper -> its cleaned document; a paper dropped (``read/dropped_<reason>``) is yielded as a
    reject when ``rejected``: its .tex files joined (or nothing, for one too large to read)."""
    path, data = item
    report, limits = CleanReport(), limits or Limits()
    name, files = _paper_name(path), {}

    def drop(reason, **extra):
        counter(f"dropped_{reason}")
        if rejected:
            raw = "\n".join(f"%% {f}\n{t}" for f, t in files.items())
            yield beam_utils.reject(make_doc(name, "arxiv", raw, url=name, language="en"), "read", reason, **extra)

    try:
        files = (load_paper(path, report, limits) if data is None
                 else load_paper_bytes(path, data, report, limits.max_tex_bytes, limits.max_scan_bytes))
        if reference:
            text, reason = _reference_text(files, report)
            if reason:  # counted before the paper's files, as RedPajama's drops always were
                yield from drop(reason)
                return
        else:
            text, reason = clean_paper(files, report, limits), "no_section"
    except PaperTooLarge as e:  # a bomb: skipped, counted and named in the log
        logging.getLogger(__name__).warning("skipped %s: %s", path, e)
        yield from drop(e.reason, error=str(e))
        return
    counter("tex_files", report.files)
    counter("macros_expanded", report.expansions)
    counter("decode_fallbacks", len(report.decode_fallbacks))
    counter("missing_includes", len(report.missing_includes))
    if not text:
        yield from drop(reason)
        return
    yield make_doc(name, "arxiv", text, url=name, language="en",
                   metadata={"tex_files": report.files, "macros": report.macros,
                             "decode_fallbacks": ",".join(report.decode_fallbacks),
                             "missing_includes": ",".join(report.missing_includes)})


def _reference_text(files, report) -> tuple[str | None, str | None]:
    """RedPajama's cleaner (``filters.latex.clean_paper_reference``) and its drops: a paper
    with a file that is not UTF-8, one its code fails on, one whose text is empty.
    Returns (text, None) or (None, the drop's reason)."""
    if report.decode_fallbacks:
        return None, "not_utf8"
    try:
        text = clean_paper_reference(list(files.values()))
    except ReferenceFailure:
        return None, "reference_error"
    return (text, None) if text else (None, "empty")


def build(p, inputs, out_dir, target_bytes=256 << 20, reference=False, limits: Limits | None = None,
          rejected=False):
    limits = limits or Limits()
    rejects = beam_utils.Rejects(out_dir, rejected, target_bytes)
    read = functools.partial(read_paper, reference=reference, limits=limits, rejected=rejected)
    items = (p | "Specs" >> beam.Create(list(inputs)) | "Papers" >> beam.FlatMap(papers_of)
               | "Members" >> beam.FlatMap(paper_items, limits.max_scan_bytes)
               | "Spread" >> beam.Reshuffle())
    papers = rejects.apply(items, "Clean", beam_utils.ReadFiles("read", read))
    rejects.write()
    return papers | "Shards" >> beam_utils.WriteShards(out_dir, lambda d: "arxiv", target_bytes)


@dataclass
class Options:
    reference: bool = option(False, "RedPajama's arxiv_cleaner.py exactly, bugs included (drops appendices, "
                                    "argument macros unexpanded, \\input files lost, ...; see filters/latex.py)")
    max_paper_mb: float | None = option(None, "skip (and count) a paper whose archive inflates past this "
                                              "(default 2048)", type=float)
    max_tex_mb: float | None = option(None, "skip (and count) a paper with more .tex than this (default 64)",
                                      type=float)
    max_macro_growth: int | None = option(None, "skip (and count) a paper whose macros expand its text past "
                                                "this factor (default 20; or 4 MB)", type=int)
    rejected: bool = option(False, REJECTED_HELP)


def run(inputs, out_dir, target_bytes=256 << 20, runner="DirectRunner", beam_args=None, force=False,
        dry_run=False, reference=False, max_paper_mb=None, max_tex_mb=None, max_macro_growth=None, rejected=False):
    check_inputs(inputs)
    d = Limits()
    limits = Limits(max_tex_bytes=beam_utils.megabytes(max_tex_mb, d.max_tex_bytes),
                    max_scan_bytes=beam_utils.megabytes(max_paper_mb, d.max_scan_bytes),
                    max_growth=max_macro_growth or d.max_growth)
    extra = {"inputs": list(inputs), **({"reference": True} if reference else {})}
    if limits != d:
        extra["limits"] = vars(limits)
    return beam_utils.run_step(lambda p: build(p, inputs, out_dir, target_bytes, reference, limits, rejected), out_dir,
                               runner, beam_args, force, dry_run=dry_run, extra=extra)
