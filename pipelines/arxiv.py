"""ArXiv (2.5% of LLaMA's mix): LaTeX sources cleaned by ``filters.latex``.

Input: papers as directories, ``.tar.gz``/``.tar`` or ``.gz`` files, or a directory of those."""
from __future__ import annotations

import apache_beam as beam

from core import fs
from filters.errors import InputError
from filters.latex import CleanReport, clean_paper, load_paper

from . import beam_utils
from .schema import make_doc

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


def read_paper(path, counter):
    report = CleanReport()
    files = load_paper(path, report)
    text = clean_paper(files, report)
    counter("tex_files", report.files)
    counter("macros_expanded", report.expansions)
    counter("decode_fallbacks", len(report.decode_fallbacks))
    counter("missing_includes", len(report.missing_includes))
    if not text:
        counter("dropped_no_section")
        return
    name = fs.basename(path)
    for suffix in PAPER_SUFFIXES:
        name = name.removesuffix(suffix)
    yield make_doc(name, "arxiv", text, url=name, language="en",
                   metadata={"tex_files": report.files, "macros": report.macros,
                             "decode_fallbacks": ",".join(report.decode_fallbacks),
                             "missing_includes": ",".join(report.missing_includes)})


def build(p, inputs, out_dir, target_bytes=256 << 20):
    return (p | "Specs" >> beam.Create(list(inputs)) | "Papers" >> beam.FlatMap(papers_of)
              | "Spread" >> beam.Reshuffle()
              | "Clean" >> beam.ParDo(beam_utils.ReadFiles("read", read_paper))
              | "Shards" >> beam_utils.WriteShards(out_dir, lambda d: "arxiv", target_bytes))


def run(inputs, out_dir, target_bytes=256 << 20, runner="DirectRunner", beam_args=None, force=False,
        dry_run=False):
    check_inputs(inputs)
    return beam_utils.run_step(lambda p: build(p, inputs, out_dir, target_bytes), out_dir, runner,
                               beam_args, force, dry=dry_run, extra={"inputs": list(inputs)})
