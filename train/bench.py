"""`make bench-train`: tokens/s and MFU of the trainer on this machine (not a test).

Trains the tiny config for a few steps on the token shards with 2 CPU processes and
reports the trainer's own tokens/s and MFU, against the measured fp32 matmul peak of one
thread (each rank runs with OMP_NUM_THREADS=1)."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from .flops import measure_matmul_peak
from .launch import launch


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
