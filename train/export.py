"""Weights in and out: ``llama export-hf``, ``llama import-meta`` and what ``llama eval`` reads.

A *weights path* is any of
- a training run (``<run_dir>``, its ``checkpoints/`` or one ``checkpoints/step<N>/``): the
  fp32 weights are gathered from DeepSpeed's files by DeepSpeed's own ``zero_to_fp32``
  (every ZeRO stage: stage 3's partitions and stage 1/2's flat fp32 groups), offline in one
  process; the model's shape comes from the run's ``config.json``, the tokenizer from the
  token shards' manifest;
- a Meta release (``params.json`` + ``consolidated.NN.pth``, model-parallel files merged);
- what ``llama import-meta`` wrote (``model_args.json`` + ``model.safetensors``).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from core import fs
from core.errors import InputError

log = logging.getLogger(__name__)
WEIGHTS = "model.safetensors"
ARGS = "model_args.json"


def _run_checkpoint(p: Path) -> tuple[Path, str] | None:
    """(checkpoint directory, tag) when ``p`` is a run, its checkpoints or one tag."""
    from .checkpoint import STEP_TAG, resume_tag

    if (p / "checkpoints").is_dir():
        p = p / "checkpoints"
    if (p / "latest").is_file():
        return p, resume_tag(p)
    if STEP_TAG.match(p.name) and p.is_dir():
        return p.parent, p.name
    return None


def _run_args(ckpt_dir: Path):
    from model.llama import ModelArgs, get_config

    config = ckpt_dir.parent / "config.json"
    if not config.is_file():
        raise InputError(f"{config}: the run's config.json is missing (the trainer writes it beside checkpoints/)")
    cfg = json.loads(config.read_text())
    if "model_args" in cfg:
        return ModelArgs(**cfg["model_args"]), cfg
    from .data import token_manifest  # a run from before model_args was recorded

    return get_config(cfg["model"], vocab_size=token_manifest(cfg["data"])["vocab_size"],
                      max_seq_len=max(cfg["seq_len"], 2), **cfg.get("model_overrides", {})), cfg


def _zero_state(ckpt_dir: Path, tag: str) -> dict:
    import torch

    tag_dir = ckpt_dir / tag
    if not any(tag_dir.glob("*optim_states.pt")):  # ZeRO stage 0: the module is whole in the model file
        files = sorted(tag_dir.glob("mp_rank_*_model_states.pt"))
        if not files:
            raise InputError(f"{tag_dir}: no DeepSpeed model files")
        return {k: v.float() for k, v in torch.load(files[0], map_location="cpu", weights_only=False)["module"].items()}
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    return get_fp32_state_dict_from_zero_checkpoint(str(ckpt_dir), tag=tag)


def load_weights(path: str | Path) -> tuple[dict, object, str | None]:
    """(state dict in this model's names, ModelArgs, tokenizer model path or None)."""
    from model.llama import ModelArgs
    from model.meta import is_meta_checkpoint, load_meta

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such checkpoint")
    if (p / ARGS).is_file() and (p / WEIGHTS).is_file():
        from safetensors.torch import load_file

        meta = json.loads((p / ARGS).read_text())
        tok = p / "tokenizer.model"
        return load_file(str(p / WEIGHTS)), ModelArgs(**meta["model_args"]), str(tok) if tok.is_file() else None
    if is_meta_checkpoint(p):
        state, args = load_meta(p)
        return state, args, _meta_tokenizer(p)
    found = _run_checkpoint(p)
    if found is None:
        raise InputError(f"{p}: not a training run, a checkpoint, a Meta checkpoint (params.json + "
                         f"consolidated.*.pth) or an imported model ({ARGS} + {WEIGHTS})")
    ckpt_dir, tag = found
    args, cfg = _run_args(ckpt_dir)
    state = _zero_state(ckpt_dir, tag)
    missing = [k for k in _expected(args) if k not in state]
    if missing:
        raise InputError(f"{ckpt_dir / tag}: the checkpoint lacks {missing[0]} (and {len(missing) - 1} more): "
                         f"not this run's model")
    tok = None
    try:
        from .data import token_manifest

        tok = token_manifest(cfg["data"]).get("tokenizer")
    except InputError:
        pass
    log.info("weights of %s/%s (%s)", ckpt_dir, tag, args)
    return state, args, tok


def _meta_tokenizer(release: Path) -> str | None:
    """Meta's ``tokenizer.model``: beside the weights or one level up (where Meta puts it)."""
    return next((str(t) for t in (release / "tokenizer.model", release.parent / "tokenizer.model") if t.is_file()),
                None)


def _expected(args) -> list[str]:
    import torch

    from model.llama import Transformer

    with torch.device("meta"):
        return list(Transformer(args).state_dict())


def export_hf(path: str | Path, out_dir: str | Path, tokenizer: str | None = None, dtype: str = "float32",
              max_shard_bytes: int = 5 * 2**30) -> list[str]:
    """``llama export-hf``: a HuggingFace LLaMA directory (safetensors, config, tokenizer)."""
    from model.hf import save_hf
    from tokenizer.hf import write_hf_tokenizer

    state, args, tok = load_weights(path)
    tok = tokenizer or tok
    if not tok or not fs.isfile(tok):
        raise InputError(f"no tokenizer model for {path} ({tok or 'none recorded'}): pass --tokenizer "
                         f"out/tokenizer/tokenizer.model")
    files = save_hf(state, args, out_dir, dtype=dtype, max_shard_bytes=max_shard_bytes)
    return files + write_hf_tokenizer(tok, out_dir, max_length=args.max_seq_len)


def import_meta(path: str | Path, out_dir: str | Path, tokenizer: str | None = None) -> list[str]:
    """``llama import-meta``: Meta's checkpoint as this project's weights (``model.safetensors``
    + ``model_args.json``, and ``tokenizer.model`` when one is beside it or given), which
    ``export-hf``, ``eval`` and the trainer's ``init_from`` read."""
    from model.meta import load_meta
    from safetensors.torch import save_file

    state, args = load_meta(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / WEIGHTS), metadata={"format": "pt"})
    (out / ARGS).write_text(json.dumps({"model_args": args.to_dict(), "source": str(path)}, indent=2))
    files = [WEIGHTS, ARGS]
    tok = tokenizer or _meta_tokenizer(Path(path))
    if tok:
        fs.copy_file(tok, str(out / "tokenizer.model"))
        files.append("tokenizer.model")
    return files
