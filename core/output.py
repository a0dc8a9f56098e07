"""The one completion protocol, for every step and every consumer, on any filesystem.

A step writes into its output directory (local or ``gs://``): its shards first, then
``stats.json``, then ``_SUCCESS`` last.  ``_SUCCESS`` is a small JSON object carrying the
run id of the run that completed the output.  A directory with the marker is complete;
one without it is partial, is never read downstream, and is wiped before the step runs
again.  Every consumer (the next step, training, ``llama inspect``, the DAG) asks
``is_complete`` / ``require_complete``.
"""
from __future__ import annotations

import json
import os
import time
import uuid

from . import fs
from .errors import InputError

SUCCESS = "_SUCCESS"
STATS = "stats.json"
TMP = "_tmp"


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def is_complete(out_dir: str) -> bool:
    return fs.exists(fs.join(str(out_dir), SUCCESS))


def require_complete(out_dir: str, what: str, command: str) -> None:
    """One-line error naming the missing marker and the command that makes the output."""
    if not is_complete(out_dir):
        state = "is incomplete" if fs.isdir(out_dir) else "does not exist"
        raise InputError(f"{out_dir}: {what} {state} (no {SUCCESS}); run `{command}` first")


def success_info(out_dir: str) -> dict:
    try:
        return json.loads(fs.read_bytes(fs.join(str(out_dir), SUCCESS)))
    except Exception:
        return {}


def read_stats(out_dir: str) -> dict | None:
    try:
        return fs.read_json(fs.join(str(out_dir), STATS))
    except Exception:
        return None


def prepare_output(out_dir: str, force: bool = False) -> bool:
    """False if the output is already complete (and not forced); else wipe whatever partial
    output is there and return True."""
    if is_complete(out_dir) and not force:
        return False
    fs.delete(out_dir)
    fs.mkdirs(out_dir)
    return True


def write_stats(out_dir: str, stats: dict) -> None:
    fs.write_json(fs.join(str(out_dir), STATS), stats)


def mark_complete(out_dir: str, stats: dict, run_id: str | None = None) -> None:
    """stats.json, then the marker (with the run id): the last write of a step."""
    run_id = run_id or stats.get("run_id") or new_run_id()
    write_stats(out_dir, dict(stats, run_id=run_id))
    fs.write_json(fs.join(str(out_dir), SUCCESS),
                  {"run_id": run_id, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "host": os.uname().nodename})


def check_same_run(out_dir: str, extra: dict) -> None:
    """A complete output made from other inputs or settings is an error, not a silent skip."""
    recorded = read_stats(out_dir)
    if not recorded:
        return
    wanted = json.loads(json.dumps(extra, default=str))
    differ = sorted(k for k, v in wanted.items() if k in recorded and recorded[k] != v)
    if differ:
        raise InputError(f"{out_dir}: already holds the complete output of a different run ({', '.join(differ)} "
                         f"differ); pass --force to redo it, or choose another --out")


def shard_files(out_dir: str, suffix: str = ".parquet") -> list[str]:
    """The data files of a step's output (never its temporary files)."""
    return fs.list_files(str(out_dir), (suffix,))


def open_shard(path: str, column: str, kind: str):
    """``pq.ParquetFile`` of a shard (local or remote) that must have ``column``; else a
    one-line InputError.

    Read it with ``use_threads=False`` (``read_shard``, ``iter_batches(use_threads=False)``):
    the file is a Python object, and an Arrow pool thread that drops the last reference to
    one of its buffers while the interpreter exits aborts the process ("terminate called
    without an active exception"; seen in about one ``llama inspect`` in 15). Pre-buffering
    is off for the same reason: it reads through Arrow's I/O pool."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(fs.open_read(path), pre_buffer=False)
    except Exception as e:  # pyarrow raises several types for a non-Parquet file
        raise unreadable(path, e) from None
    if column not in pf.schema_arrow.names:
        raise InputError(f"{path}: not a {kind} shard (no '{column}' column)")
    return pf


def read_shard(path: str, columns: list[str] | None = None):
    """The table of one shard (local or remote), read without Arrow's thread pools (see
    ``open_shard``); an unreadable file is a one-line InputError."""
    import pyarrow.parquet as pq

    try:
        with fs.open_read(path) as fh:  # closed here, not left to the garbage collector
            return pq.ParquetFile(fh, pre_buffer=False).read(columns=columns, use_threads=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Exception as e:
        raise unreadable(path, e) from None


def unreadable(path: str, e: Exception) -> InputError:
    return InputError(f"{path}: not a readable Parquet file ({e.__class__.__name__}: {e})")
