"""DeepSpeed ZeRO trainer of the LLaMA model on token shards.

Run under a launcher (one process per device):
    torchrun --nproc_per_node 2 -m train.trainer --config configs/train_tiny.json
    deepspeed --num_gpus 8 --module train.trainer --config configs/train_7b.json

LLaMA's optimisation: AdamW (beta1 .9, beta2 .95, eps 1e-8), weight decay .1 on weight
matrices and embeddings (not on norms), gradient clipping 1.0, linear warm-up over 2000
steps, then cosine decay to 10% of the peak learning rate at the last step.  bf16 on GPU,
fp32 on CPU.  ZeRO stage 1/2/3 from the DeepSpeed config.

Each step: the loss of every micro-batch is checked on all ranks *before* backward and
the optimizer step; a non-finite loss stops the run with a clear message and exit
status 3, leaving the last checkpoint intact.  Checkpoints (DeepSpeed's, with the data
loader position and the step in the client state) make a resumed run continue exactly;
``stop_at_step`` ends a run early with a checkpoint (as a pre-empted job would), and the
same command run again resumes it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import torch

from core.errors import InputError

from .data import token_manifest


def cosine_with_warmup(warmup: int, total: int, min_ratio: float = 0.1):
    """LR multiplier of optimizer step ``s`` (0-based): linear warm-up to 1 at ``s = warmup-1``,
    then cosine down to ``min_ratio`` at the last step ``s = total-1``."""
    def f(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        if total <= warmup:
            return 1.0
        progress = min(1.0, (s - warmup + 1) / (total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


DEFAULTS = {
    "model": "tiny", "model_overrides": {}, "data": "out/tokens", "run_dir": "out/runs/tiny",
    "seq_len": 512, "micro_batch": 4, "global_batch_tokens": None, "gradient_accumulation": 1,
    "steps": 200, "lr": 3e-4, "min_lr_ratio": 0.1, "warmup_steps": 2000, "weight_decay": 0.1,
    "betas": [0.9, 0.95], "eps": 1e-8, "grad_clip": 1.0, "zero_stage": 1, "seed": 0,
    "activation_checkpointing": False, "log_interval": 10, "val_interval": 50, "val_batches": 8,
    "val_fraction": 0.05, "checkpoint_interval": 100, "peak_tflops": None, "init_std": 0.02,
    "stop_at_step": None, "vocab_size": None, "keep_checkpoints": 3, "tensorboard": True, "wandb": None,
    "init_from": None,
}
# Fault injection for tests: LLAMA_FAULT_NAN_STEP=k makes rank 1's loss NaN at step k.
FAULT_NAN_STEP = "LLAMA_FAULT_NAN_STEP"
# ... and LLAMA_FAULT_SIGTERM_STEP=k sends rank 1 a SIGTERM (pre-emption) during step k.
FAULT_SIGTERM_STEP = "LLAMA_FAULT_SIGTERM_STEP"
PREEMPTED_EXIT = 143  # 128 + SIGTERM, as the job scheduler expects of a terminated job


class Preempted(RuntimeError):
    pass


def load_config(path: str | None, overrides: dict) -> dict:
    cfg = dict(DEFAULTS)
    if path:
        try:
            cfg.update(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise InputError(f"{path}: training config not found") from None
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not valid JSON ({e})") from None
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    from model.llama import Transformer

    if cfg["activation_checkpointing"] not in Transformer.CHECKPOINTING:
        raise InputError(f"activation_checkpointing: false, true, \"full\" or \"selective\", not "
                         f"{cfg['activation_checkpointing']!r}")
    unknown = set(cfg) - set(DEFAULTS) - {"_comment"}
    if unknown:
        raise InputError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    return cfg


def vocab_size_of(data: str) -> int:
    """The vocabulary the token shards were made with (a model with another vocabulary would
    train on the wrong embedding rows)."""
    return token_manifest(data)["vocab_size"]


def check_data(cfg: dict) -> dict:
    """The token shards must be what the config trains on: sequences of ``seq_len`` tokens
    (shorter rows would be padded -- 512-token rows in 2048 slots are 75% padding) and, when
    the config names one (``vocab_size``: the paper's models use 32000), that vocabulary.  A
    mismatch is one line saying what to rebuild.  Returns the manifest."""
    m = token_manifest(cfg["data"])
    fixes = []
    if m["seq_len"] and m["seq_len"] != cfg["seq_len"]:
        fixes.append(f"{m['seq_len']}-token sequences, the config trains on {cfg['seq_len']} "
                     f"(`make tokens SEQ={cfg['seq_len']}`)")
    if cfg.get("vocab_size") and m["vocab_size"] != int(cfg["vocab_size"]):
        fixes.append(f"a {m['vocab_size']}-piece vocabulary, the config's model has {cfg['vocab_size']} "
                     f"(`make tokenizer VOCAB={cfg['vocab_size']}`, then `make tokens`)")
    if fixes:
        raise InputError(f"{cfg['data']}: the token shards hold {' and '.join(fixes)}; rebuild them, or "
                         f"change the config")
    return m


def ds_config(cfg: dict, gas: int, on_gpu: bool) -> dict:
    ds = {
        "train_micro_batch_size_per_gpu": cfg["micro_batch"],
        "gradient_accumulation_steps": gas,
        "gradient_clipping": cfg["grad_clip"],
        "zero_optimization": {"stage": cfg["zero_stage"]},
        "bf16": {"enabled": bool(on_gpu)},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if on_gpu:  # bf16 weights and activations; gradients accumulated and reduced in fp32 (as torchtitan)
        ds["data_types"] = {"grad_accum_dtype": "fp32"}
    return ds


def accumulation_steps(cfg: dict, world: int) -> int:
    """Micro-steps per optimizer step.  With ``global_batch_tokens`` (LLaMA: 4M) the batch is
    exactly that many tokens or the run is refused -- never silently rounded."""
    target = cfg["global_batch_tokens"]
    if not target:
        return int(cfg["gradient_accumulation"])
    per = cfg["seq_len"] * cfg["micro_batch"] * world
    gas, rest = divmod(int(target), per)
    if gas < 1 or rest:
        fits = [m for m in range(1, 4 * cfg["micro_batch"] + 1) if target % (cfg["seq_len"] * m * world) == 0]
        below = [m for m in fits if m <= cfg["micro_batch"]]
        hint = (f"micro_batch {(below or fits)[-1 if below else 0]} fits" if fits
                else "change the number of ranks or seq_len")
        raise InputError(f"global_batch_tokens {target:,} is not a whole number of micro-steps: seq_len "
                         f"{cfg['seq_len']} x micro_batch {cfg['micro_batch']} x {world} rank(s) = {per:,} "
                         f"tokens each ({hint})")
    return gas


def param_groups(model, weight_decay: float):
    def ndim(p):  # a ZeRO-3 partition is flat; its parameter's shape is ds_shape
        return len(p.ds_shape) if hasattr(p, "ds_shape") else p.dim()

    decay = [p for p in model.parameters() if ndim(p) >= 2]
    no_decay = [p for p in model.parameters() if ndim(p) < 2]  # RMSNorm weights
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_model(args, cfg: dict, ds: dict, device=None):
    """The model, without a whole fp32 copy in any rank's host memory.  ZeRO-3: built inside
    ``deepspeed.zero.Init``, which partitions each module's parameters as soon as it is
    constructed (a rank's peak is its 1/world share plus the one module being built), then
    initialised one gathered parameter at a time.  Other stages (which keep the whole model
    on every device anyway): built on the meta device and materialised on ``device`` (the
    GPU), so a 7B rank never stages 27 GB of fp32 weights in host RAM first."""
    from model.llama import Transformer

    if cfg["zero_stage"] == 3:
        import deepspeed

        with deepspeed.zero.Init(config_dict_or_path=ds):
            model = Transformer(args, activation_checkpointing=cfg["activation_checkpointing"])
    else:
        with torch.device("meta"):
            model = Transformer(args, activation_checkpointing=cfg["activation_checkpointing"])
        model.to_empty(device=device or "cpu")
    return model.init_weights(std=cfg["init_std"], seed=cfg["seed"])


def load_initial_weights(model, path: str, args, rank: int) -> None:
    """``init_from``: start from the weights at ``path`` (a run, an imported Meta model, ...;
    ``train.export.load_weights``) -- continued pretraining.  Under ZeRO-3 only rank 0 reads
    them, and each parameter is scattered from it in turn."""
    from .export import load_weights

    import deepspeed
    import torch.distributed as dist

    partitioned = any(hasattr(p, "ds_id") for p in model.parameters())
    state, src, _ = load_weights(path) if rank == 0 or not partitioned else (None, args, None)
    shape = ("dim", "n_layers", "n_heads", "vocab_size", "hidden_dim")
    problem = [None]
    if any(getattr(src, k) != getattr(args, k) for k in shape):
        problem[0] = (f"init_from {path}: a model of " + ", ".join(f"{k} {getattr(src, k)}" for k in shape)
                      + "; the config's has " + ", ".join(f"{k} {getattr(args, k)}" for k in shape))
    if partitioned:  # only rank 0 read the weights: every rank stops with its verdict
        dist.broadcast_object_list(problem, src=0)
    if problem[0]:
        raise InputError(problem[0])

    for name, p in model.named_parameters():
        with deepspeed.zero.GatheredParameters([p], modifier_rank=0, enabled=partitioned), torch.no_grad():
            if state is not None:
                p.copy_(state[name])
    if rank == 0:
        print(f"initialised from {path}", flush=True)


class NonFiniteLoss(RuntimeError):
    pass


def train(cfg: dict) -> dict:
    import deepspeed
    import torch.distributed as dist

    from model.llama import count_parameters, flops_per_token, get_config

    from .data import TokenLoader
    from .flops import device_peak_flops

    from .launch import slurm_rendezvous

    slurm_rendezvous()  # an srun task: ranks from SLURM's variables
    on_gpu = torch.cuda.is_available()
    deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if on_gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    torch.manual_seed(cfg["seed"])
    run_dir = Path(cfg["run_dir"])
    ckpt_dir = run_dir / "checkpoints"

    args = get_config(cfg["model"], vocab_size=check_data(cfg)["vocab_size"],
                      max_seq_len=max(cfg["seq_len"], 2), **cfg["model_overrides"])
    gas = accumulation_steps(cfg, world)
    ds = ds_config(cfg, gas, on_gpu)
    model = build_model(args, cfg, ds, torch.device("cuda", torch.cuda.current_device()) if on_gpu else None)
    if rank == 0:  # the sample index, laid out once (shared filesystem), before any rank opens it
        from .data import build_index

        build_index(cfg["data"], cfg["seq_len"], progress=True)
    dist.barrier()
    loader = TokenLoader(cfg["data"], cfg["seq_len"], cfg["micro_batch"], rank, world, cfg["seed"],
                         cfg["val_fraction"], build=False)

    from train.checkpoint import resume_tag

    tag = resume_tag(ckpt_dir)  # the newest whole checkpoint (a damaged newest one is skipped, with a warning)
    if tag is None and cfg["init_from"]:
        load_initial_weights(model, cfg["init_from"], args, rank)
    optimizer = torch.optim.AdamW(param_groups(model, cfg["weight_decay"]), lr=cfg["lr"],
                                  betas=tuple(cfg["betas"]), eps=cfg["eps"])
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(cfg["warmup_steps"], cfg["steps"], cfg["min_lr_ratio"]))
    engine, _, _, scheduler = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=schedule,
                                                   config=ds)

    step = 0
    if tag is not None:
        _, client = engine.load_checkpoint(str(ckpt_dir), tag=tag)
        step = int(client["step"])
        loader.load_state_dict(client["data"])
        if rank == 0:
            print(f"resumed from {ckpt_dir}/{tag} at step {step}", flush=True)

    tokens_per_step = cfg["micro_batch"] * (cfg["seq_len"] - 1) * gas * world
    flops_tok = flops_per_token(args, cfg["seq_len"])
    peak, peak_src = (cfg["peak_tflops"] * 1e12, "config") if cfg["peak_tflops"] else device_peak_flops()
    from .metrics import RunLog

    run_log = RunLog(run_dir, cfg, enabled=rank == 0)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        _truncate_log(run_log.path, step)  # steps logged after the checkpoint resumed from are redone
        (run_dir / "config.json").write_text(json.dumps(dict(cfg, world_size=world, gas=gas,
                                                              model_args=args.to_dict()), indent=2))
        print(f"model {cfg['model']}: {count_parameters(args):,} parameters, "
              f"ZeRO-{cfg['zero_stage']}, {world} rank(s), {tokens_per_step:,} tokens/step, "
              f"{cfg['steps']} steps; peak {peak / 1e9:.1f} GFLOP/s per rank ({peak_src})", flush=True)
    history = []
    t_last, tok_since, steps_since, paused = time.perf_counter(), 0, 0, 0.0  # paused: validation, checkpoints
    dev = engine.device
    stop_at = min(cfg["steps"], cfg["stop_at_step"] or cfg["steps"])
    fault_step = int(os.environ.get(FAULT_NAN_STEP, "0"))
    term_step = int(os.environ.get(FAULT_SIGTERM_STEP, "0"))
    terminated = []   # SIGTERM (SLURM/Kubernetes pre-emption): finish the step, save, stop
    signal.signal(signal.SIGTERM, lambda signum, frame: terminated.append(signum))
    try:
        while step < stop_at:
            lr = scheduler.get_last_lr()[0]  # the rate this step uses
            loss_sum = torch.zeros((), device=dev)
            for micro in range(gas):
                x, y = loader.next_batch()
                x, y = x.to(dev), y.to(dev)
                loss = engine(x, y)
                if step + 1 == fault_step and rank == min(1, world - 1):
                    loss = loss * float("nan")
                if step + 1 == term_step and micro == 0 and rank == min(1, world - 1):
                    os.kill(os.getpid(), signal.SIGTERM)
                engine.backward(loss)
                loss_sum += loss.detach().float()
                if micro < gas - 1:
                    engine.step()  # DeepSpeed's micro-step bookkeeping; the optimizer runs on the last
            # one host sync per step: the loss for the log and whether any rank's loss is non-finite,
            # checked before the optimizer step so a bad batch never reaches the weights
            reduced = torch.stack([torch.nan_to_num(loss_sum, nan=0.0, posinf=0.0, neginf=0.0),
                                   (~torch.isfinite(loss_sum)).float(),
                                   torch.tensor(float(bool(terminated)), device=dev)])
            dist.all_reduce(reduced)   # ... and whether any rank was told to stop
            total, n_bad, n_stop = reduced.tolist()
            if n_bad > 0:
                raise NonFiniteLoss(f"non-finite loss ({loss_sum.item() / gas}) at step {step + 1} on {int(n_bad)} "
                                    f"rank(s); stopped before the optimizer step. Last checkpoint: {_last(ckpt_dir)}")
            engine.step()
            grad_norm = engine.get_global_grad_norm()
            grad_norm = None if grad_norm is None else float(grad_norm)
            if grad_norm is not None and not math.isfinite(grad_norm):  # the same global norm on every rank
                raise NonFiniteLoss(f"non-finite gradient norm ({grad_norm}) at step {step + 1}; the update is not "
                                    f"saved. Last checkpoint: {_last(ckpt_dir)}")
            step += 1
            tok_since += tokens_per_step
            steps_since += 1
            mean_loss = total / (gas * world)
            record = {"step": step, "loss": round(mean_loss, 6), "lr": lr}
            if grad_norm is not None:
                record["grad_norm"] = round(grad_norm, 6)
            if step % cfg["log_interval"] == 0 or step == cfg["steps"]:
                dt = time.perf_counter() - t_last - paused  # training time only
                tps = tok_since / dt
                record.update(tokens_per_s=round(tps, 1), mfu=round(flops_tok * tps / (peak * world), 5),
                              memory_gib=round(peak_memory_gib(), 3))
                eta = (stop_at - step) * dt / steps_since
                t_last, tok_since, steps_since, paused = time.perf_counter(), 0, 0, 0.0
                if rank == 0:
                    print(f"step {step:>6}/{cfg['steps']}  loss {mean_loss:.4f}  lr {record['lr']:.2e}  "
                          f"{tps:,.0f} tok/s  MFU {record['mfu']:.2%}  mem {record['memory_gib']:.2f} GiB  "
                          f"ETA {_duration(eta)}", flush=True)
            if cfg["val_fraction"] > 0 and (step % cfg["val_interval"] == 0 or step == cfg["steps"]):
                t0 = time.perf_counter()
                record["val_loss"] = round(validate(engine, loader, cfg["val_batches"], dev), 6)
                paused += time.perf_counter() - t0
                if rank == 0:
                    print(f"step {step:>6}  validation loss {record['val_loss']:.4f}", flush=True)
            history.append(record)
            run_log.log(record)
            if step % cfg["checkpoint_interval"] == 0 or step in (cfg["steps"], stop_at) or n_stop:
                t0 = time.perf_counter()
                save_checkpoint(engine, ckpt_dir, step, loader.state_dict(), rank, cfg["keep_checkpoints"])
                paused += time.perf_counter() - t0
            if n_stop and step < stop_at:
                raise Preempted(f"stopped by SIGTERM after step {step} of {cfg['steps']}; checkpoint saved in "
                                f"{ckpt_dir}/step{step}: the same command resumes the run")
    finally:  # also on an error: TensorBoard's and W&B's files closed before the rank exits (_exit)
        run_log.close(failed=sys.exc_info()[0] is not None)
    return {"history": history, "rank": rank}


def peak_memory_gib() -> float:
    """Peak memory of this rank: the accelerator's allocator on a GPU, else the process's
    peak resident set."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    d, h, m, sec = seconds // 86400, seconds // 3600 % 24, seconds // 60 % 60, seconds % 60
    return f"{d}d{h:02d}h" if d else f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"


def save_checkpoint(engine, ckpt_dir: Path, step: int, data_state: dict, rank: int, keep: int) -> None:
    """DeepSpeed's checkpoint of every rank, then -- only once all ranks have written theirs
    (DeepSpeed itself points ``latest`` at the tag as soon as rank 0 is done) -- ``latest``,
    replaced atomically; then the step checkpoints beyond the newest ``keep`` are removed
    (0: keep all; never the one ``latest`` names)."""
    import shutil

    import torch.distributed as dist

    tag = f"step{step}"
    engine.save_checkpoint(str(ckpt_dir), tag=tag, client_state={"step": step, "data": data_state},
                           save_latest=False)
    dist.barrier()
    if rank == 0:
        tmp = ckpt_dir / f".latest.{os.getpid()}"
        tmp.write_text(tag)
        os.replace(tmp, ckpt_dir / "latest")
        if keep:
            from .checkpoint import step_tags

            for old in step_tags(ckpt_dir)[:-keep]:
                if old != tag:
                    shutil.rmtree(ckpt_dir / old, ignore_errors=True)
    dist.barrier()


def _last(ckpt_dir: Path) -> str:
    return str(ckpt_dir) if (ckpt_dir / "latest").is_file() else "none"


def _truncate_log(log_path: Path, step: int) -> None:
    """Keep the log's records up to ``step``, so a resumed run logs each step once."""
    if not log_path.is_file():
        return
    kept = []
    for line in log_path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the kill
    tmp = log_path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(x + "\n" for x in kept))
    tmp.replace(log_path)


def validate(engine, loader, max_batches: int, dev) -> float:
    import torch.distributed as dist

    engine.eval()
    total = torch.zeros(2, device=dev)
    with torch.no_grad():
        for x, y in loader.val_batches(max_batches):
            loss = engine(x.to(dev), y.to(dev))
            n = (y != -100).sum()
            total += torch.stack([loss.float() * n, n.float()])
    engine.train()
    dist.all_reduce(total)
    return (total[0] / total[1].clamp(min=1)).item()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="train.trainer")
    ap.add_argument("--config")
    ap.add_argument("--data")
    ap.add_argument("--run-dir")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--zero-stage", type=int, choices=(0, 1, 2, 3))
    ap.add_argument("--model")
    ap.add_argument("--wandb", nargs="?", const="llama-repro", default=None, metavar="PROJECT",
                    help="also log to Weights & Biases (project name; default llama-repro)")
    ap.add_argument("--local_rank", type=int, default=None)  # passed by the deepspeed launcher
    a = ap.parse_args(argv)
    try:
        cfg = load_config(a.config, {"data": a.data, "run_dir": a.run_dir, "steps": a.steps,
                                     "zero_stage": a.zero_stage, "model": a.model, "wandb": a.wandb})
        train(cfg)
    except InputError as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLoss as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 3
    except Preempted as e:
        print(f"train: {e}", file=sys.stderr)
        return PREEMPTED_EXIT
    return 0


def _exit(code: int) -> None:
    """Leave the process with ``code``.  A rank that stops on an error right after a collective
    (the ``init_from`` verdict's broadcast, the non-finite check's all-reduce) could die at exit of
    ``terminate called without an active exception`` (SIGABRT), and the launcher reported that
    (exit 250) instead of the error: gloo's worker thread may still hold the collective's tensors,
    and releasing them while the interpreter finalises it is refused the GIL and ended inside a
    C++ destructor (gdb: ``ProcessGroupGloo::runLoop`` -> ``~AsyncBroadcastWork`` -> decref ->
    ``take_gil`` -> ``pthread_exit`` -> ``std::terminate``; 1 exit in ~8 with a refused
    ``init_from`` on two ranks, more with the process group destroyed first).  So a rank of a
    process group stopping with an error flushes its output and leaves without finalising
    (``os._exit``); its files are closed by then (the run log in ``train``).  A run that ends
    well ends on the checkpoint's barrier, which holds no tensor, and exits as usual."""
    import torch.distributed as dist

    if code != 0 and dist.is_available() and dist.is_initialized():
        leave_without_finalising(code)
    sys.exit(code)


def leave_without_finalising(code: int) -> None:
    """Flush stdout and stderr and end the process now (``os._exit``): no finalisation for
    gloo's thread to die in (``_exit``).  Files must be closed before."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
