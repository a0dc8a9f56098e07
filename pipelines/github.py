"""GitHub (4.5% of LLaMA's mix): permissive-licence repositories, then RedPajama-1T's
``data_prep/github`` steps in RedPajama's order (``filters.github`` has the detail):
skips, exact dedup on the raw file's MD5 (a shuffle), copyright-comment cleaning, and the
file filters, the last of them alphabetic characters per token with ``--tokenizer`` (the
LLaMA vocabulary by default; remote paths are staged once per machine).

Input: a directory of repositories (each sub-directory one repository; a directory
that itself has a LICENSE file is one repository) or JSON lines
``{"repo", "path", "content", "license"?}`` (licence detected from the repo's
LICENSE/COPYING rows when ``license`` is absent).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
import hashlib
import json
from collections import defaultdict

import apache_beam as beam
from apache_beam.metrics import Metrics

from core import fs
from core import paths
from core.errors import InputError
from filters.github import (PERMISSIVE, TokenCounter, clean_copyright_comments, detect_license,
                            discard_reason, is_license_file, skip_reason)

from core.options import REJECTED_HELP, option

from . import beam_utils
from core.schema import make_doc

MAX_FILE_BYTES = 1 << 20   # a repository file larger than this is skipped (counted: oversized_files)
MAX_LINE_BYTES = 64 << 20  # a JSON line larger than this is skipped unread (oversized_lines; --max-line-mb)


JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")


def check_inputs(inputs: list[str]) -> None:
    for item in inputs:
        if fs.isfile(item):
            if not item.endswith(JSONL_SUFFIXES):
                raise InputError(f"{item}: expected a directory of repositories or a .jsonl file")
        elif not fs.isdir(item):
            raise InputError(f"{item}: no such file or directory")
        elif not any("/" in fs.relpath(f, item) or is_license_file(fs.basename(f))
                     for f in fs.list_files(item, limit=1000)):
            raise InputError(f"{item}: no repositories (sub-directories) in this directory")


def repos_of(spec: str):
    """Input spec -> (repository key, [files]) units, made inside the pipeline: a JSON-lines
    file is one unit; a directory with a LICENSE/COPYING file at its top is one repository;
    any other directory holds one repository per sub-directory."""
    if fs.isfile(spec):
        yield spec, [spec]
        return
    files = fs.list_files(spec)
    rels = [fs.relpath(f, spec) for f in files]
    if any("/" not in r and is_license_file(r) for r in rels):
        yield spec, files
        return
    repos = defaultdict(list)
    for f, r in zip(files, rels):
        if "/" in r:
            repos[fs.join(spec, r.split("/")[0])].append(f)
    yield from repos.items()


def _repo_files(unit, max_line_bytes=MAX_LINE_BYTES):
    """(repo, relative path, text, licence) for a repository directory or a JSONL file."""
    root, files = unit
    if not (len(files) == 1 and files[0] == root):
        repo = fs.basename(root)
        for f in files:
            try:
                if fs.size(f) > MAX_FILE_BYTES:
                    Metrics.counter("read", "oversized_files").inc()
                    continue
                data = fs.read_bytes(f)
            except OSError as e:  # e.g. a dangling symlink: the step fails naming it
                raise InputError(f"{f}: cannot be read ({type(e).__name__}: {e})", path=f) from None
            yield repo, fs.relpath(f, root), data.decode("utf-8", "replace"), None
        return
    with fs.open_decompressed(root) as raw:
        for line in fs.bounded_lines(raw, max_line_bytes):
            if line is None:
                Metrics.counter("read", "oversized_lines").inc()
                continue
            try:
                d = json.loads(line.decode("utf-8", "replace"))
                yield d["repo"], d["path"], d["content"], d.get("license")
            except (json.JSONDecodeError, KeyError, TypeError):
                Metrics.counter("read", "bad_json_lines").inc()


def read_files(unit, counter, max_line_bytes=MAX_LINE_BYTES):
    """A repository directory or a JSON-lines file -> (repo, (path, text, licence)), streamed:
    nothing is held per file; the rows of a repository meet in a shuffle (``ByRepo``)."""
    for repo, rel, text, lic in _repo_files(unit, max_line_bytes):
        yield repo, (rel, text, lic)


def repo_license(rows) -> str:
    """A ``license`` field given with the rows wins; else the licence detected from the
    repository's top-level LICENSE/COPYING file (the first by path); else "none"."""
    given = sorted({lic.lower() for _, _, lic in rows if lic})
    if given:
        return given[-1]
    files = sorted((rel, text) for rel, text, _ in rows if "/" not in rel and is_license_file(rel))
    return detect_license(files[0][1]) if files else "none"


class Licensed(beam.DoFn):
    """(repo, its rows) -> the documents of a permissively licensed repository."""

    def process(self, kv):
        repo, rows = kv
        c = lambda name, n=1: Metrics.counter("read", name).inc(n)  # noqa: E731
        lic = repo_license(rows)
        c("repositories")
        if lic not in PERMISSIVE:
            c(f"dropped_repo_license_{lic}")
            c("dropped_files_license", sum(1 for _ in rows))
            return
        c(f"kept_repo_license_{lic}")
        for rel, text, _ in rows:
            c("lines", text.count("\n") + 1)
            doc = make_doc(f"{repo}/{rel}", "github", text, url=f"{repo}/{rel}",
                           metadata={"repo": repo, "path": rel, "license": lic})
            beam_utils.count_kept("read", doc)
            yield doc


def skipped(doc) -> str | None:
    """RedPajama's ``preprocess_source``: certificates and the top-level LICENSE skipped."""
    return skip_reason(doc["metadata"]["path"])


def keyed_by_content(doc):
    """Keyed by the MD5 of the raw content for the exact dedup."""
    digest = hashlib.md5(doc["text"].encode("utf-8")).hexdigest()
    yield digest, beam_utils.pack(dict(doc, metadata=dict(doc["metadata"], content_hash=digest)))


def _by_id(doc):
    return doc["id"]


def strip_copyright(doc):
    """RedPajama's ``clean_copyright_comments`` (``filters.github``)."""
    text = clean_copyright_comments(doc["text"])
    if text == doc["text"]:
        return doc
    Metrics.counter("filter", "comment_headers_stripped").inc()
    return dict(doc, text=text)


class Discarded:
    """RedPajama's ``discard_record`` as a check (the tokenizer loaded once per worker)."""

    def __init__(self, tokenizer: str):
        self.tokenizer, self.count_tokens = tokenizer, None

    def setup(self):
        self.count_tokens = TokenCounter(self.tokenizer)

    def __call__(self, doc) -> str | None:
        return discard_reason(doc["text"], doc["metadata"]["path"], self.count_tokens)


def build(p, inputs, out_dir, target_bytes, tokenizer: str, max_line_bytes: int = MAX_LINE_BYTES, rejected=False):
    rejects = beam_utils.Rejects(out_dir, rejected, target_bytes)
    read = functools.partial(read_files, max_line_bytes=max_line_bytes)
    files = (p | "Specs" >> beam.Create(list(inputs)) | "Repos" >> beam.FlatMap(repos_of)
               | "Spread" >> beam.Reshuffle()
               | "Read" >> beam.ParDo(beam_utils.ReadFiles("read", read, documents=False))
               | "ByRepo" >> beam.GroupByKey()
               | "Licensed" >> beam.ParDo(Licensed()))
    unique = (rejects.keep_if(files, "skip", skipped)
              | "ContentHash" >> beam.FlatMap(keyed_by_content).with_output_types(beam_utils.Packed)
              | "ByHash" >> beam.GroupByKey())
    # one copy of a content: the smallest id (RedPajama: the first it meets)
    unique = (rejects.keep_first(unique, "dedup", "exact_duplicates", _by_id, "Dedup", unpack_docs=True)
              | "StripCopyright" >> beam.Map(strip_copyright))
    kept = rejects.keep_if(unique, "filter", Discarded(tokenizer))
    rejects.write()
    return kept | "Shards" >> beam_utils.WriteShards(out_dir, lambda d: "github", target_bytes)


@dataclass
class Options:
    tokenizer: str | None = option(None, "tokenizer for RedPajama's alpha-per-token rule: a HuggingFace "
                                         "tokenizer.json (default: the LLaMA vocabulary) or a SentencePiece "
                                         ".model; local or gs://", type=str)
    max_line_mb: float | None = option(None, "skip (and count) a JSON line larger than this (default 64)",
                                       type=float)
    rejected: bool = option(False, REJECTED_HELP)


def run(inputs, out_dir, target_bytes=256 << 20, runner="DirectRunner", beam_args=None, force=False,
        dry_run=False, tokenizer=None, max_line_mb: float | None = None, rejected: bool = False):
    check_inputs(inputs)
    tokenizer = str(tokenizer or paths.llama_tokenizer())
    if not fs.isfile(tokenizer):
        raise InputError(f"{tokenizer}: tokenizer for the alpha-per-token rule not found (--tokenizer)")
    cap = beam_utils.megabytes(max_line_mb, MAX_LINE_BYTES)
    return beam_utils.run_step(lambda p: build(p, inputs, out_dir, target_bytes, tokenizer, cap, rejected), out_dir,
                               runner, beam_args, force, dry_run=dry_run,
                               extra={"inputs": list(inputs), "config": {
                                   "tokenizer": tokenizer, **({"max_line_mb": max_line_mb} if max_line_mb else {})}})
