"""The DeepSpeed trainer on CPU: ZeRO 1/2/3, exact resume, non-finite stop, the data loader."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from train.data import TokenLoader


@pytest.fixture(scope="module")
def tokens(corpus, tokenizer_model, tmp_path_factory):
    from pipelines import tokenize

    mix = tokenize.load_mixture()
    mix = {k: mix[k] for k in ("stackexchange", "wikipedia")}
    out = tmp_path_factory.mktemp("tokens") / "t"
    tokenize.run(tokenize.source_dirs(corpus, mix), str(tokenizer_model), str(out), mix, seq_len=65,
                 total_tokens=60_000, shard_tokens=20_000, val_fraction=0.05)
    return out


def _train(tokens, run_dir, env_extra=None, cli_args=(), **cfg):
    config = {"model": "micro", "data": str(tokens), "run_dir": str(run_dir), "seq_len": 65, "micro_batch": 2,
              "steps": 8, "lr": 3e-3, "warmup_steps": 3, "log_interval": 2, "val_interval": 4,
              "val_fraction": 0.05, "val_batches": 2, "checkpoint_interval": 4, **cfg}
    path = Path(run_dir).with_suffix(".json")
    path.write_text(json.dumps(config))
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", **(env_extra or {}))
    res = subprocess.run([sys.executable, "-m", "cli", "train", "--config", str(path), "--nproc", "2",
                          *cli_args],
                         capture_output=True, text=True, env=env, timeout=600)
    log = Path(run_dir) / "log.jsonl"
    history = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return res, history


@pytest.fixture(scope="module")
def zero_runs(tokens, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {stage: _train(tokens, root / f"z{stage}", zero_stage=stage) for stage in (1, 2, 3)}


def test_zero_stages_train_and_agree(zero_runs):
    curves = {}
    for stage, (res, history) in zero_runs.items():
        assert res.returncode == 0, res.stderr[-2000:]
        assert len(history) == 8 and f"ZeRO-{stage}, 2 rank(s)" in res.stdout
        curves[stage] = [h["loss"] for h in history]
        assert curves[stage][-1] < curves[stage][0]                     # it learns
        assert all("val_loss" in h for h in history if h["step"] in (4, 8))
        assert all("tokens_per_s" in h and 0 < h["mfu"] < 1 for h in history if h["step"] % 2 == 0)
        assert all(0 < h["grad_norm"] < 1e3 for h in history)             # DeepSpeed's global norm, logged
        assert all(h["memory_gib"] > 0 for h in history if h["step"] % 2 == 0) and "ETA " in res.stdout
    for stage in (2, 3):  # ZeRO partitions state, it does not change the maths
        assert max(abs(a - b) for a, b in zip(curves[1], curves[stage])) < 1e-4


def test_zero3_construction_never_holds_a_whole_copy(tmp_path):
    """Each rank's peak resident memory while the trainer builds and initialises a 171M-parameter
    model (resident memory tracks live tensors: glibc is told to map every allocation over 64 kB
    on its own, so a freed tensor leaves the peak).  Whole-model stages hold every parameter;
    ZeRO-3 (deepspeed.zero.Init) holds its 1/world share plus one layer, plus the gloo gather's
    second copy of the one parameter being initialised (NCCL gathers in place).  Both build the
    same weights."""
    from train.launch import spawn_local

    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parent.parent),
               MALLOC_MMAP_THRESHOLD_="65536")
    got = {}
    for stage in (1, 3):
        out = tmp_path / f"z{stage}"
        assert spawn_local([sys.executable, str(Path(__file__).parent / "zero3_probe.py"), str(stage), str(out)],
                           2, env) == 0
        got[stage] = [json.loads(Path(f"{out}.{rank}.json").read_text()) for rank in (0, 1)]
    total = got[1][0]["total"] * 4
    assert all(r["held"] == r["total"] and r["peak_bytes"] >= total for r in got[1])   # the measure sees a copy
    for r in got[3]:
        assert r["held"] * 2 == r["total"]
        bound = total / 2 + 4 * r["layer"] + 4 * r["largest"]
        assert r["peak_bytes"] < bound, (r["peak_bytes"] / 2**20, bound / 2**20)
        assert r["peak_bytes"] < 0.62 * total
    assert len({r["checksum"] for r in got[1] + got[3]}) == 1   # the same initial weights


def test_slurm_sbatch_then_srun_trains_as_the_local_launcher(zero_runs, tokens, tmp_path):
    """`llama train --launcher slurm` from a "login node" writes and submits the sbatch script;
    inside the allocation it runs one srun step whose tasks take their ranks from SLURM's
    variables.  sbatch/srun/scontrol are stand-ins (tests/fake_slurm) that run the script and
    its tasks on this machine with the variables SLURM sets."""
    fake = Path(__file__).parent / "fake_slurm"
    log = tmp_path / "sbatch.txt"
    res, history = _train(tokens, tmp_path / "slurm", cli_args=["--launcher", "slurm"],
                          env_extra={"PATH": f"{fake}:{os.environ['PATH']}", "FAKE_SBATCH_LOG": str(log)})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Submitted batch job 4242" in res.stdout and "srun --kill-on-bad-exit=1" in res.stdout
    script = log.read_text()
    for line in ("#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=2", "#SBATCH --requeue", "#SBATCH --signal=TERM@180",
                 "train --launcher slurm", "filesystem every node mounts"):
        assert line in script
    assert [h["loss"] for h in history] == [h["loss"] for h in zero_runs[1][1]]   # the same run as torchrun-style
    # outside SLURM: one line, not a traceback
    res = subprocess.run([sys.executable, "-m", "cli", "train", "--launcher", "slurm", "--config",
                          str((tmp_path / "slurm").with_suffix(".json"))], capture_output=True, text=True,
                         env=dict(os.environ, PATH=os.path.dirname(sys.executable) + ":/usr/bin:/bin"), timeout=120)
    assert res.returncode == 2 and "sbatch not found" in res.stderr and "Traceback" not in res.stderr


def test_tensorboard_has_every_logged_number(zero_runs, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res, history = zero_runs[1]
    tb = Path(res.args[res.args.index("--config") + 1]).with_suffix("") / "tb"
    acc = EventAccumulator(str(tb))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s", "train/mfu", "train/memory_gib",
            "val/loss"} <= tags
    assert [round(e.value, 4) for e in acc.Scalars("train/loss")] == [round(h["loss"], 4) for h in history]
    assert [e.step for e in acc.Scalars("val/loss")] == [4, 8]


def test_mfu_peak_table_and_wandb_without_its_package(tokens, tmp_path, monkeypatch):
    import importlib.util

    from core.errors import InputError
    from train.flops import gpu_peak_flops
    from train.launch import launch

    assert gpu_peak_flops("NVIDIA H100 80GB HBM3") == 989.4e12
    assert gpu_peak_flops("NVIDIA H100 PCIe") == 756e12 and gpu_peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert gpu_peak_flops("NVIDIA B200") == 2250e12 and gpu_peak_flops("NVIDIA L4") == 121e12
    assert gpu_peak_flops("NVIDIA GeForce GTX 1080") is None
    find_spec = importlib.util.find_spec   # as if wandb were not installed
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(name, *a))
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model": "micro", "data": str(tokens), "seq_len": 65}))
    with pytest.raises(InputError, match="--wandb needs the wandb package"):
        launch(str(cfg), nproc=2, extra=["--wandb"], dry_run=True)


def _wandb_history(run_dir: Path) -> list[dict]:
    """The history records of an offline W&B run file (``run-*.wandb``: LevelDB's log format --
    32 kB blocks of crc/length/type-framed chunks -- holding protobuf ``Record``s)."""
    import struct

    from wandb.proto import wandb_internal_pb2

    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    data, pos, buf, history = path.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:   # the rest of a block is padding
            pos += left
            continue
        buf += data[pos + 7:pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):   # a whole record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            buf = b""
            if record.WhichOneof("record_type") == "history":
                items = record.history.item
                history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items})
    return history


def test_wandb_gets_every_logged_number(tokens, tmp_path):
    """`--wandb PROJECT` on a real run (W&B offline: the run file is read back).  The config names
    token shards and a run directory that do not exist: `--data`/`--run-dir` (what `make
    train-tiny OUT=...` passes) override them for the launcher's checks and for every rank."""
    res, history = _train(tmp_path / "no-such-tokens", tmp_path / "config-run-dir", steps=4,
                          cli_args=["--wandb=llama-test", "--data", str(tokens), "--run-dir", str(tmp_path / "wb")],
                          env_extra={"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert not (tmp_path / "config-run-dir").exists()
    history = [json.loads(line) for line in (tmp_path / "wb" / "log.jsonl").read_text().splitlines()]
    got = {h["_step"]: h for h in _wandb_history(tmp_path / "wb")}
    assert sorted(got) == [1, 2, 3, 4]
    for h in history:
        for k in ("loss", "lr", "grad_norm", "tokens_per_s", "mfu", "val_loss"):
            if k in h:
                assert got[h["step"]][k] == pytest.approx(h[k], rel=1e-5), (k, h)


def test_schedule_warmup_then_cosine_to_ten_percent(zero_runs):
    _, history = zero_runs[1]
    lrs = [h["lr"] for h in history]
    assert lrs[0] == pytest.approx(1e-3) and lrs[2] == pytest.approx(3e-3)  # warm-up over 3 steps
    assert lrs[-1] == pytest.approx(3e-4)                                    # 10% of peak at the end
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))


def test_resume_gives_the_same_loss_curve(zero_runs, tokens, tmp_path):
    _, full = zero_runs[1]
    run = tmp_path / "resumed"
    res1, first = _train(tokens, run, zero_stage=1, stop_at_step=4)  # interrupted after step 4
    assert res1.returncode == 0, res1.stderr[-2000:]
    assert [h["step"] for h in first] == [1, 2, 3, 4]
    res2, both = _train(tokens, run, zero_stage=1, steps=8)
    assert res2.returncode == 0 and "resumed from" in res2.stdout and "at step 4" in res2.stdout
    assert [h["step"] for h in both] == list(range(1, 9))
    assert [h["loss"] for h in both] == [h["loss"] for h in full]


def test_non_finite_loss_stops_before_the_step(tokens, tmp_path):
    from train.trainer import FAULT_NAN_STEP

    res, history = _train(tokens, tmp_path / "nan", env_extra={FAULT_NAN_STEP: "3"}, steps=5,
                          checkpoint_interval=2)
    assert res.returncode != 0
    assert "non-finite loss (nan) at step 3 on 1 rank(s)" in res.stderr
    assert "stopped before the optimizer step" in res.stderr and "Traceback" not in res.stderr
    assert [h["step"] for h in history] == [1, 2]   # both ranks stopped, nothing logged for step 3
    latest = (tmp_path / "nan" / "checkpoints" / "latest").read_text().strip()
    assert latest == "step2"                          # the last good checkpoint is untouched


def test_epoch_is_a_permutation_of_every_training_row():
    from train.data import Permutation

    for n in (1, 2, 7, 64, 1000, 4097):
        p = Permutation(n, seed=3, epoch=1)
        assert sorted(p(np.arange(n)).tolist()) == list(range(n))
    a, b = Permutation(1000, 3, 1)(np.arange(1000)), Permutation(1000, 3, 2)(np.arange(1000))
    assert not np.array_equal(a, b) and not np.array_equal(a, np.arange(1000))  # shuffled, per epoch


def test_loader_index_built_once_reads_every_row_once_per_epoch(tokens):
    """The memory-mapped index is laid out once and reused; one epoch of the stream (one rank,
    micro-batch 1) yields every training row exactly once, as the Parquet shards hold it."""
    import pyarrow.parquet as pq

    from train.data import index_dir

    loader = TokenLoader(tokens, 65, 1, seed=4, prefetch=False)
    stamps = {f: f.stat().st_mtime_ns for f in index_dir(tokens, 65).glob("*.npy")}
    assert len(stamps) == 2 * len(loader.files)
    again = TokenLoader(tokens, 65, 1, seed=4)
    assert {f: f.stat().st_mtime_ns for f in index_dir(tokens, 65).glob("*.npy")} == stamps   # not rebuilt
    parquet_rows = sorted(tuple(r[:65]) for f in loader.files for r in pq.read_table(f).column("tokens").to_pylist())
    seen = []
    for _ in range(loader.epoch_len):
        x, y = again.next_batch()
        n = int((y[0] != -100).sum())
        seen.append(tuple(x[0, :n].tolist()) + (int(y[0, n - 1]),))
    assert sorted(seen) == parquet_rows and again.pos.epoch == 0
    assert again.next_batch()[0].shape == (1, 64) and again.pos.epoch == 1


def test_loader_index_is_remade_for_a_replaced_shard(tokens, tmp_path):
    import shutil
    import time

    import pyarrow.parquet as pq

    data = tmp_path / "t"
    shutil.copytree(tokens, data)
    first = TokenLoader(data, 65, 1, prefetch=False)
    shard = first.files[0]
    table = pq.read_table(shard)
    time.sleep(0.01)
    pq.write_table(table.take(list(range(table.num_rows - 1, -1, -1))), shard)   # the rows reversed
    again = TokenLoader(data, 65, 1, prefetch=False)
    rows = table.column("tokens").to_pylist()
    assert list(again.tokens[0][0][:len(rows[-1])]) == rows[-1][:65]
    assert list(first.tokens[0][0][:len(rows[0])]) == rows[0][:65]   # what it held before


def test_loader_resumes_on_another_number_of_ranks(tokens):
    """The position counts samples of the global stream: 2 ranks x 2 rows for 3 steps, then
    the checkpointed position read by 1 rank x 4 rows gives the rows the 2 ranks would have."""
    two = [TokenLoader(tokens, 65, 2, rank=r, world=2, seed=5) for r in (0, 1)]
    for _ in range(3):
        for ld in two:
            ld.next_batch()
    state = two[0].state_dict()
    nxt = torch.cat([ld.next_batch()[0] for ld in two])
    one = TokenLoader(tokens, 65, 4, rank=0, world=1, seed=5)
    one.load_state_dict(state)
    assert one.next_batch()[0].equal(nxt)


def test_validation_gives_every_rank_the_same_number_of_batches(tokens):
    loaders = [TokenLoader(tokens, 65, 2, rank=r, world=3, seed=0, val_fraction=0.05) for r in range(3)]
    counts = [sum(1 for _ in ld.val_batches()) for ld in loaders]
    assert counts[0] >= 1 and len(set(counts)) == 1
    rows = [tuple(x[i].tolist()) for ld in loaders for x, _ in ld.val_batches() for i in range(2)]
    assert len(set(rows)) == len(rows)   # disjoint shares


def test_global_batch_is_exact_or_refused():
    """LLaMA's 4M-token batch: 2048 x 4 x 8 ranks x 64 micro-steps exactly; a batch that is not a
    whole number of micro-steps is refused with what would fit, never rounded."""
    from core.errors import InputError
    from train.trainer import DEFAULTS, accumulation_steps, ds_config

    cfg = dict(DEFAULTS, seq_len=2048, micro_batch=4, global_batch_tokens=4_194_304)
    assert accumulation_steps(cfg, 8) == 64 and accumulation_steps(cfg, 1) == 512
    with pytest.raises(InputError, match="not a whole number of micro-steps.*micro_batch 2 fits"):
        accumulation_steps(dict(cfg, micro_batch=3), 8)
    with pytest.raises(InputError, match="6 rank"):
        accumulation_steps(cfg, 6)
    assert accumulation_steps(dict(cfg, global_batch_tokens=None, gradient_accumulation=3), 8) == 3
    assert ds_config(cfg, 64, on_gpu=True)["data_types"] == {"grad_accum_dtype": "fp32"}  # under bf16
    assert "data_types" not in ds_config(cfg, 64, on_gpu=False)                          # fp32 on CPU


def test_sigterm_saves_and_resumes_and_only_the_newest_checkpoints_are_kept(zero_runs, tokens, tmp_path):
    """Pre-emption: a SIGTERM to one rank during step 5 -> every rank finishes the step, the
    checkpoint of step 5 is written (``latest`` once all ranks are done), exit 143; only the
    newest 2 checkpoints are kept.  The same command then finishes the run with the loss
    curve of the run never stopped."""
    from train.trainer import FAULT_SIGTERM_STEP, PREEMPTED_EXIT

    _, full = zero_runs[1]
    run = tmp_path / "pre"
    res, first = _train(tokens, run, env_extra={FAULT_SIGTERM_STEP: "5"}, zero_stage=1, checkpoint_interval=2,
                        keep_checkpoints=2)
    assert res.returncode == PREEMPTED_EXIT, res.stderr[-2000:]
    assert "stopped by SIGTERM after step 5 of 8" in res.stderr and "Traceback" not in res.stderr
    assert [h["step"] for h in first] == [1, 2, 3, 4, 5]
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir() if p.is_dir()) == ["step4", "step5"]   # step2 removed
    assert (ckpts / "latest").read_text() == "step5"
    res2, both = _train(tokens, run, zero_stage=1, checkpoint_interval=2, keep_checkpoints=2)
    assert res2.returncode == 0 and "at step 5" in res2.stdout, res2.stderr[-2000:]
    assert [h["loss"] for h in both] == [h["loss"] for h in full]


def test_loader_is_deterministic_sharded_and_resumable(tokens):
    a0, a1 = (TokenLoader(tokens, 65, 2, rank=r, world=2, seed=1) for r in (0, 1))
    seen = []
    for _ in range(5):
        x0, _ = a0.next_batch()
        x1, _ = a1.next_batch()
        seen += [tuple(r.tolist()) for r in x0] + [tuple(r.tolist()) for r in x1]
    assert len(set(seen)) == len(seen)  # ranks read disjoint rows
    b0 = TokenLoader(tokens, 65, 2, rank=0, world=2, seed=1)
    for _ in range(3):
        b0.next_batch()
    state = b0.state_dict()
    c0 = TokenLoader(tokens, 65, 2, rank=0, world=2, seed=1)
    c0.load_state_dict(state)
    x_b, y_b = b0.next_batch()
    x_c, y_c = c0.next_batch()
    assert x_b.equal(x_c) and y_b.equal(y_c)
    assert not TokenLoader(tokens, 65, 2, seed=2).next_batch()[0].equal(TokenLoader(tokens, 65, 2, seed=1).next_batch()[0])
    x, y = x_b, y_b
    assert x[:, 1:].equal(y[:, :-1]) or (y == -100).any()  # targets are inputs shifted by one


def test_7b_on_cpu_is_refused_with_a_plan(tokens, tmp_path):
    cfg = json.loads((Path(__file__).parent.parent / "configs" / "train_7b.json").read_text())
    manifest = json.loads(((tokens if tokens.is_dir() else tokens.parent) / "manifest.json").read_text())
    cfg.update(data=str(tokens), seq_len=manifest["seq_len"], vocab_size=manifest["vocab_size"])  # shards fit
    path = tmp_path / "7b.json"
    path.write_text(json.dumps(cfg))
    res = subprocess.run([sys.executable, "-m", "cli", "train", "--config", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "model 7B needs ~" in res.stderr and "GiB is available" in res.stderr
    assert "launch:" not in res.stdout  # nothing was started
    # (no shards yet: a `make demo`'s out/tokens, 512-token rows, would be refused first)
    res = subprocess.run([sys.executable, "-m", "cli", "train-7b", "--data", str(tmp_path / "no-tokens")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "6,738,415,616 parameters" in res.stdout and "ZeRO-3:" in res.stdout
    # the paper's compute for 1T tokens (250k steps of 4M... 4,194,304 tokens: 1.05T) and its days on 8 GPUs
    assert "compute: 86,436 A100-80GB GPU-hours (the paper: 82,432 for 1.0T tokens) = 450.2 days on 8" in res.stdout
    assert "GiB logits +" in res.stdout and "GiB recompute" in res.stdout
    assert "no GPU on this machine" in res.stderr


def _run_dir(zero_runs, stage) -> Path:
    """The run directory of a _train run (its config file is the run dir + .json)."""
    config = zero_runs[stage][0].args[zero_runs[stage][0].args.index("--config") + 1]
    return Path(config).with_suffix("")


def _our_model(state, args):
    from model.llama import Transformer

    m = Transformer(args).eval()
    m.load_state_dict(state)
    return m


def test_export_hf_from_zero_1_and_3_loads_in_transformers_with_our_logits(zero_runs, tokens, tokenizer_model,
                                                                          tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import cli
    from tokenizer import Tokenizer
    from train.export import load_weights

    x, _ = next(iter(TokenLoader(tokens, 65, 2, 0, 1, 0, 0.05).val_batches(1)))
    ours = Tokenizer(tokenizer_model)
    text = "The Parliament of Ukraine — Верховна Рада — met on 12 May 1990.  Two  spaces, a tab\tand ½."
    exported = {}
    for stage in (1, 3):
        run = _run_dir(zero_runs, stage)
        out = tmp_path / f"hf{stage}"
        assert cli.main(["export-hf", str(run), str(out)]) == 0
        state, args, _ = load_weights(run / "checkpoints" / "step8")
        hf = AutoModelForCausalLM.from_pretrained(str(out)).eval()
        with torch.no_grad():
            want = _our_model(state, args)(x)
            assert (hf(x).logits - want).abs().max().item() < 1e-4
        exported[stage] = want
        tok = AutoTokenizer.from_pretrained(str(out))
        assert tok(text)["input_ids"] == ours.encode(text)
        assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == ours.decode(ours.encode(text))
    # ZeRO-3's partitions gathered by zero_to_fp32 are the same model ZeRO-1 trained
    assert (exported[1] - exported[3]).abs().max().item() < 1e-3
    assert cli.main(["export-hf", str(tmp_path / "nothing"), str(tmp_path / "x")]) == 2


def test_import_meta_merges_model_parallel_shards(zero_runs, tokens, tokenizer_model, tmp_path):
    from model.meta import save_meta
    import cli
    from train.export import load_weights

    run = _run_dir(zero_runs, 1)
    state, args, _ = load_weights(run)
    save_meta(state, args, tmp_path / "meta", shards=2)   # Meta's 13B layout: two model-parallel files
    shard = torch.load(tmp_path / "meta" / "consolidated.01.pth", weights_only=True)
    assert shard["tok_embeddings.weight"].shape[1] == args.dim // 2 and "rope.freqs" in shard
    assert cli.main(["import-meta", str(tmp_path / "meta"), str(tmp_path / "imported"),
                     "--tokenizer", str(tokenizer_model)]) == 0
    back, back_args, tok = load_weights(tmp_path / "imported")
    from dataclasses import replace

    # Meta's params.json has no context length: LLaMA-1's 2048
    assert back_args.max_seq_len == 2048 and replace(back_args, max_seq_len=65) == args
    assert tok and set(back) == set(state)
    assert all(torch.equal(back[k], state[k]) for k in state)
    x, _ = next(iter(TokenLoader(tokens, 65, 2, 0, 1, 0, 0.05).val_batches(1)))
    with torch.no_grad():
        assert torch.equal(_our_model(back, args)(x), _our_model(state, args)(x))
    # a run started from the imported weights (init_from) begins where the trained model ended
    res, cont = _train(tokens, tmp_path / "cont", init_from=str(tmp_path / "imported"), steps=2, val_fraction=0)
    assert res.returncode == 0 and "initialised from" in res.stdout, res.stderr[-2000:]
    assert cont[0]["loss"] < zero_runs[1][1][0]["loss"] - 0.1
    # ... and weights of another shape are refused by every rank (under ZeRO-3 only rank 0 reads them)
    res, _ = _train(tokens, tmp_path / "wrong", init_from=str(tmp_path / "imported"), steps=2, val_fraction=0,
                    zero_stage=3, model_overrides={"dim": 128})
    assert res.returncode == 2 and res.stderr.count("train: error: init_from") == 2, res.stderr[-2000:]
    (tmp_path / "meta" / "params.json").write_text(json.dumps({"dim": 64, "n_layers": 2, "n_heads": 4,
                                                               "n_kv_heads": 2, "vocab_size": -1}))
    assert cli.main(["import-meta", str(tmp_path / "meta"), str(tmp_path / "x")]) == 2   # LLaMA-2: refused


def test_eval_perplexity_is_the_models_own(zero_runs, corpus, tmp_path):
    """lm-evaluation-harness on the exported checkpoint gives the word perplexity our model
    computes itself over the same rolling windows."""
    import math
    import re

    import pyarrow.parquet as pq
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    import cli
    from tokenizer import Tokenizer
    from train.export import load_weights

    run = _run_dir(zero_runs, 1)
    shard = sorted((corpus / "wikipedia" / "en").glob("*.parquet"))[0]
    assert cli.main(["eval", str(run), "--text", str(shard), "--limit", "2", "--out", str(tmp_path / "ev")]) == 0
    got = json.loads((tmp_path / "ev" / "results.json").read_text())["results"]["llama_text"]
    state, args, tok_path = load_weights(run)
    model, tok = _our_model(state, args), Tokenizer(tok_path)
    ll, words = 0.0, 0
    for doc in pq.read_table(shard, columns=["text"]).column("text").to_pylist()[:2]:
        ids = tok.encode(doc)  # lm-eval encodes with the tokenizer's BOS (as for HF's LLaMA), then rolls
        for ctx, cont in map(make_disjoint_window, get_rolling_token_windows(ids, tok.bos_id, args.max_seq_len, 1)):
            inp = torch.tensor([(ctx + cont)[:-1]])
            with torch.no_grad():
                logp = torch.log_softmax(model(inp)[0, -len(cont):].double(), -1)
            ll += logp[torch.arange(len(cont)), torch.tensor(cont)].sum().item()
        words += len(re.split(r"\s+", doc))
    want = math.exp(-ll / words)
    assert abs(got["word_perplexity,none"] - want) / want < 1e-4, (got, want)
