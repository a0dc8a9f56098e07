"""Shared Beam plumbing: runner options, inputs expanded inside the pipeline, size-targeted
Parquet shards through Beam's own file sink, stats and the completion protocol.

Output protocol (``core.output``): a step writes into its output directory (local or
``gs://``/``s3://``): shards first, ``stats.json`` next and ``_SUCCESS`` (with the run id)
last.  A complete output is skipped on re-run; a partial one is wiped and redone.

Runners: locally Beam's portable FnApiRunner in ``multi_processing`` mode with one SDK
worker process per core (separate processes, as Dataflow's workers are), or
``DataflowRunner``.  The user's Beam flags always win over these defaults.
"""
from __future__ import annotations

import functools
import hashlib
import io
import logging
import math
import os
import pickle
import shutil
import time
from collections import defaultdict
from typing import Callable, Tuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.value_provider import StaticValueProvider

from core import fs, lock, output
from core.errors import InputError

from core.schema import DOC_SCHEMA, rows_to_table

from . import local_runner

log = logging.getLogger(__name__)

RUNNERS = ("DirectRunner", "DataflowRunner")
REFUSED_RUNNERS = {
    "DaskRunner": "Beam 2.77's DaskRunner loses sink rows silently (WriteToParquet/WriteToText write empty "
                  "files), drops finish_bundle outputs and has no metrics",
    "PrismRunner": "Prism downloads its binary at run time",
    "FlinkRunner": "its job server jar comes from Maven at run time",
    "SparkRunner": "its job server jar comes from Maven at run time",
    "PortableRunner": "it needs a job server this project does not start",
    "InteractiveRunner": "it is for notebooks",
}


def megabytes(mb: float | None, default: int) -> int:
    """A ``--max-...-mb`` flag in bytes; ``default`` (bytes) when it is not given."""
    return int(mb * 2**20) if mb else default


def check_runner(runner: str) -> None:
    short = runner.rsplit(".", 1)[-1]
    if short in RUNNERS:
        return
    why = REFUSED_RUNNERS.get(short, "it is not one this project runs or tests")
    raise InputError(f"--runner {runner}: not supported ({why}); use DirectRunner (local, every core) "
                     f"or DataflowRunner")


def flag_names(args: list[str]) -> set[str]:
    """The names of the ``--flag=value`` / ``--flag value`` / ``--flag`` options in ``args``."""
    return {a[2:].split("=", 1)[0].replace("-", "_") for a in args if a.startswith("--")}


def _with_defaults(args: list[str], defaults: dict[str, str]) -> list[str]:
    given = flag_names(args)
    return list(args) + [f"--{k}={v}" for k, v in defaults.items() if k not in given]


def setup_file() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")


def pipeline_options(runner: str = "DirectRunner", beam_args: list[str] | None = None) -> PipelineOptions:
    check_runner(runner)
    args = list(beam_args or [])
    if runner.endswith("DataflowRunner"):
        # the workers need this project's code (and package data): Beam builds it from setup.py
        args = _with_defaults(args, {"setup_file": setup_file()})
        missing = {"project", "region", "temp_location"} - flag_names(args)
        dry = "dry_run" in flag_names(args)
        if missing and not dry:
            raise InputError(f"DataflowRunner needs {', '.join('--' + m for m in sorted(missing))}")
    else:
        # Dataflow's execution model locally: one SDK worker process per core.
        args = _with_defaults(args, {"direct_running_mode": "multi_processing",
                                     "direct_num_workers": str(local_runner.DEFAULT_WORKERS)})
    return PipelineOptions(["--runner", runner, *args], save_main_session=False)


def new_pipeline(runner: str, beam_args: list[str]) -> beam.Pipeline:
    options = pipeline_options(runner, beam_args)
    if runner == "DirectRunner":
        # DirectRunner first tries to download the Prism binary (fails offline), then falls
        # back to the FnApiRunner; go straight to it.  It honours --direct_num_workers and
        # --direct_running_mode.
        # FnApiRunner with stage inputs streamed to the workers (bounded worker memory)
        return beam.Pipeline(runner=local_runner.runner(), options=options)
    try:
        return beam.Pipeline(options=options)
    except ValueError as e:  # Beam's option validation (e.g. a malformed --project): a user mistake
        raise InputError(f"--runner {runner}: {' '.join(str(e).split())}") from None


def collect_counters(result) -> dict:
    """Beam counters as {namespace: {name: value}} (committed values where the runner has them)."""
    stats: dict = defaultdict(dict)
    for c in result.metrics().query()["counters"]:
        value = c.committed if c.committed is not None else c.attempted
        ns, name = c.key.metric.namespace, c.key.metric.name
        stats[ns][name] = stats[ns].get(name, 0) + value
    return {k: dict(sorted(v.items())) for k, v in sorted(stats.items())}


# ------------------------------------------------------------------------------ inputs

MANIFEST_SUFFIXES = (".paths", ".paths.gz", ".paths.txt")


def is_manifest(spec: str) -> bool:
    return str(spec).endswith(MANIFEST_SUFFIXES)


def manifest_paths(manifest: str, prefix: str | None = None):
    """The paths listed in a paths manifest (one per line, as Common Crawl's ``wet.paths.gz``);
    relative lines are joined to ``prefix`` (default: the manifest's own directory)."""
    base = prefix if prefix is not None else fs.dirname(manifest)
    for line in fs.iter_lines(manifest):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if fs.is_remote(line) or line.startswith("/") or not base:
            yield line
        else:
            yield base + line if base.endswith("/") else fs.join(base, line)


def expand_spec(spec: str, suffixes=None, name=None, prefix=None, where=None):
    """One input spec -> the files it stands for: a file, a directory (walked), a glob
    (``gs://b/crawl/*/wet/*.warc.wet.gz``), or a paths manifest (``*.paths[.gz]``)."""
    if is_manifest(spec):
        yield from manifest_paths(spec, prefix)
        return
    if fs.has_glob(spec):
        found = fs.glob(spec)
    elif fs.isfile(spec):
        yield spec
        return
    else:
        found = fs.list_files(spec)
    for f in found:
        fname = fs.basename(f)
        if ((suffixes is None or fname.endswith(tuple(suffixes))) and (name is None or fname.lower() == name.lower())
                and (where is None or where(fname))):
            yield f


def first_input(spec: str, what: str, suffixes=None, name=None, prefix=None, where=None) -> str:
    """Check one input spec at launch (cheaply: it stops at the first file) and return its first
    file; a missing path, or one with nothing of the kind, is a one-line InputError."""
    if is_manifest(spec):
        if not fs.isfile(spec):
            raise InputError(f"{spec}: paths manifest not found")
        for f in manifest_paths(spec, prefix):
            return f
        raise InputError(f"{spec}: the paths manifest lists no files")
    if fs.has_glob(spec):
        for f in expand_spec(spec, suffixes, name, prefix, where):
            return f
        raise InputError(f"{spec}: no {what} match this pattern")
    if fs.isfile(spec):
        return spec
    if not fs.isdir(spec):
        raise InputError(f"{spec}: no such file or directory")
    found = fs.list_files(spec, tuple(suffixes) if suffixes else None, name, limit=1, where=where)
    if not found:
        raise InputError(f"{spec}: no {what} under this directory")
    return found[0]


class ExpandInputs(beam.PTransform):
    """User input specs -> file paths, expanded *inside* the pipeline (the job graph holds
    the specs, never the file list), then reshuffled so files spread over the workers.

    ``group_files=N`` yields ``(path, group)`` instead, the group being the N consecutive
    files (in the manifest's or the sorted listing's order) of one spec that ``path`` is in."""

    def __init__(self, specs: list[str], suffixes=None, name=None, prefix=None, group_files: int = 0,
                 where=None):
        super().__init__()
        self.specs, self.suffixes, self.name, self.prefix = list(specs), suffixes, name, prefix
        self.group_files, self.where = group_files, where

    def expand(self, p):
        suffixes, name, prefix, n, where = self.suffixes, self.name, self.prefix, self.group_files, self.where
        if n:
            files = (p | "Specs" >> beam.Create(list(enumerate(self.specs)))
                       | "Expand" >> beam.FlatMap(
                           lambda s: ((f, f"{s[0]}:{i // n}")
                                      for i, f in enumerate(expand_spec(s[1], suffixes, name, prefix, where)))))
        else:
            files = (p | "Specs" >> beam.Create(self.specs)
                       | "Expand" >> beam.FlatMap(lambda s: expand_spec(s, suffixes, name, prefix, where)))
        return files | "Distinct" >> beam.Distinct() | "Spread" >> beam.Reshuffle()


def text_bytes(doc: dict) -> int:
    return len(doc["text"].encode("utf-8"))


def count_kept(step: str, doc: dict) -> None:
    """A document a step keeps: ``<step>/documents`` and ``<step>/bytes`` (of its text, the
    run report's funnel)."""
    Metrics.counter(step, "documents").inc()
    Metrics.counter(step, "bytes").inc(text_bytes(doc))


class ReadFiles(beam.DoFn):
    """path -> documents through ``read_fn(path, counters)``; counts documents and lines
    (``documents=False`` for readers whose items are not documents, e.g. (key, post) pairs).

    An input file that turns out to be unreadable half-way (``InputError``) is logged with
    its name and counted as ``<step>/file_errors``; the other files go on."""

    def __init__(self, step: str, read_fn, documents: bool = True):
        self.step, self.read_fn, self.documents = step, read_fn, documents
        self.files = Metrics.counter(step, "files")
        self.lines = Metrics.counter(step, "lines")
        self.errors = Metrics.counter(step, "file_errors")

    def process(self, path):
        label = path if isinstance(path, str) else path[0]  # a file, or a (unit, files) pair
        self.files.inc()
        n = 0
        counter = lambda name, k=1: Metrics.counter(self.step, name).inc(k)  # noqa: E731
        try:
            for doc in self.read_fn(path, counter):
                if isinstance(doc, beam.pvalue.TaggedOutput):  # a reader's reject (Rejects.apply)
                    yield doc
                    continue
                n += 1
                if self.documents:
                    count_kept(self.step, doc)
                    self.lines.inc(doc["text"].count("\n") + 1)
                yield doc
        except InputError as e:
            self.errors.inc()
            Metrics.counter(self.step, f"unreadable:{e.path or label}").inc()  # the name reaches the stats
            log.error("%s (kept the %d %s read before the error)", e, n,
                      "documents" if self.documents else "items")
        log.info("%s %s: %d %s", self.step, fs.basename(label), n, "documents" if self.documents else "items")


def _shard_reader(columns, column: str, kind: str, batch_rows: int):
    def read(path, counter):
        pf = output.open_shard(path, column, kind)  # an unreadable file: InputError, named
        try:
            for batch in pf.iter_batches(columns=columns, batch_size=batch_rows, use_threads=False):
                yield from batch.to_pylist()
        except Exception as e:  # a file cut or damaged after its footer
            raise output.unreadable(path, e) from None
    return read


class ReadShards(beam.PTransform):
    """The rows of the Parquet shards of step outputs (``dirs``), one shard per work unit,
    read in batches.  An unreadable shard is named in the log and counted
    (``<step>/file_errors``): ``run_pipeline`` then fails with one line naming it and leaves
    the output incomplete (Beam's own Parquet source would stop the job with a worker
    traceback)."""

    def __init__(self, dirs: list[str], columns: list[str] | None = None, column: str = "text",
                 kind: str = "document", step: str = "read", batch_rows: int = 256):
        super().__init__()
        self.dirs, self.columns, self.column, self.kind = list(dirs), columns, column, kind
        self.step, self.batch_rows = step, batch_rows

    def expand(self, p):
        read = _shard_reader(self.columns, self.column, self.kind, self.batch_rows)
        return (p | "Shards" >> ExpandInputs(self.dirs, (".parquet",))
                  | "Rows" >> beam.ParDo(ReadFiles(self.step, read, documents=False)))


# ------------------------------------------------------------------------------ shards

UNIQUE_COLUMNS = frozenset({"id", "url", "text"})


@functools.lru_cache(maxsize=16)
def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The Parquet leaf columns to dictionary-encode: all but the (nearly) unique strings
    (``UNIQUE_COLUMNS``).  For those a dictionary never pays (Arrow falls back to plain
    pages; a real C4 shard comes out the same size) and building it is memory: writing a
    real 2 MB shard took ~19 MB with it, ~10 MB without."""
    buf = io.BytesIO()
    pq.write_table(schema.empty_table(), buf)
    paths = [c.path for c in pq.ParquetFile(io.BytesIO(buf.getvalue())).schema]
    return [c for c in paths if c.split(".", 1)[0] not in UNIQUE_COLUMNS]


class ParquetSink(fileio.FileSink):
    """``fileio.FileSink`` writing rows as zstd Parquet, one row group per ``batch_rows`` rows
    or ``batch_bytes`` of text.  Memory per open file is one batch; fileio keeps up to 20 files
    of a bundle open at once, so the batch is kept small (4 MB of text)."""

    def __init__(self, schema=None, batch_rows: int = 1000, batch_bytes: int = 4 << 20):
        self.schema = schema if schema is not None else DOC_SCHEMA
        self.batch_rows, self.batch_bytes = batch_rows, batch_bytes

    def create_metadata(self, destination, full_file_name):
        return fileio.FileMetadata(mime_type="application/vnd.apache.parquet",
                                   compression_type=CompressionTypes.UNCOMPRESSED)

    def open(self, fh):
        self._fh = fh
        self._writer = pq.ParquetWriter(fh, self.schema, compression="zstd",
                                        use_dictionary=dictionary_columns(self.schema))
        self._rows, self._bytes = [], 0

    def write(self, record):
        if not record[1]:  # (destination, packed row); b"" only makes the file exist
            return
        row = unpack(record[1])
        self._rows.append(row)
        self._bytes += _row_bytes(row)
        if len(self._rows) >= self.batch_rows or self._bytes >= self.batch_bytes:
            self._write_batch()

    def _write_batch(self):
        if self._rows:
            self._writer.write_table(rows_to_table(self._rows, self.schema))
            self._rows, self._bytes = [], 0

    def flush(self):
        self._write_batch()
        self._writer.close()  # the footer; fileio closes the file itself


# ------------------------------------------------------------------------------ shuffles

Packed = Tuple[str, bytes]
"""What crosses a shuffle: (key, bytes), the bytes a record's ``pack`` (pickled, compressed
when large) or fixed-width items.  Typed so, Beam encodes it with its byte-string coders:
the shuffle (Dataflow's, or the local runner's in its main process) moves bytes instead of
decoding and re-encoding every dict, and a worker holds a group as compact bytes and
decodes one record at a time."""


PACK_CODEC = "zstd"
COMPRESS_ABOVE = 1024
_PLAIN, _COMPRESSED = b"\0", b"\1"


def pack(record) -> bytes:
    """A record as bytes for a shuffle: pickled, and zstd-compressed from ``COMPRESS_ABOVE``
    bytes on.  Web text shrinks ~3.3x; C4 at 16x on one worker (one run each): the local
    runner's CPU 14.3 -> 8.3 s, its memory 666 -> 391 MB, the run 95 -> 82 s.  On
    Dataflow, whose Shuffle is billed by the byte, it is the bill that shrinks."""
    data = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) < COMPRESS_ABOVE:
        return _PLAIN + data
    return _COMPRESSED + len(data).to_bytes(8, "little") + pa.compress(data, codec=PACK_CODEC, asbytes=True)


def unpack(data: bytes):
    """``pack``'s inverse."""
    if data[:1] == _PLAIN:
        return pickle.loads(memoryview(data)[1:])
    size = int.from_bytes(data[1:9], "little")
    raw = pa.decompress(memoryview(data)[9:], decompressed_size=size, codec=PACK_CODEC, asbytes=True)
    return pickle.loads(raw)


class ConcatBytes(beam.CombineFn):
    """Byte strings of one key concatenated (fixed-width items stay decodable).  As a
    combiner it is lifted: each worker sends one string per key per bundle instead of one
    element per item, which is most of a shuffle's cost in records."""

    def create_accumulator(self):
        return []

    def add_input(self, acc, item):
        acc.append(item)
        return acc

    def merge_accumulators(self, accs):
        return [b"".join(x for acc in accs for x in acc)]

    def extract_output(self, acc):
        return b"".join(acc)


RECORD, ITEMS = b"R", b"I"


class JoinPacked(beam.PTransform):
    """Records and fixed-width byte items that share a key, in one shuffle: ``{"records":
    (key, record), "items": (key, bytes item)}`` -> ``(key, values)``, where a value is
    ``RECORD + pack(record)`` or ``ITEMS + the key's items concatenated`` (by a lifted
    combiner, so one string per key per bundle crosses the shuffle).  ``split_joined``
    reads a group back."""

    def __init__(self, key_fn):
        super().__init__()
        self.key_fn = key_fn

    def expand(self, inputs):
        key_fn = self.key_fn
        items = (inputs["items"]
                 | "PerKey" >> beam.CombinePerKey(ConcatBytes())
                 | "TagItems" >> beam.Map(lambda kv: (kv[0], ITEMS + kv[1])).with_output_types(Packed))
        records = inputs["records"] | "Pack" >> beam.Map(
            lambda r: (key_fn(r), RECORD + pack(r))).with_output_types(Packed)
        return (records, items) | "Tagged" >> beam.Flatten() | "Group" >> beam.GroupByKey()


def split_joined(values, width: int) -> tuple[list, list[bytes]]:
    """A ``JoinPacked`` group -> (records, items of ``width`` bytes)."""
    records, items = [], []
    for v in values:
        if v[:1] == RECORD:
            records.append(unpack(v[1:]))
        else:
            items.extend(v[i:i + width] for i in range(1, len(v), width))
    return records, items


def _row_bytes(row: dict) -> int:
    text = row.get("text")
    if isinstance(text, str):
        return len(text) + 64
    tokens = row.get("tokens")
    if tokens is not None:
        return 4 * len(tokens) + 64
    return len(row.get("url") or "") + 64


def _stable_hash(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "big")


def _shard_name(window, pane, shard_index, total_shards, compression, destination):
    # One file per destination (WriteParquetFiles: shards=1, no per-bundle writers); the
    # numbered form would only appear if fileio ever handed a destination several files.
    return f"{destination}.parquet" if total_shards == 1 else f"{destination}.{shard_index}.parquet"


class _AssignShard(beam.DoFn):
    def process(self, kv, n_shards):
        key, row = kv
        n = n_shards[key]
        shard = _stable_hash(str(row.get("id", ""))) % n
        yield f"{key}/part-{shard:05d}-of-{n:05d}", pack(row)


class _Count(beam.DoFn):
    """Counts the rows on their way to the sink (b"" only makes a file exist) and makes
    a local destination's directory (fileio's final rename does not create directories on
    local disk)."""

    def __init__(self, out_dir: str, counter: str = "rows"):
        self.out_dir = out_dir
        self.rows = Metrics.counter("_write", counter)

    def start_bundle(self):
        self._dirs = set()

    def process(self, record):
        dest, row = record
        if not fs.is_remote(self.out_dir):
            d = fs.dirname(fs.join(self.out_dir, dest))
            if d not in self._dirs:
                fs.mkdirs(d)
                self._dirs.add(d)
        if row:
            self.rows.inc()
        yield record


class WriteParquetFiles(beam.PTransform):
    """(destination, packed row) records -> ``out_dir/<destination>.parquet`` through Beam's
    ``fileio.WriteToFiles``: Beam groups the records by destination (its shuffle; no
    per-bundle writers, ``max_writers_per_bundle=0``, so a destination is one file however the
    records were spread over bundles), writes each group into a temporary file under
    ``out_dir/_tmp`` with one writer at a time, and its own
    finalisation moves the committed files into place, so a retried bundle can neither
    duplicate nor orphan rows.  Rows come packed (``pack``: they cross the shuffle as bytes
    and the sink decodes one at a time); ``b""`` only makes the file exist.  ``run_pipeline``
    checks that the rows in the final files are the rows written."""

    def __init__(self, out_dir: str, schema=None, counter: str = "rows"):
        super().__init__()
        self.out_dir, self.counter = str(out_dir), counter
        self.schema = schema if schema is not None else DOC_SCHEMA

    def expand(self, records):
        schema = self.schema
        return (records
                | "Count" >> beam.ParDo(_Count(self.out_dir, self.counter))
                | "Write" >> fileio.WriteToFiles(
                    self.out_dir, destination=lambda rec: rec[0], sink=lambda dest: ParquetSink(schema),
                    file_naming=_shard_name, shards=1, max_writers_per_bundle=0,
                    temp_directory=StaticValueProvider(str, fs.join(self.out_dir, output.TMP))))


class _CountOutput(beam.DoFn):
    """``output/documents``, ``output/bytes`` and the documents per ``language_<l>`` and
    perplexity ``bucket_<b>`` of what a step writes (a handful of counters, whatever the size)."""

    def process(self, doc):
        count_kept("output", doc)
        if doc.get("language"):
            Metrics.counter("output", f"language_{doc['language']}").inc()
        if doc.get("bucket"):
            Metrics.counter("output", f"bucket_{doc['bucket']}").inc()
        yield doc


class WriteShards(beam.PTransform):
    """Rows -> ``out_dir/<key_fn(row)>/part-NNNNN-of-MMMMM.parquet`` (zstd) through
    ``WriteParquetFiles`` (Beam's file sink and finalisation).

    The shard count of each key is derived from its estimated size (text bytes, computed in
    the pipeline: a side input with one number per output key, never growing with the
    corpus) and ``target_bytes``; rows go to shards by a hash of their id."""

    def __init__(self, out_dir: str, key_fn: Callable[[dict], str], target_bytes: int = 256 << 20,
                 schema=None, counter: str = "rows"):
        super().__init__()
        self.out_dir, self.key_fn, self.target_bytes = str(out_dir), key_fn, max(1, int(target_bytes))
        self.schema = schema if schema is not None else DOC_SCHEMA
        self.counter = counter

    def expand(self, rows):
        key_fn, target = self.key_fn, self.target_bytes
        if self.schema is DOC_SCHEMA and self.counter == "rows":  # a step's documents: the run report's counts
            rows = rows | "Count" >> beam.ParDo(_CountOutput())
        keyed = rows | "Key" >> beam.Map(lambda r: (key_fn(r), r))
        n_shards = (keyed
                    | "Bytes" >> beam.Map(lambda kv: (kv[0], _row_bytes(kv[1])))
                    | "BytesPerKey" >> beam.CombinePerKey(sum)
                    | "ShardsPerKey" >> beam.Map(lambda kv: (kv[0], max(1, math.ceil(kv[1] / target)))))
        assigned = (keyed | "Assign" >> beam.ParDo(_AssignShard(), n_shards=beam.pvalue.AsDict(n_shards))
                          .with_output_types(Packed))
        # every shard of a key exists, so "-of-MMMMM" is true even when a hash leaves one empty
        every_shard = n_shards | "EveryShard" >> beam.FlatMap(
            lambda kv: ((f"{kv[0]}/part-{i:05d}-of-{kv[1]:05d}", b"") for i in range(kv[1]))
        ).with_output_types(Packed)
        return ((assigned, every_shard)
                | "All" >> beam.Flatten()
                | "Files" >> WriteParquetFiles(self.out_dir, self.schema, self.counter))


# ------------------------------------------------------------------------------ the filter contract

REJECT = "rejected"


def reject(doc: dict, step: str, reason: str, **extra) -> beam.pvalue.TaggedOutput:
    """A dropped document as a DoFn yields it under the contract (``Rejects.apply``)."""
    meta = dict(doc.get("metadata") or {}, rejected_step=step, rejected_reason=reason, **extra)
    return beam.pvalue.TaggedOutput(REJECT, dict(doc, metadata=meta))


class _KeepIf(beam.DoFn):
    def __init__(self, step: str, check: Callable[[dict], str | None], rejected: bool):
        self.step, self.check, self.rejected = step, check, rejected

    def setup(self):  # a check that needs a model loads it once per worker (its own ``setup``)
        if hasattr(self.check, "setup"):
            self.check.setup()

    def process(self, doc):
        reason = self.check(doc)
        if reason is None:
            count_kept(self.step, doc)
            yield doc
            return
        Metrics.counter(self.step, f"dropped_{reason}").inc()
        if self.rejected:
            yield reject(doc, self.step, reason)


class _KeepFirst(beam.DoFn):
    def __init__(self, step, reason, sort_key, rejected: bool, unpack_docs: bool):
        self.step, self.reason, self.sort_key, self.rejected, self.unpack_docs = (step, reason, sort_key, rejected,
                                                                                  unpack_docs)

    def process(self, kv):
        docs = sorted(map(unpack, kv[1]) if self.unpack_docs else kv[1], key=self.sort_key)
        if len(docs) > 1:
            Metrics.counter(self.step, f"dropped_{self.reason}").inc(len(docs) - 1)
            if self.rejected:
                for d in docs[1:]:
                    yield reject(d, self.step, self.reason, duplicate_of=docs[0]["id"])
        count_kept(self.step, docs[0])
        yield docs[0]


class Rejects:
    """The one filter contract.  A filter is a pure function ``check(doc) -> None | reason``
    (None keeps the document; a reason is a short snake_case string; a check that needs a model
    is an object with ``setup()`` and ``__call__``).  ``keep_if`` applies it
    as a Beam step that counts ``<step>/documents`` (kept) and ``<step>/dropped_<reason>``, and
    -- when rejects are kept (``llama <source> --rejected``) -- sends each dropped document,
    with ``rejected_step`` and ``rejected_reason`` in its metadata, to
    ``<out>/_rejected/<step>/part-*.parquet`` in the document schema (``write``, once, at the
    end of the pipeline).  ``llama inspect <out> --rejected [--reason R]`` reads them; readers
    of the output never do (``core.fs.SKIP_DIRS``)."""

    DIR = fs.REJECTED

    def __init__(self, out_dir: str, enabled: bool = False, target_bytes: int = 256 << 20):
        self.out_dir, self.enabled, self.target_bytes = str(out_dir), enabled, target_bytes
        self.outputs = []

    def keep_if(self, docs, step: str, check: Callable[[dict], str | None], label: str | None = None):
        return self.apply(docs, label or step.capitalize(), _KeepIf(step, check, self.enabled))

    def keep_first(self, groups, step: str, reason: str, sort_key: Callable[[dict], object], label: str,
                   unpack_docs: bool = False):
        """An exact dedup's groups ``(key, documents)`` -> the first document by ``sort_key``;
        the others are dropped for ``reason`` (counted; rejected with ``duplicate_of``)."""
        return self.apply(groups, label, _KeepFirst(step, reason, sort_key, self.enabled, unpack_docs))

    def apply(self, pcoll, label: str, dofn):
        """A step whose DoFn yields kept documents and ``reject(doc, step, reason)`` for the
        dropped ones (which it counts itself): the kept ones are returned, the rejects kept."""
        res = pcoll | label >> beam.ParDo(dofn).with_outputs(REJECT, main="kept")
        if self.enabled:
            self.outputs.append(res[REJECT])
        return res.kept

    def write(self):
        if not self.outputs:
            return None
        return (tuple(self.outputs) | "AllRejected" >> beam.Flatten()
                | "WriteRejected" >> WriteShards(fs.join(self.out_dir, self.DIR),
                                                 lambda d: d["metadata"]["rejected_step"], self.target_bytes,
                                                 counter="rejected_rows"))


def shard_rows(out_dir: str) -> dict[str, int]:
    """{relative shard path: rows} from the Parquet footers of a step's output."""
    shards = {}
    for f in output.shard_files(out_dir):
        with fs.open_read(f) as fh:
            shards[fs.relpath(f, out_dir)] = pq.ParquetFile(fh).metadata.num_rows
    return shards


# ------------------------------------------------------------------------------ running

def graph_size(p: beam.Pipeline) -> dict:
    proto = p.to_runner_api()
    return {"graph_bytes": len(proto.SerializeToString()), "transforms": len(proto.components.transforms)}


def run_pipeline(build_fn, out_dir: str, runner: str, beam_args: list[str], extra: dict | None = None,
                 before_complete=None, run_id: str | None = None, held=None) -> dict:
    """Build and run a pipeline; write stats.json and the success marker; return the stats.
    ``held``: the output's lock (``core.lock``), checked before the output is marked complete."""
    t0 = time.time()
    run_id = run_id or output.new_run_id()
    p = new_pipeline(runner, beam_args)
    build_fn(p)
    try:
        result = p.run()
        result.wait_until_finish()
    except Exception as e:
        if disk_full(e):
            raise disk_full_error(out_dir) from None
        raise
    stats = {"counters": collect_counters(result), "seconds": round(time.time() - t0, 2),
             "runner": runner, "run_id": run_id, **(extra or {})}
    fs.delete(fs.join(out_dir, output.TMP))
    stats["shards"] = shard_rows(out_dir)
    writes = stats["counters"].pop("_write", {})
    written = writes.get("rows", 0)
    if written != sum(stats["shards"].values()):
        raise RuntimeError(f"{out_dir}: {written} rows were written but the shards hold "
                           f"{sum(stats['shards'].values())}; the output is left incomplete")
    if "rejected_rows" in writes:  # the dropped documents, kept on request (Rejects)
        rejected_dir = fs.join(out_dir, Rejects.DIR)
        fs.delete(fs.join(rejected_dir, output.TMP))
        stats["rejected"] = {k: n for k, n in shard_rows(rejected_dir).items() if n}
        if writes["rejected_rows"] != sum(stats["rejected"].values()):
            raise RuntimeError(f"{rejected_dir}: {writes['rejected_rows']} rejected rows were written but the "
                               f"shards hold {sum(stats['rejected'].values())}")
    broken = sum(v.get("file_errors", 0) for v in stats["counters"].values())
    if broken:
        # Not complete: stats.json for the record, no _SUCCESS, so nothing downstream reads it
        # and the next run redoes it.  (Damaged records inside a readable file are only counted.)
        output.write_stats(out_dir, stats)
        names = sorted(k.split(":", 1)[1] for v in stats["counters"].values() for k in v
                       if k.startswith("unreadable:"))
        raise InputError(f"{broken} input file(s) could not be read ({', '.join(names)}; reasons in the log); "
                         f"{out_dir} is left incomplete: fix or remove those files and run again")
    if before_complete is not None:
        try:
            before_complete(stats)  # a step's own verdict on its result, before it is marked complete
        except InputError:
            output.write_stats(out_dir, stats)
            raise
    try:
        if held is not None:
            held.mark_complete(stats)
        else:
            output.mark_complete(out_dir, stats, run_id)
    except OSError as e:
        if disk_full(e):
            raise disk_full_error(out_dir) from None
        raise
    return stats


def disk_full(e: BaseException) -> bool:
    """Whether ``e`` (or what it wraps: Beam re-raises a worker's error as a RuntimeError
    with its text) is "No space left on device"."""
    import errno

    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left on device" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def disk_full_error(out_dir: str) -> InputError:
    """One line for a full disk; the step's temporary files are removed first (no _SUCCESS
    was written, so nothing downstream reads the output, and the next run redoes it)."""
    fs.delete(fs.join(out_dir, output.TMP))
    if fs.is_remote(out_dir):
        return InputError(f"{out_dir}: a disk filled up while this step wrote its output (No space left on "
                          f"device: a worker's local scratch space); give the workers more disk and run again")
    free = shutil.disk_usage(out_dir if os.path.isdir(out_dir) else os.path.dirname(os.path.abspath(out_dir))).free
    return InputError(f"{out_dir}: the disk filled up while this step wrote its output (No space left on device); "
                      f"its filesystem has {free / 2**20:,.1f} MB free with the partial output removed and the "
                      f"output needs more than that: free space (or choose another --out) and run again")


def build_only(build_fn, runner: str, beam_args: list[str], stage: bool = False) -> dict:
    """Build the pipeline without running it and report the size of its job graph (for
    DataflowRunner also the job request Beam would submit, built with ``--dry_run``; with
    ``stage`` the code package and pipeline are uploaded to the staging location, exactly as
    a submission would, but no job is created)."""
    args = list(beam_args or [])
    if runner.endswith("DataflowRunner") and "dry_run" not in flag_names(args):
        args.append("--dry_run=True")
    p = new_pipeline(runner, args)
    build_fn(p)
    info = {"dry_run": True, "runner": runner, **graph_size(p)}
    if not runner.endswith("DataflowRunner"):
        # never run: remove the scratch directory Beam's Pipeline made (run() would have)
        shutil.rmtree(p.local_tempdir, ignore_errors=True)
    else:
        job = p.run().job
        if stage:
            from apache_beam.runners.dataflow.internal import apiclient

            apiclient.DataflowApplicationClient(p._options, job.root_staging_location).create_job_description(job)
            info["staged"] = sorted(fs.glob(fs.join(job.google_cloud_options.staging_location, "*")))
        info["dataflow_job_bytes"] = len(job.json())
    return info


def run_step(build_fn, out_dir: str, runner: str = "DirectRunner", beam_args=None, force: bool = False,
             extra: dict | None = None, dry_run: bool | str = False, before_complete=None) -> dict | None:
    """prepare_output + run_pipeline: None if the output was already complete.

    A complete output made from other inputs or settings (``extra`` differs from what its
    stats.json recorded) is an error, not a silent skip: --force redoes it.  ``dry_run``
    builds the pipeline only and returns the size of its job graph (``dry_run="stage"``: and
    stages a Dataflow job without submitting it)."""
    check_runner(runner)
    if dry_run:
        return build_only(build_fn, runner, list(beam_args or []), stage=dry_run == "stage")
    if output.is_complete(out_dir) and not force:
        output.check_same_run(out_dir, extra or {})
    run_id = output.new_run_id()
    with lock.holding(out_dir, run_id) as held:  # one writer per output
        if not output.prepare_output(out_dir, force):
            log.info("%s is complete (%s present); skipped", out_dir, output.SUCCESS)
            return None
        return run_pipeline(build_fn, out_dir, runner, list(beam_args or []), extra,
                            before_complete=before_complete, run_id=run_id, held=held)


# ------------------------------------------------------------------------------ samples

def seeded_key(seed, item: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}\x1f{item}".encode("utf-8"), digest_size=8).digest(), "big")


class SeededSample(beam.PTransform):
    """At most ``n`` items, a uniform pseudo-random sample: the ``n`` smallest keys of a seeded
    hash (``Top.Smallest``: a combiner holding ``n`` items per worker, never the corpus), so the
    same seed and input give the same sample in the same order, whatever the runner does."""

    def __init__(self, n: int, seed=0):
        super().__init__()
        self.n, self.seed = int(n), seed

    def expand(self, items):
        seed = self.seed
        return (items
                | "Key" >> beam.Map(lambda x: (seeded_key(seed, x), x))
                | "Smallest" >> beam.combiners.Top.Smallest(self.n)
                | "Items" >> beam.FlatMap(lambda top: [x for _, x in top]))


def draw_samples(build_fn, n: int, out_dir: str, runner: str = "DirectRunner", beam_args=None,
                 seed=0) -> dict[str, list[str]]:
    """Run a pipeline whose ``build_fn(p)`` returns {name: PCollection of str} and return a
    seeded sample of at most ``n`` items of each.  The samples pass through
    ``out_dir/_tmp/sample-<name>.jsonl`` (FileSystems, so workers anywhere can write them),
    which is removed afterwards."""
    import json as _json

    paths = {}
    p = new_pipeline(runner, list(beam_args or []))
    for name, pcoll in build_fn(p).items():
        paths[name] = fs.join(out_dir, output.TMP, f"sample-{name}.jsonl")
        (pcoll | f"Sample_{name}" >> SeededSample(n, seed)
               | f"Json_{name}" >> beam.Map(_json.dumps)
               | f"Write_{name}" >> beam.io.WriteToText(paths[name], num_shards=1, shard_name_template=""))
    p.run().wait_until_finish()
    samples = {name: [_json.loads(line) for line in fs.iter_lines(path) if line] if fs.isfile(path) else []
               for name, path in paths.items()}
    fs.delete(fs.join(out_dir, output.TMP))
    return samples
