"""One rank of tests/test_train.py's construction probe: build the model as the trainer does
and report this rank's peak resident memory during construction + initialisation, the
parameter elements it holds, and a checksum of the whole (gathered) model."""
import json
import sys

import deepspeed
import torch
import torch.distributed as dist

from model.llama import count_parameters, get_config
from train.trainer import build_model, ds_config, leave_without_finalising, load_config


def status(key: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def main(stage: int, out: str) -> None:
    deepspeed.init_distributed(dist_backend="gloo")
    cfg = load_config(None, {"zero_stage": stage, "seed": 7})
    args = get_config("tiny", dim=1024, n_heads=8, n_layers=12, vocab_size=8000, multiple_of=256)
    ds = ds_config(cfg, 1, False)
    build_model(get_config("micro"), cfg, ds)  # first-use costs (thread pools, kernels) out of the measure
    dist.barrier()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset this process's peak RSS (VmHWM) to its current RSS
    before = status("VmRSS")
    model = build_model(args, cfg, ds)
    peak = status("VmHWM") - before
    held = sum(p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel() for p in model.parameters())
    checksum = 0.0
    for p in model.parameters():
        ctx = deepspeed.zero.GatheredParameters([p]) if hasattr(p, "ds_id") else torch.no_grad()
        with ctx:
            checksum += float((p.detach().double() * torch.arange(p.numel()).view(p.shape).remainder(7)).sum())
    def numel(p):
        return p.ds_numel if hasattr(p, "ds_numel") else p.numel()

    layer = sum(numel(p) for p in model.layers[0].parameters())
    largest = max(numel(p) for p in model.parameters())
    with open(f"{out}.{dist.get_rank()}.json", "w") as f:
        json.dump({"peak_bytes": peak, "held": held, "total": count_parameters(args), "layer": layer,
                   "largest": largest, "checksum": checksum}, f)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
    # the last collectives (the gathers above) may still be released by gloo's thread:
    # train.trainer._exit says why a rank then leaves without finalising
    leave_without_finalising(0)
