"""Launching training: `llama train` (any config) and `llama train-7b` (the paper's 7B run).

On CPU the processes are started here, one per rank (gloo, DS_ACCELERATOR=cpu); with GPUs with
the deepspeed launcher (hostfile, nodes, GPUs per node); on a SLURM cluster (``--launcher
slurm``) by ``srun``, one task per GPU: from a login node `llama train --launcher slurm`
writes ``<run_dir>/slurm/train.sbatch`` and submits it with ``sbatch``; inside the allocation
the same command runs ``srun`` and every task maps SLURM's ranks to torch.distributed's
(``slurm_rendezvous``).  SLURM needs the repository, the token shards and ``run_dir`` on a
filesystem every node mounts at the same path (NFS, Lustre, GPFS): every rank writes its part
of each checkpoint there and reads ``latest`` from it on resume.  `train-7b` on a machine without
GPUs prints the plan -- memory per GPU for the chosen ZeRO stage, steps, tokens -- and
exits with status 2 instead of trying to train a 6.7B model on a CPU.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from core.errors import InputError


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:
        return 0


# The paper's training compute (Table 15, A100-80GB GPU-hours) and the tokens it bought.
PAPER_GPU_HOURS = {"7B": (82_432, 1.0e12), "13B": (135_168, 1.0e12), "33B": (530_432, 1.4e12),
                   "65B": (1_022_362, 1.4e12)}


def compute_plan(model: str, tokens: float, n_gpus: int) -> str | None:
    """The paper's A100-hours for ``model``, scaled to ``tokens``, and the days on ``n_gpus``."""
    if model not in PAPER_GPU_HOURS:
        return None
    hours, paper_tokens = PAPER_GPU_HOURS[model]
    need = hours * tokens / paper_tokens
    return (f"  compute: {need:,.0f} A100-80GB GPU-hours (the paper: {hours:,} for {paper_tokens / 1e12:.1f}T "
            f"tokens) = {need / max(1, n_gpus) / 24:,.1f} days on {n_gpus} A100(s) at the paper's throughput")


def memory_plan(params: int, n_gpus: int, zero_stage: int, seq_len: int, micro_batch: int, dim: int,
                n_layers: int, activation_checkpointing: bool = True, vocab: int = 32000) -> dict:
    """Bytes per GPU: bf16 weights (2) + bf16 grads (2) + fp32 master/Adam m/v (12) per parameter,
    partitioned by ZeRO stage; activations ~ 2*dim bytes per token per layer with checkpointing
    (the layer inputs), ~34*dim without (Korthikanti et al.)."""
    w, g, o = 2 * params, 2 * params, 12 * params
    n = max(1, n_gpus)
    states = {0: w + g + o, 1: w + g + o / n, 2: w + (g + o) / n, 3: (w + g + o) / n}[zero_stage]
    from model.llama import Transformer

    every = Transformer.CHECKPOINTING[activation_checkpointing]  # 0: none, 1: every layer, 2: every second
    per_token_layer = 34 * dim if not every else (2 * dim + (every - 1) * 34 * dim) / every
    acts = per_token_layer * n_layers * seq_len * micro_batch
    # the logits: bf16 from the output layer, their fp32 copy for the loss and its gradient
    logits = (2 + 4 + 4) * vocab * seq_len * micro_batch
    # recompute: one checkpointed layer's full activations live during its backward
    recompute = 34 * dim * seq_len * micro_batch if every else 0
    return {"model_states_gib": states / 2**30, "activations_gib": acts / 2**30, "logits_gib": logits / 2**30,
            "recompute_gib": recompute / 2**30, "total_gib": (states + acts + logits + recompute) / 2**30}


def plan_text(cfg: dict, n_nodes: int, gpus_per_node: int) -> str:
    from model.llama import Transformer, count_parameters, get_config

    from .trainer import accumulation_steps

    args = get_config(cfg["model"])
    params = count_parameters(args)
    world = n_nodes * gpus_per_node
    tokens_per_step = cfg["global_batch_tokens"]
    steps = cfg["steps"]
    lines = [f"LLaMA {cfg['model']}: {params:,} parameters (dim {args.dim}, {args.n_heads} heads, "
             f"{args.n_layers} layers, SwiGLU hidden {args.hidden_dim})",
             f"  {n_nodes} node(s) x {gpus_per_node} GPU(s) = {world} GPUs; seq_len {cfg['seq_len']}, "
             f"micro-batch {cfg['micro_batch']}",
             f"  batch {tokens_per_step / 1e6:.1f}M tokens/step x {steps:,} steps = "
             f"{tokens_per_step * steps / 1e12:.2f}T tokens; lr {cfg['lr']} (warm-up {cfg['warmup_steps']}, "
             f"cosine to {cfg['min_lr_ratio']:.0%})",
             f"  gradient accumulation: {accumulation_steps(cfg, world)}",
             *filter(None, [compute_plan(cfg["model"], tokens_per_step * steps, world)]),
             "  memory per GPU (bf16 weights+grads, fp32 Adam states; activation checkpointing "
             + ("off", "on", "selective")[Transformer.CHECKPOINTING[cfg["activation_checkpointing"]]] + "):"]
    for stage in (1, 2, 3):
        m = memory_plan(params, world, stage, cfg["seq_len"], cfg["micro_batch"], args.dim, args.n_layers,
                        cfg["activation_checkpointing"], cfg.get("vocab_size") or args.vocab_size)
        mark = "  <- configured" if stage == cfg["zero_stage"] else ""
        lines.append(f"    ZeRO-{stage}: {m['model_states_gib']:7.1f} GiB states + {m['activations_gib']:5.1f} GiB "
                     f"activations + {m['logits_gib']:4.1f} GiB logits + {m['recompute_gib']:4.1f} GiB recompute "
                     f"= {m['total_gib']:7.1f} GiB{mark}")
    return "\n".join(lines)


def cpu_memory_gib(cfg: dict, nproc: int) -> float:
    """All ranks' memory on one CPU machine: fp32 weights (4 B/param, every rank), fp32 grads (4)
    and Adam m, v (8), partitioned by the ZeRO stage, plus activations without checkpointing."""
    from model.llama import count_parameters, get_config

    args = get_config(cfg["model"], **cfg.get("model_overrides", {}))
    params = count_parameters(args)
    stage = cfg["zero_stage"]
    per_rank = 4 * params / (nproc if stage >= 3 else 1) + 4 * params / (nproc if stage >= 2 else 1) \
        + 8 * params / (nproc if stage >= 1 else 1)
    acts = 34 * args.dim * args.n_layers * cfg["seq_len"] * cfg["micro_batch"] + \
        4 * args.vocab_size * cfg["seq_len"] * cfg["micro_batch"] * 3  # logits, softmax, grad
    return nproc * (per_rank + acts) / 2**30


def check_cpu_memory(cfg: dict, nproc: int) -> None:
    import psutil

    need = cpu_memory_gib(cfg, nproc)
    have = psutil.virtual_memory().available / 2**30
    if need > 0.9 * have:
        raise InputError(f"model {cfg['model']} needs ~{need:,.0f} GiB for {nproc} CPU rank(s) (ZeRO-{cfg['zero_stage']}, "
                         f"fp32) but {have:,.0f} GiB is available: use a smaller model (e.g. tiny) here, or GPUs "
                         f"(`llama train-7b` prints the GPU plan)")


def launch(config: str, nproc: int | None = None, hostfile: str | None = None, n_nodes: int = 1,
           gpus: int | None = None, extra: list[str] | None = None, dry_run: bool = False,
           launcher: str = "auto", data: str | None = None, run_dir: str | None = None) -> int:
    """``data``/``run_dir`` override the config's (``make ... OUT=dir``); every rank gets them."""
    if not Path(config).is_file():
        raise InputError(f"{config}: training config not found")
    from .data import shard_files
    from .trainer import check_data, load_config

    cfg = load_config(config, {"data": data, "run_dir": run_dir})
    extra = list(extra or []) + [f"--{k}={v}" for k, v in (("data", data), ("run-dir", run_dir)) if v]
    shard_files(cfg["data"])  # fail once, here, rather than once per rank
    from .metrics import check_wandb

    check_wandb(cfg.get("wandb") or any(a.split("=")[0] == "--wandb" for a in extra))
    check_data(cfg)
    n_gpu = gpu_count()
    if launcher == "slurm":  # the login node may have no GPU; the allocation's nodes do
        env = _accelerator_env(on_cpu=n_gpu == 0 and gpus is None)
        return launch_slurm(config, cfg, n_nodes, gpus or nproc or 2, gpus is not None, extra, env, dry_run)
    env = _accelerator_env(on_cpu=n_gpu == 0, n_gpu=n_gpu)
    if n_gpu == 0:
        check_cpu_memory(cfg, nproc or 2)
        cmd = [sys.executable, "-m", "train.trainer", "--config", config, *extra]
        print(f"launch: {nproc or 2} CPU process(es): {' '.join(cmd)}", flush=True)
        return 0 if dry_run else spawn_local(cmd, nproc or 2, env)
    else:
        ds = shutil.which("deepspeed") or str(Path(sys.executable).parent / "deepspeed")
        cmd = [ds, "--num_nodes", str(n_nodes), "--num_gpus", str(gpus or n_gpu)]
        if hostfile:
            if not Path(hostfile).is_file():
                raise InputError(f"{hostfile}: hostfile not found")
            cmd += ["--hostfile", hostfile]
        cmd += ["--module", "train.trainer", "--config", config, *extra]
    print("launch:", " ".join(cmd), flush=True)
    if dry_run:
        return 0
    return subprocess.call(cmd, env=env)


def _accelerator_env(on_cpu: bool, n_gpu: int = 0) -> dict:
    """The ranks' environment: on CPU DeepSpeed's CPU accelerator and one OpenMP thread per rank
    (unless set); on GPUs the CPU default is dropped -- it belongs to the CPU branch alone."""
    env = dict(os.environ)
    if on_cpu:
        env.setdefault("DS_ACCELERATOR", "cpu")
        env.setdefault("OMP_NUM_THREADS", "1")
    elif env.get("DS_ACCELERATOR") == "cpu":
        print(f"launch: {n_gpu or 'GPU'} GPU(s) found: DS_ACCELERATOR=cpu from the environment ignored", flush=True)
        env.pop("DS_ACCELERATOR")
    return env


SLURM_PORT = 29500


def slurm_rendezvous(env=None) -> bool:
    """Inside an ``srun`` task, torch.distributed's rank variables from SLURM's (what torchrun
    would set): RANK = SLURM_PROCID, LOCAL_RANK = SLURM_LOCALID, WORLD_SIZE = SLURM_NTASKS;
    MASTER_ADDR/PORT come from the launcher (the allocation's first node).  True if set."""
    env = os.environ if env is None else env
    if "RANK" in env or "SLURM_PROCID" not in env or "MASTER_ADDR" not in env:
        return False
    world, nodes = int(env["SLURM_NTASKS"]), int(env.get("SLURM_NNODES", "1"))
    env.update(RANK=env["SLURM_PROCID"], LOCAL_RANK=env.get("SLURM_LOCALID", "0"), WORLD_SIZE=str(world),
               LOCAL_WORLD_SIZE=str(world // nodes), MASTER_PORT=env.get("MASTER_PORT", str(SLURM_PORT)))
    return True


def sbatch_script(config: str, n_nodes: int, tasks_per_node: int, run_dir: Path, gpus: bool, extra) -> str:
    import shlex

    llama = Path(sys.executable).parent / "llama"
    repo = Path(__file__).resolve().parent.parent
    args = " ".join(shlex.quote(a) for a in ["--config", str(Path(config).resolve()), "--num-nodes", str(n_nodes),
                                             "--num-gpus" if gpus else "--nproc", str(tasks_per_node), *extra])
    return "\n".join([
        "#!/bin/bash",
        f"#SBATCH --job-name=llama-{Path(config).stem}",
        f"#SBATCH --nodes={n_nodes}",
        f"#SBATCH --ntasks-per-node={tasks_per_node}",
        *([f"#SBATCH --gpus-per-node={tasks_per_node}"] if gpus else []),
        "#SBATCH --exclusive",
        "#SBATCH --requeue",
        "#SBATCH --signal=TERM@180",  # 3 minutes before the time limit: finish the step, checkpoint, exit 143
        f"#SBATCH --output={run_dir.resolve()}/slurm/%j.out",
        "# The repository, the token shards and run_dir must be on a filesystem every node mounts at the",
        "# same path: every rank writes its part of each checkpoint there and reads `latest` on resume.",
        "# Requeued or resubmitted, the same script resumes from the newest whole checkpoint.",
        "set -euo pipefail",
        f"cd {shlex.quote(str(repo))}",
        f"exec {shlex.quote(str(llama))} train --launcher slurm {args}",
        ""])


def launch_slurm(config: str, cfg: dict, n_nodes: int, tasks_per_node: int, gpus: bool, extra: list[str],
                 env: dict, dry_run: bool = False) -> int:
    """Outside an allocation: write the sbatch script and submit it.  Inside one (SLURM_JOB_ID):
    one ``srun`` step with a task per GPU (per rank on CPU) on every node."""
    if not os.environ.get("SLURM_JOB_ID"):
        run_dir = Path(cfg["run_dir"])
        script = run_dir / "slurm" / "train.sbatch"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(sbatch_script(config, n_nodes, tasks_per_node, run_dir, gpus, extra))
        print(f"launch: wrote {script}", flush=True)
        sbatch = shutil.which("sbatch")
        if dry_run:
            return 0
        if sbatch is None:
            raise InputError(f"sbatch not found: not a SLURM login node; submit {script} where SLURM runs")
        return subprocess.call([sbatch, str(script)], env=env)
    srun = shutil.which("srun")
    if srun is None:
        raise InputError("SLURM_JOB_ID is set but srun is not on PATH")
    nodes = os.environ.get("SLURM_JOB_NODELIST", "localhost")
    try:
        head = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                              check=True).stdout.split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        head = nodes.split(",")[0]
    env = dict(env, MASTER_ADDR=head, MASTER_PORT=str(SLURM_PORT))
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):  # each task's own come from slurm_rendezvous
        env.pop(k, None)
    cmd = [srun, "--kill-on-bad-exit=1", f"--nodes={n_nodes}", f"--ntasks-per-node={tasks_per_node}",
           sys.executable, "-m", "train.trainer", "--config", config, *extra]
    print("launch:", " ".join(cmd), f"(rendezvous {head}:{SLURM_PORT})", flush=True)
    return 0 if dry_run else subprocess.call(cmd, env=env)


def spawn_local(cmd: list[str], n: int, env: dict) -> int:
    """Start ``n`` ranks of ``cmd`` on this machine (what torchrun does for one node, without
    its extra failure report); if one fails, stop the others; return the first failure's code."""
    import signal
    import time

    port = str(_free_port())
    procs = []
    # the job scheduler's SIGTERM (pre-emption) to the launcher reaches every rank, which
    # finishes its step, saves a checkpoint and exits (train.trainer); wait for them
    signal.signal(signal.SIGTERM, lambda signum, frame: [p.send_signal(signum) for p in procs if p.poll() is None])
    for rank in range(n):
        e = dict(env, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(n), LOCAL_WORLD_SIZE=str(n),
                 MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen(cmd, env=e))
    code = 0
    try:
        while procs:
            for p in list(procs):
                rc = p.poll()
                if rc is None:
                    continue
                procs.remove(p)
                if rc != 0 and code == 0:
                    code = rc
                    deadline = time.time() + 30  # let the others report, then stop them
                    for q in procs:
                        try:
                            q.wait(timeout=max(0.1, deadline - time.time()))
                        except subprocess.TimeoutExpired:
                            q.terminate()
            time.sleep(0.2)
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        return 130
    return code


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_7b(config: str, hostfile: str | None, n_nodes: int, gpus_per_node: int, extra=None,
             launcher: str = "auto", data: str | None = None, run_dir: str | None = None) -> int:
    from .trainer import check_data, load_config

    cfg = load_config(config, {"data": data, "run_dir": run_dir})
    if Path(cfg["data"]).exists():  # the shards must be the config's (a planning machine may have none)
        check_data(cfg)
    n_gpu = gpu_count()
    print(plan_text(cfg, n_nodes, gpus_per_node if n_gpu == 0 else (gpus_per_node or n_gpu)))
    if launcher == "slurm":  # submitted from a login node without GPUs: the plan, then sbatch
        return launch(config, n_nodes=n_nodes, gpus=gpus_per_node, extra=extra, launcher="slurm", data=data,
                      run_dir=run_dir)
    if n_gpu == 0:
        print("train-7b: no GPU on this machine: the plan above is what would run. Launch it on a GPU "
              "cluster with `make train-7b HOSTFILE=hostfile NUM_NODES=N NUM_GPUS=G`.", file=sys.stderr)
        return 2
    return launch(config, hostfile=hostfile, n_nodes=n_nodes, gpus=gpus_per_node, extra=extra, data=data,
                  run_dir=run_dir)
