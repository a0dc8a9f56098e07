"""Where a training run's numbers go: ``<run_dir>/log.jsonl`` (always), TensorBoard
(``<run_dir>/tb``, on by default: loss, lr, grad norm, tokens/s, MFU, memory, validation
loss) and Weights & Biases when asked (``wandb``: a project name).  Rank 0 only."""
from __future__ import annotations

import json
from pathlib import Path

from core.errors import InputError

SCALARS = ("loss", "lr", "grad_norm", "tokens_per_s", "mfu", "memory_gib", "val_loss")


def check_wandb(project) -> None:
    """``--wandb`` needs the package; say so before any rank starts."""
    if not project:
        return
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        raise InputError("--wandb needs the wandb package (pip install wandb; then `wandb login`)")


class RunLog:
    def __init__(self, run_dir: Path, cfg: dict, enabled: bool):
        self.enabled = enabled
        self.path = run_dir / "log.jsonl"
        self.tb = self.wandb = None
        if not enabled:
            return
        if cfg.get("tensorboard", True):
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is a dependency; a trimmed environment still trains
                SummaryWriter = None
            if SummaryWriter is not None:
                self.tb = SummaryWriter(log_dir=str(run_dir / "tb"))
        if cfg.get("wandb"):
            check_wandb(cfg["wandb"])
            import wandb

            self.wandb = wandb.init(project=str(cfg["wandb"]), dir=str(run_dir), config=cfg,
                                    name=run_dir.name, resume="allow", id=f"{run_dir.name}")

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        step = record["step"]
        values = {k: record[k] for k in SCALARS if record.get(k) is not None}
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"train/{k}" if k != "val_loss" else "val/loss", v, step)
        if self.wandb is not None:
            self.wandb.log(values, step=step)

    def close(self, failed: bool = False) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish(exit_code=1 if failed else 0)
