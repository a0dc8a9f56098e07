"""Shared Beam plumbing: runner options, size-targeted Parquet shards, stats, success markers.

Output protocol (used by every pipeline and the DAG): a step writes into its
output directory, shards first, ``stats.json`` next and the ``_SUCCESS`` marker
last.  A directory with the marker is complete and is skipped on re-run; one
without it is partial and is wiped before the step runs again, so a later step
never reads half-written shards.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Callable

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from .schema import DOC_SCHEMA, rows_to_table

log = logging.getLogger(__name__)
SUCCESS = "_SUCCESS"


def pipeline_options(runner: str = "DirectRunner", beam_args: list[str] | None = None) -> PipelineOptions:
    args = list(beam_args or [])
    if runner == "DataflowRunner" and not any(a.startswith("--setup_file") for a in args):
        # the workers need this project's code: Beam builds and installs it from setup.py
        args.append(f"--setup_file={Path(__file__).resolve().parent.parent / 'setup.py'}")
    if runner == "DirectRunner":
        # In-process, no Prism download (offline machines); one worker keeps memory bounded.
        args += ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
    return PipelineOptions(["--runner", runner, *args], save_main_session=False)


def is_complete(out_dir: str | Path) -> bool:
    return (Path(out_dir) / SUCCESS).is_file()


def prepare_output(out_dir: str | Path, force: bool = False) -> bool:
    """Return False if the step is already complete; else wipe partial output and return True."""
    out = Path(out_dir)
    if is_complete(out) and not force:
        return False
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return True


def write_stats(out_dir: str | Path, stats: dict) -> None:
    tmp = Path(out_dir) / "stats.json.tmp"
    tmp.write_text(json.dumps(stats, indent=2, sort_keys=True))
    os.replace(tmp, Path(out_dir) / "stats.json")


def mark_complete(out_dir: str | Path, stats: dict) -> None:
    out = Path(out_dir)
    write_stats(out, stats)
    (out / SUCCESS).write_text(time.strftime("%Y-%m-%dT%H:%M:%S") + "\n")


def collect_counters(result) -> dict:
    """Beam counters as {namespace: {name: value}} (committed values where the runner has them)."""
    stats: dict = defaultdict(dict)
    for c in result.metrics().query()["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        ns, name = c.key.metric.namespace, c.key.metric.name
        stats[ns][name] = stats[ns].get(name, 0) + value
    return {k: dict(sorted(v.items())) for k, v in sorted(stats.items())}


class Count(beam.DoFn):
    """Pass-through that counts documents (and lines) flowing past a point."""

    def __init__(self, step: str):
        self.step = step
        self.docs = Metrics.counter(step, "documents")
        self.lines = Metrics.counter(step, "lines")

    def process(self, doc):
        self.docs.inc()
        self.lines.inc(doc["text"].count("\n") + 1)
        yield doc


class _ShardWriter(beam.DoFn):
    """Buffers documents per output key; writes a zstd Parquet file whenever the
    buffered text reaches ``target_bytes``.  Files go to ``_tmp/`` and are only
    renamed into place by ``_Finalize`` once the whole write has succeeded."""

    def __init__(self, out_dir: str, key_fn: Callable[[dict], str], target_bytes: int, schema):
        self.out_dir, self.key_fn, self.target_bytes, self.schema = out_dir, key_fn, target_bytes, schema

    def start_bundle(self):
        self.buffers: dict[str, list[dict]] = defaultdict(list)
        self.sizes: dict[str, int] = defaultdict(int)

    def _flush(self, key):
        rows = self.buffers.pop(key)
        self.sizes.pop(key, None)
        rows.sort(key=lambda r: r["id"])
        table = rows_to_table(rows, self.schema)
        path = FileSystems.join(self.out_dir, "_tmp", f"{key}--{uuid.uuid4().hex}.parquet")
        if "://" not in path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        with FileSystems.create(path) as f:
            pq.write_table(table, f, compression="zstd")
        return key, path, rows[0]["id"], len(rows)

    def process(self, doc):
        key = self.key_fn(doc)
        self.buffers[key].append(doc)
        self.sizes[key] += len(doc.get("text", "")) + 64
        if self.sizes[key] >= self.target_bytes:
            yield self._flush(key)

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.windowed_value import WindowedValue

        for key in list(self.buffers):
            yield WindowedValue(self._flush(key), 0, [GlobalWindow()])


class _Finalize(beam.DoFn):
    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def process(self, written):
        by_key = defaultdict(list)
        for key, path, first_id, n in written:
            by_key[key].append((first_id, path, n))
        for key, files in by_key.items():
            files.sort()
            for i, (_, path, n) in enumerate(files):
                final = FileSystems.join(self.out_dir, key, f"part-{i:05d}-of-{len(files):05d}.parquet")
                if "://" not in final:
                    Path(final).parent.mkdir(parents=True, exist_ok=True)
                FileSystems.rename([path], [final])
                yield key, final, n


class WriteShards(beam.PTransform):
    """Write dict rows as size-targeted Parquet shards under ``out_dir/<key_fn(row)>/``."""

    def __init__(self, out_dir: str, key_fn: Callable[[dict], str], target_bytes: int = 256 << 20,
                 schema=None):
        super().__init__()
        self.out_dir, self.key_fn, self.target_bytes = str(out_dir), key_fn, target_bytes
        self.schema = schema or DOC_SCHEMA

    def expand(self, pcoll):
        return (pcoll
                | "WriteTmp" >> beam.ParDo(_ShardWriter(self.out_dir, self.key_fn, self.target_bytes,
                                                        self.schema))
                | "AllFiles" >> beam.combiners.ToList()
                | "Rename" >> beam.ParDo(_Finalize(self.out_dir)))


def localize(path: str) -> str:
    """A local path for a model file that may live on a remote filesystem (gs://...)."""
    if "://" not in str(path):
        return str(path)
    import tempfile

    local = Path(tempfile.gettempdir()) / "llama-models" / Path(str(path)).name
    if not local.exists():
        local.parent.mkdir(parents=True, exist_ok=True)
        with FileSystems.open(str(path)) as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return str(local)


def run_pipeline(build_fn, out_dir: str, runner: str, beam_args: list[str], extra: dict | None = None) -> dict:
    """Build and run a pipeline; write stats.json and the success marker; return the stats."""
    t0 = time.time()
    options = pipeline_options(runner, beam_args)
    if runner == "DirectRunner":
        # DirectRunner first tries to download the Prism binary (fails offline), then falls
        # back to the FnApiRunner; go straight to it.
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        p = beam.Pipeline(runner=FnApiRunner(), options=options)
    else:
        p = beam.Pipeline(options=options)
    build_fn(p)
    result = p.run()
    result.wait_until_finish()
    stats = {"counters": collect_counters(result), "seconds": round(time.time() - t0, 2),
             "runner": runner, **(extra or {})}
    shards = {}
    if "://" not in str(out_dir):
        tmp = Path(out_dir) / "_tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        for f in sorted(Path(out_dir).rglob("*.parquet")):
            shards[str(f.relative_to(out_dir))] = pq.ParquetFile(f).metadata.num_rows
    stats["shards"] = shards
    broken = sum(v.get("file_errors", 0) for v in stats["counters"].values())
    if broken:
        # Not complete: stats.json for the record, no _SUCCESS, so nothing downstream reads it
        # and the next run redoes it.  (Damaged records inside a readable file are only counted.)
        from filters.errors import InputError

        write_stats(out_dir, stats)
        names = sorted(k.split(":", 1)[1] for v in stats["counters"].values() for k in v
                       if k.startswith("unreadable:"))
        raise InputError(f"{broken} input file(s) could not be read ({', '.join(names)}; reasons in the log); "
                         f"{out_dir} is left incomplete: fix or remove those files and run again")
    mark_complete(out_dir, stats)
    return stats


class ReadFiles(beam.DoFn):
    """path -> documents through ``read_fn(path, counters)``; counts documents and lines
    (``documents=False`` for readers whose items are not documents, e.g. (key, post) pairs).

    An input file that turns out to be unreadable half-way (``InputError``) is logged with
    its name and counted as ``<step>/file_errors``; the other files go on."""

    def __init__(self, step: str, read_fn, documents: bool = True):
        self.step, self.read_fn, self.documents = step, read_fn, documents
        self.files = Metrics.counter(step, "files")
        self.docs = Metrics.counter(step, "documents")
        self.lines = Metrics.counter(step, "lines")
        self.errors = Metrics.counter(step, "file_errors")

    def process(self, path):
        from filters.errors import InputError

        self.files.inc()
        n = 0
        counter = lambda name, k=1: Metrics.counter(self.step, name).inc(k)  # noqa: E731
        try:
            for doc in self.read_fn(path, counter):
                n += 1
                if self.documents:
                    self.docs.inc()
                    self.lines.inc(doc["text"].count("\n") + 1)
                yield doc
        except InputError as e:
            self.errors.inc()
            Metrics.counter(self.step, f"unreadable:{path}").inc()  # the name reaches the stats
            log.error("%s (kept the %d %s read before the error)", e, n,
                      "documents" if self.documents else "items")
        log.info("%s %s: %d %s", self.step, Path(str(path)).name, n, "documents" if self.documents else "items")


class _FirstOwner(beam.CombineFn):
    """(smallest document id, number of documents) for one line key."""

    def create_accumulator(self):
        return (None, 0)

    def add_input(self, acc, doc_id):
        first, n = acc
        return (doc_id if first is None or doc_id < first else first, n + 1)

    def merge_accumulators(self, accs):
        firsts = [a[0] for a in accs if a[0] is not None]
        return (min(firsts) if firsts else None, sum(a[1] for a in accs))

    def extract_output(self, acc):
        return acc


class _RemoveDuplicateLines(beam.DoFn):
    def __init__(self, step: str, key_fn):
        self.step, self.key_fn = step, key_fn
        self.c = {k: Metrics.counter(step, k) for k in
                  ("documents_in", "documents", "lines_in", "lines", "lines_removed", "documents_emptied")}

    def process(self, doc, owners):
        self.c["documents_in"].inc()
        lines = [ln for ln in doc["text"].split("\n") if ln.strip()]
        kept = [ln for ln in lines if owners.get(self.key_fn(ln), doc["id"]) == doc["id"]]
        self.c["lines_in"].inc(len(lines))
        self.c["lines_removed"].inc(len(lines) - len(kept))
        if not kept:
            self.c["documents_emptied"].inc()
            return
        self.c["lines"].inc(len(kept))
        self.c["documents"].inc()
        md = dict(doc["metadata"], original_nlines=len(lines), nlines=len(kept))
        yield dict(doc, text="\n".join(kept), metadata=md)


class DedupLines(beam.PTransform):
    """Cross-document line dedup: a line whose key occurs in several documents of the
    PCollection is kept in the first (smallest id) and removed from the others; documents
    left empty are dropped.  The duplicate keys are broadcast as a side input."""

    def __init__(self, step: str, key_fn):
        super().__init__()
        self.step, self.key_fn = step, key_fn

    def expand(self, docs):
        key_fn = self.key_fn
        owners = (docs
                  | "LineKeys" >> beam.FlatMap(
                      lambda d: [(k, d["id"]) for k in {key_fn(ln) for ln in d["text"].split("\n") if ln.strip()}])
                  | "FirstOwner" >> beam.CombinePerKey(_FirstOwner())
                  | "OnlyDuplicates" >> beam.Filter(lambda kv: kv[1][1] > 1)
                  | "Owner" >> beam.Map(lambda kv: (kv[0], kv[1][0])))
        return docs | "Remove" >> beam.ParDo(_RemoveDuplicateLines(self.step, key_fn),
                                             owners=beam.pvalue.AsDict(owners))


def check_same_run(out_dir, extra: dict) -> None:
    from filters.errors import InputError

    try:
        recorded = json.loads((Path(out_dir) / "stats.json").read_text())
    except (OSError, json.JSONDecodeError):
        return
    wanted = json.loads(json.dumps(extra, default=str))
    differ = sorted(k for k, v in wanted.items() if k in recorded and recorded[k] != v)
    if differ:
        raise InputError(f"{out_dir}: already holds the complete output of a different run ({', '.join(differ)} "
                         f"differ); pass --force to redo it, or choose another --out")


def run_step(build_fn, out_dir: str, runner: str = "DirectRunner", beam_args=None, force: bool = False,
             extra: dict | None = None) -> dict | None:
    """prepare_output + run_pipeline: None if the output was already complete.

    A complete output made from other inputs or settings (``extra`` differs from what its
    stats.json recorded) is an error, not a silent skip: --force redoes it."""
    if is_complete(out_dir) and not force:
        check_same_run(out_dir, extra or {})
    if not prepare_output(out_dir, force):
        log.info("%s is complete (%s present); skipped", out_dir, SUCCESS)
        return None
    return run_pipeline(build_fn, out_dir, runner, list(beam_args or []), extra)
