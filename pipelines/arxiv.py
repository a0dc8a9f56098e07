"""ArXiv (2.5% of LLaMA's mix): LaTeX sources cleaned by ``filters.latex``.

Input: papers as directories, ``.tar.gz``/``.tar`` or ``.gz`` files, or a directory of those."""
from __future__ import annotations

from pathlib import Path

import apache_beam as beam

from filters.errors import InputError
from filters.latex import CleanReport, clean_paper, load_paper

from . import beam_utils
from .schema import make_doc

PAPER_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".gz", ".tex")


def _is_paper_dir(p: Path) -> bool:
    return any(p.glob("*.tex"))


def expand_inputs(inputs):
    papers = []
    for item in inputs:
        p = Path(item)
        if p.is_dir() and _is_paper_dir(p):
            papers.append(str(p))
        elif p.is_dir():
            found = sorted(str(c) for c in p.iterdir()
                           if (c.is_dir() and _is_paper_dir(c)) or (c.is_file() and c.name.endswith(PAPER_SUFFIXES)))
            if not found:
                raise InputError(f"{item}: no papers (directories with .tex files or .tar.gz/.gz) here")
            papers += found
        elif p.is_file() and p.name.endswith(PAPER_SUFFIXES):
            papers.append(str(p))
        elif p.exists():
            raise InputError(f"{item}: not a paper (expected a directory, .tar.gz, .gz or .tex)")
        else:
            raise InputError(f"{item}: no such file or directory")
    return papers


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
    name = Path(path).name
    for suffix in PAPER_SUFFIXES:
        name = name.removesuffix(suffix)
    yield make_doc(name, "arxiv", text, url=name, language="en",
                   metadata={"tex_files": report.files, "macros": report.macros,
                             "decode_fallbacks": ",".join(report.decode_fallbacks),
                             "missing_includes": ",".join(report.missing_includes)})


def build(p, papers, out_dir, target_bytes=256 << 20):
    return (p | "Papers" >> beam.Create(papers) | "Reshuffle" >> beam.Reshuffle()
              | "Clean" >> beam.ParDo(beam_utils.ReadFiles("read", read_paper))
              | "Shards" >> beam_utils.WriteShards(out_dir, lambda d: "arxiv", target_bytes))


def run(inputs, out_dir, target_bytes=256 << 20, runner="DirectRunner", beam_args=None, force=False):
    papers = expand_inputs(inputs)
    return beam_utils.run_step(lambda p: build(p, papers, out_dir, target_bytes), out_dir, runner,
                               beam_args, force, extra={"inputs": papers})
