"""Meta's released LLaMA-1 checkpoints (``consolidated.NN.pth`` + ``params.json``) into this
model.  The names are the same (this model is Meta's ``model.py``); a model-parallel release
(13B: 2 files, 33B: 4, 65B: 8) splits each matrix across the files as Meta's fairscale layers
do: column-parallel ``wq wk wv w1 w3 output`` along their rows, row-parallel ``wo w2`` and
the ``ParallelEmbedding`` along their columns; the norms are whole in every file and
``rope.freqs`` is a buffer this model recomputes."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from core.errors import InputError

from .llama import ModelArgs

SPLIT_DIM = {"wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "output": 0, "wo": 1, "w2": 1, "tok_embeddings": 1}


def is_meta_checkpoint(path: str | Path) -> bool:
    p = Path(path)
    return (p / "params.json").is_file() and any(p.glob("consolidated.*.pth"))


def meta_args(params: dict, vocab_size: int) -> ModelArgs:
    unsupported = sorted(k for k in ("n_kv_heads", "ffn_dim_multiplier") if params.get(k) is not None)
    if unsupported:
        raise InputError(f"params.json has {', '.join(unsupported)}: a LLaMA-2/3 checkpoint; this is LLaMA-1's "
                         f"architecture (no grouped-query attention, no FFN multiplier)")
    try:
        return ModelArgs(dim=params["dim"], n_layers=params["n_layers"], n_heads=params["n_heads"],
                         vocab_size=vocab_size, multiple_of=params.get("multiple_of", 256),
                         norm_eps=params.get("norm_eps", 1e-6), rope_theta=params.get("rope_theta", 10000.0),
                         max_seq_len=params.get("max_seq_len", 2048))
    except KeyError as e:
        raise InputError(f"params.json lacks {e}") from None


def load_meta(path: str | Path) -> tuple[dict, ModelArgs]:
    """The whole state dict (this model's names) and arguments of the Meta checkpoint in
    ``path``.  The shards are memory-mapped; each weight is concatenated once."""
    p = Path(path)
    files = sorted(p.glob("consolidated.*.pth"))
    if not files or not (p / "params.json").is_file():
        raise InputError(f"{p}: not a Meta LLaMA checkpoint (needs params.json and consolidated.*.pth)")
    params = json.loads((p / "params.json").read_text())
    try:
        shards = [torch.load(f, map_location="cpu", mmap=True, weights_only=True) for f in files]
    except Exception as e:
        raise InputError(f"{p}: unreadable checkpoint file ({type(e).__name__}: {e})") from None
    state = {}
    for key in shards[0]:
        if key == "rope.freqs":
            continue
        kind = key.split(".")[-2]
        parts = [s[key] for s in shards]
        state[key] = parts[0] if len(parts) == 1 or kind not in SPLIT_DIM else torch.cat(parts, dim=SPLIT_DIM[kind])
    vocab = params.get("vocab_size", -1)
    args = meta_args(params, vocab if vocab and vocab > 0 else state["tok_embeddings.weight"].shape[0])
    hidden = state["layers.0.feed_forward.w1.weight"].shape[0]
    if hidden != args.hidden_dim:
        raise InputError(f"{p}: feed-forward size {hidden}, but dim {args.dim} with multiple_of {args.multiple_of} "
                         f"gives {args.hidden_dim}")
    return state, args


def save_meta(state: dict, args: ModelArgs, out_dir: str | Path, shards: int = 1) -> None:
    """This model's weights in Meta's layout, split ``shards`` ways (the inverse of load_meta)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(shards):
        part = {}
        for key, t in state.items():
            kind = key.split(".")[-2]
            part[key] = t.chunk(shards, dim=SPLIT_DIM[kind])[i].clone() if shards > 1 and kind in SPLIT_DIM else t
        part["rope.freqs"] = 1.0 / (args.rope_theta ** (torch.arange(0, args.head_dim, 2).float() / args.head_dim))
        torch.save(part, out / f"consolidated.{i:02d}.pth")
    (out / "params.json").write_text(json.dumps({"dim": args.dim, "multiple_of": args.multiple_of,
                                                 "n_heads": args.n_heads, "n_layers": args.n_layers,
                                                 "norm_eps": args.norm_eps, "vocab_size": -1}))
