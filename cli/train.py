"""Training commands: train, train-7b, export-hf, import-meta, eval."""
from __future__ import annotations

from core import paths


def cmd_train(a, extra):
    from train.launch import launch

    return launch(a.config, nproc=a.nproc, hostfile=a.hostfile, n_nodes=a.num_nodes, gpus=a.num_gpus,
                  extra=extra, launcher=a.launcher, data=a.data, run_dir=a.run_dir)


def cmd_train_7b(a, extra):
    from train.launch import train_7b

    return train_7b(a.config, a.hostfile, a.num_nodes, a.num_gpus, extra, launcher=a.launcher, data=a.data,
                    run_dir=a.run_dir)


def cmd_export_hf(a, _):
    from train.export import export_hf

    files = export_hf(a.checkpoint, a.out, tokenizer=a.tokenizer, dtype=a.dtype)
    print(f"export-hf: {a.out}: {', '.join(files)}")
    print(f"load with: transformers.AutoModelForCausalLM.from_pretrained({a.out!r})")
    return 0


def cmd_import_meta(a, _):
    from train.export import import_meta

    files = import_meta(a.checkpoint, a.out, tokenizer=a.tokenizer)
    print(f"import-meta: {a.out}: {', '.join(files)} (llama export-hf / eval read it; init_from in a training "
          f"config starts a run from it)")
    return 0


def cmd_eval(a, _):
    from train.evaluate import evaluate

    res = evaluate(a.checkpoint, a.out, [t for t in (a.tasks or "").split(",") if t], text=a.text, limit=a.limit,
                   batch_size=a.batch_size, device=a.device, tokenizer=a.tokenizer)
    print(res["table"])
    print(f"eval: results in {a.out}/results.json")
    return 0




def _launch_flags(p, config: str, gpus: int | None, slurm_help: str) -> None:
    """The config, where it runs (nodes, GPUs, hostfile, launcher) and the paths it overrides."""
    p.add_argument("--config", default=str(paths.REPO / "configs" / config))
    p.add_argument("--hostfile")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--num-gpus", type=int, default=gpus, help="GPUs per node")
    p.add_argument("--launcher", choices=("auto", "slurm"), default="auto",
                   help=f"{slurm_help} (a filesystem shared by every node needed)")
    p.add_argument("--data", help="token shards (default: the config's)")
    p.add_argument("--run-dir", help="checkpoints and logs (default: the config's)")


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train a model (torchrun on CPU, deepspeed launcher on GPUs)")
    p.add_argument("--nproc", type=int, default=2, help="processes on CPU")
    _launch_flags(p, "train_tiny.json", None, "slurm: sbatch from a login node, srun inside an allocation")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("train-7b", help="the paper's 7B run; without GPUs: print the plan and exit")
    _launch_flags(p, "train_7b.json", 8, "slurm: print the plan, then submit with sbatch")
    p.set_defaults(fn=cmd_train_7b)

    p = sub.add_parser("export-hf", help="a checkpoint (any ZeRO stage) as a HuggingFace LLaMA directory")
    p.add_argument("checkpoint", help="a run directory, its checkpoints/ or checkpoints/step<N>, a Meta "
                                      "checkpoint or an imported model")
    p.add_argument("out")
    p.add_argument("--tokenizer", help="SentencePiece model (default: the one the run's token shards name)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.set_defaults(fn=cmd_export_hf)

    p = sub.add_parser("import-meta", help="Meta's consolidated.*.pth (+ params.json) as this project's weights")
    p.add_argument("checkpoint", help="directory with params.json and consolidated.NN.pth")
    p.add_argument("out")
    p.add_argument("--tokenizer", help="Meta's tokenizer.model (default: beside the checkpoint or one level up)")
    p.set_defaults(fn=cmd_import_meta)

    p = sub.add_parser("eval", help="lm-evaluation-harness on a checkpoint (pip install -e .[eval])")
    p.add_argument("checkpoint", help="as for export-hf, or a HuggingFace directory")
    p.add_argument("--tasks", default="", help="lm-eval task names, comma-separated (e.g. hellaswag,arc_easy)")
    p.add_argument("--text", help="also the perplexity of these documents (Parquet shards, e.g. out/wikipedia/en)")
    p.add_argument("--limit", type=int, help="at most this many examples per task")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tokenizer")
    p.add_argument("--out", default=str(paths.out_dir() / "eval"))
    p.set_defaults(fn=cmd_eval)

