"""GitHub (4.5% of LLaMA's mix): permissive-licence repositories, RedPajama's file filters.

Input: a directory of repositories (each sub-directory one repository; a directory
that itself has a LICENSE file is one repository) or JSON lines
``{"repo", "path", "content", "license"?}`` (licence detected from the repo's
LICENSE/COPYING rows when ``license`` is absent).
"""
from __future__ import annotations

import gzip
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import apache_beam as beam
from apache_beam.metrics import Metrics

from filters.errors import InputError
from filters.paths import walk_files
from filters.github import (PERMISSIVE, detect_license, extension_ok, is_license_file, quality_reason,
                            strip_license_header)

from . import beam_utils
from .schema import make_doc

MAX_FILE_BYTES = 1 << 20


def expand_inputs(inputs: list[str]) -> list[str]:
    out = []
    for item in inputs:
        p = Path(item)
        if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz")):
            out.append(str(p))
        elif p.is_dir():
            if any(is_license_file(f.name) for f in p.iterdir() if f.is_file()):
                out.append(str(p))
            else:
                repos = sorted(str(d) for d in p.iterdir() if d.is_dir())
                if not repos:
                    raise InputError(f"{item}: no repositories (sub-directories) in this directory")
                out += repos
        elif p.exists():
            raise InputError(f"{item}: expected a directory of repositories or a .jsonl file")
        else:
            raise InputError(f"{item}: no such file or directory")
    return out


def _repo_files(path: str):
    """(repo, relative path, text) for a repository directory or a JSONL file."""
    p = Path(path)
    if p.is_dir():
        for f in walk_files(p):
            if f.stat().st_size <= MAX_FILE_BYTES:
                yield p.name, str(f.relative_to(p)), f.read_bytes().decode("utf-8", "replace"), None
        return
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            try:
                d = json.loads(line)
                yield d["repo"], d["path"], d["content"], d.get("license")
            except (json.JSONDecodeError, KeyError, TypeError):
                Metrics.counter("read", "bad_json_lines").inc()


def read_repos(path: str, counter):
    by_repo = defaultdict(list)
    licenses: dict[str, str] = {}
    for repo, rel, text, lic in _repo_files(path):
        if lic:
            licenses[repo] = lic.lower()
        if is_license_file(rel.rsplit("/", 1)[-1]) and "/" not in rel:
            licenses.setdefault(repo, detect_license(text))
        by_repo[repo].append((rel, text))
    for repo, files in by_repo.items():
        lic = licenses.get(repo, "none")
        counter("repositories")
        if lic not in PERMISSIVE:
            counter(f"dropped_repo_license_{lic}")
            counter("dropped_files_license", len(files))
            continue
        counter(f"kept_repo_license_{lic}")
        for rel, text in files:
            yield make_doc(f"{repo}/{rel}", "github", text, url=f"{repo}/{rel}",
                           metadata={"repo": repo, "path": rel, "license": lic})


class FileFilter(beam.DoFn):
    def process(self, doc):
        path = doc["metadata"]["path"]
        if not extension_ok(path):
            Metrics.counter("filter", "dropped_extension").inc()
            return
        reason = quality_reason(doc["text"])
        if reason:
            Metrics.counter("filter", f"dropped_{reason}").inc()
            return
        text = strip_license_header(doc["text"])
        if text != doc["text"]:
            Metrics.counter("filter", "license_headers_stripped").inc()
        if not text.strip():
            Metrics.counter("filter", "dropped_empty").inc()
            return
        Metrics.counter("filter", "documents").inc()
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        yield digest, dict(doc, text=text, metadata=dict(doc["metadata"], sha256=digest))


def _first(kv):
    _, docs = kv
    docs = sorted(docs, key=lambda d: d["id"])
    if len(docs) > 1:
        Metrics.counter("dedup", "dropped_exact_duplicates").inc(len(docs) - 1)
    Metrics.counter("dedup", "documents").inc()
    return docs[0]


def build(p, repos, out_dir, target_bytes=256 << 20):
    return (p | "Repos" >> beam.Create(repos) | "Reshuffle" >> beam.Reshuffle()
              | "Read" >> beam.ParDo(beam_utils.ReadFiles("read", read_repos))
              | "Filter" >> beam.ParDo(FileFilter())
              | "ByHash" >> beam.GroupByKey()
              | "Dedup" >> beam.Map(_first)
              | "Shards" >> beam_utils.WriteShards(out_dir, lambda d: "github", target_bytes))


def run(inputs, out_dir, target_bytes=256 << 20, runner="DirectRunner", beam_args=None, force=False):
    repos = expand_inputs(inputs)
    return beam_utils.run_step(lambda p: build(p, repos, out_dir, target_bytes), out_dir, runner,
                               beam_args, force, extra={"inputs": repos})
