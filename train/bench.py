"""`make bench-train`: tokens/s and MFU of the trainer on this machine (not a test).

Trains the tiny config for a few steps on the token shards with 2 CPU processes and
reports the trainer's own tokens/s and MFU, against the measured fp32 matmul peak of one
thread (each rank runs with OMP_NUM_THREADS=1); then the data loader's samples/s on 1M and
100M tokens (the real token rows of the shards, cycled to the size), which must be flat:
a sample costs the same whatever the data size."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from .flops import measure_matmul_peak
from .launch import launch


def write_token_shards(ids, out_dir: Path, source: str, rows_per_file: int = 16384,
                       manifest: str | None = None) -> Path:
    """Rows of token ids (an array: rows x seq) as complete token shards in the project's
    ``TOKEN_SCHEMA`` (one document per row), with ``manifest`` (its JSON text) beside them."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core import output
    from core.schema import TOKEN_SCHEMA

    rows, seq = ids.shape
    out_dir.mkdir()
    for k, s in enumerate(range(0, rows, rows_per_file)):
        chunk = ids[s:s + rows_per_file]
        n = len(chunk)
        pq.write_table(pa.table({"tokens": pa.array(list(chunk.astype(np.int32)), pa.list_(pa.int32())),
                                 "length": pa.array(np.full(n, seq, np.int32)),
                                 "doc_ids": pa.array([[f"d{s + i}"] for i in range(n)]),
                                 "sources": pa.array([[source]] * n),
                                 "doc_starts": pa.array([[0]] * n, pa.list_(pa.int32()))}, schema=TOKEN_SCHEMA),
                       out_dir / f"part-{k:05d}.parquet")
    if manifest is not None:
        (out_dir / "manifest.json").write_text(manifest)
    output.mark_complete(str(out_dir), {"bench": True})
    return out_dir


def loader_rate(data: str, tokens: int, work: str, seq: int = 512, micro_batch: int = 8,
                batches: int = 2000) -> float:
    """Samples/s of the trainer's loader (index laid out beforehand, as training does) over
    token shards of ``tokens`` tokens: the real rows of ``data``, cycled."""
    import time

    import numpy as np
    import pyarrow.parquet as pq

    from .data import TokenLoader, shard_files

    real = np.concatenate([np.concatenate(pq.read_table(f, columns=["tokens"]).column("tokens").to_numpy())
                           for f in shard_files(data)])
    rows = tokens // seq
    manifest = Path(data) / "manifest.json"
    d = write_token_shards(np.resize(real, rows * seq).reshape(rows, seq), Path(work) / f"tokens-{tokens}", "real",
                           manifest=manifest.read_text() if manifest.is_file() else None)
    loader = TokenLoader(str(d), seq, micro_batch, seed=0)
    for _ in range(50):
        loader.next_batch()
    t = time.perf_counter()
    for _ in range(batches):
        loader.next_batch()
    return batches * micro_batch / (time.perf_counter() - t)


def main() -> int:
    data = sys.argv[1] if len(sys.argv) > 1 else "out/tokens"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    peak = measure_matmul_peak(seconds=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = {"model": "tiny", "data": data, "run_dir": f"{tmp}/run", "seq_len": 512, "micro_batch": 2,
               "steps": 30, "warmup_steps": 5, "log_interval": 10, "val_fraction": 0.0,
               "checkpoint_interval": 10**9, "peak_tflops": peak / 1e12}
        Path(tmp, "bench.json").write_text(json.dumps(cfg))
        rc = launch(str(Path(tmp, "bench.json")), nproc=2)
        if rc:
            return rc
        logs = [json.loads(x) for x in Path(tmp, "run", "log.jsonl").read_text().splitlines()]
    last = [r for r in logs if "tokens_per_s" in r][1:]  # skip the first interval (warm-up)
    tps = sum(r["tokens_per_s"] for r in last) / len(last)
    mfu = sum(r["mfu"] for r in last) / len(last)
    print(f"bench-train: tiny LLaMA, 2 ranks x 1 thread, seq 512: {tps:,.0f} tokens/s, "
          f"MFU {mfu:.1%} of the measured {peak / 1e9:.1f} GFLOP/s fp32 matmul peak per thread")
    with tempfile.TemporaryDirectory() as tmp:
        rates = {n: loader_rate(data, n, tmp) for n in (1_000_000, 100_000_000)}
    small, big = rates.values()
    print(f"bench-train: loader (seq 512, micro-batch 8): {small:,.0f} samples/s on 1M tokens, "
          f"{big:,.0f} on 100M ({big / small:.2f}x: flat when near 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
