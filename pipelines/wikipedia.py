"""Wikipedia (4.5% of LLaMA's mix): the 20 languages' dumps, articles selected and cleaned as
the HuggingFace ``wikipedia`` builder does, with two documented fixes (``filters.wikipedia``);
a page found in several dumps is kept once.  The language is the dump's ``dbname``; dumps of
other languages are rejected with a count of their pages (``read/rejected_<lang>``).

Where the builder runs one language per job from a list of files made by the launcher, here
the dumps are expanded inside the pipeline and multistream dumps are read in parallel units."""
from __future__ import annotations

from dataclasses import dataclass


import apache_beam as beam

from core.errors import InputError
from filters.wikipedia import (LLAMA_WIKI_LANGS, MAX_PAGE_BYTES, UNIT_BYTES, DumpInfo, clean_wikitext, dump_units,
                               is_index, iter_pages)

from core.options import REJECTED_HELP, option

from . import beam_utils
from core.schema import make_doc

SUFFIXES = (".xml", ".bz2", ".gz")


def check_inputs(inputs, prefix=None):
    """Each input spec exists and its first file is a MediaWiki dump (one-line error); the
    full list is expanded inside the pipeline."""
    for spec in inputs:
        _check_dump(beam_utils.first_input(spec, ".xml/.bz2 dumps", SUFFIXES, prefix=prefix,
                                           where=lambda f: not is_index(f)))


def _check_dump(path):
    from filters.wikipedia import _open

    try:
        with _open(path) as fh:
            head = fh.read(2048)
    except (OSError, EOFError) as e:
        raise InputError(f"{path}: cannot decompress ({e})") from None
    for enc in ("utf-8", "utf-16"):
        try:
            if "<mediawiki" in head.decode(enc, "ignore"):
                return
        except LookupError:
            pass
    raise InputError(f"{path}: not a MediaWiki XML dump (no <mediawiki> element at the start)")


def make_reader(languages, max_page_bytes=MAX_PAGE_BYTES):
    languages = set(languages)

    def read(item, counter):
        path, unit = item
        info = DumpInfo()
        for page in iter_pages(path, info, unit, max_page_bytes, skipped=lambda: counter("oversized_pages")):
            if info.lang not in languages:
                counter(f"rejected_{info.lang or 'unknown'}")
                continue
            if page.ns != 0 or page.redirect:
                counter("skipped_redirect" if page.redirect else "skipped_namespace")
                continue
            page.text = clean_wikitext(page.text, info)
            if not page.text:
                counter("skipped_empty")
                continue
            yield _doc(page)

    return read


def _doc(page):
    url = f"https://{page.lang}.wikipedia.org/wiki/{page.title.replace(' ', '_')}"
    return make_doc(f"{page.dbname}/{page.page_id}", "wikipedia", page.text, url=url, language=page.lang,
                    metadata={"title": page.title, "page_id": page.page_id, "dbname": page.dbname})


def _dbname(doc):
    return doc["metadata"]["dbname"]


class ReadDumps(beam.PTransform):
    """Dump specs -> work units (a multistream dump cut at its bz2 stream boundaries, about
    ``unit_bytes`` a unit; any other dump one unit), reshuffled over the workers -> the items
    ``read_fn(unit, counter)`` yields (``beam_utils.ReadFiles``, step "read")."""

    def __init__(self, inputs, read_fn, input_prefix=None, unit_bytes=UNIT_BYTES, documents=True):
        super().__init__()
        self.inputs, self.read_fn, self.input_prefix = list(inputs), read_fn, input_prefix
        self.unit_bytes, self.documents = unit_bytes, documents

    def expand(self, p):
        return (p | "Dumps" >> beam_utils.ExpandInputs(self.inputs, SUFFIXES, prefix=self.input_prefix,
                                                       where=lambda f: not is_index(f))
                  | "Units" >> beam.FlatMap(dump_units, self.unit_bytes)
                  | "SpreadUnits" >> beam.Reshuffle()
                  | "Read" >> beam.ParDo(beam_utils.ReadFiles("read", self.read_fn, documents=self.documents)))


def build(p, inputs, out_dir, languages=LLAMA_WIKI_LANGS, target_bytes=256 << 20, input_prefix=None,
          unit_bytes=UNIT_BYTES, max_page_bytes=MAX_PAGE_BYTES, rejected=False):
    rejects = beam_utils.Rejects(out_dir, rejected, target_bytes)
    groups = (p | "Pages" >> ReadDumps(inputs, make_reader(languages, max_page_bytes), input_prefix, unit_bytes)
                | "ById" >> beam.Map(lambda d: (d["id"], d)) | "GroupById" >> beam.GroupByKey())
    # the same page from two dumps (e.g. a UTF-8 and a UTF-16 copy) is kept once
    pages = rejects.keep_first(groups, "dedup", "duplicate_pages", _dbname, "OnePerPage")
    rejects.write()
    return pages | "Shards" >> beam_utils.WriteShards(out_dir, lambda d: d["language"], target_bytes)


@dataclass
class Options:
    languages: tuple[str, ...] | None = option(None, "dbname languages to keep (default: LLaMA's 20)",
                                               nargs="+", type=str)
    max_page_mb: float | None = option(None, "skip (and count) a page larger than this, unparsed (default 64)",
                                       type=float)
    rejected: bool = option(False, REJECTED_HELP)


def run(inputs, out_dir, languages=None, target_bytes=256 << 20, runner="DirectRunner",
        beam_args=None, force=False, input_prefix=None, dry_run=False, unit_bytes=UNIT_BYTES,
        max_page_mb: float | None = None, rejected: bool = False):
    """``max_page_mb``: a page larger than this is skipped unparsed and counted (default 64)."""
    check_inputs(inputs, input_prefix)
    languages = tuple(languages or LLAMA_WIKI_LANGS)
    cap = beam_utils.megabytes(max_page_mb, MAX_PAGE_BYTES)
    return beam_utils.run_step(lambda p: build(p, inputs, out_dir, languages, target_bytes, input_prefix,
                                               unit_bytes, cap, rejected),
                               out_dir, runner, beam_args, force, dry_run=dry_run,
                               extra={"inputs": list(inputs), "languages": list(languages),
                                      **({"max_page_mb": max_page_mb} if max_page_mb else {})})
