"""Conversion between this model's (Meta) state dict and HuggingFace ``LlamaForCausalLM``.

Meta rotates interleaved pairs of each head's q/k features; HF rotates the two halves.
HF's ``convert_llama_weights_to_hf.py`` therefore permutes the rows of ``wq``/``wk``
(``permute``); ``unpermute`` is its inverse."""
from __future__ import annotations

import torch

from .llama import ModelArgs


def permute(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    dim1, dim2 = w.shape
    return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def unpermute(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    dim1, dim2 = w.shape
    return w.view(n_heads, 2, dim1 // n_heads // 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def hf_config(args: ModelArgs):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=args.vocab_size, hidden_size=args.dim, intermediate_size=args.hidden_dim,
                       num_hidden_layers=args.n_layers, num_attention_heads=args.n_heads,
                       num_key_value_heads=args.n_heads, rms_norm_eps=args.norm_eps,
                       max_position_embeddings=args.max_seq_len, tie_word_embeddings=False,
                       rope_parameters={"rope_type": "default", "rope_theta": args.rope_theta},
                       bos_token_id=1, eos_token_id=2, pad_token_id=None)


# (this model's name, HF name, q/k permutation) -- one table for both directions
_TOP = [("tok_embeddings.weight", "model.embed_tokens.weight", False),
        ("norm.weight", "model.norm.weight", False), ("output.weight", "lm_head.weight", False)]
_LAYER = [("attention.wq.weight", "self_attn.q_proj.weight", True),
          ("attention.wk.weight", "self_attn.k_proj.weight", True),
          ("attention.wv.weight", "self_attn.v_proj.weight", False),
          ("attention.wo.weight", "self_attn.o_proj.weight", False),
          ("feed_forward.w1.weight", "mlp.gate_proj.weight", False),
          ("feed_forward.w2.weight", "mlp.down_proj.weight", False),
          ("feed_forward.w3.weight", "mlp.up_proj.weight", False),
          ("attention_norm.weight", "input_layernorm.weight", False),
          ("ffn_norm.weight", "post_attention_layernorm.weight", False)]


def _names(args: ModelArgs):
    yield from _TOP
    for i in range(args.n_layers):
        for ours, hf, qk in _LAYER:
            yield f"layers.{i}.{ours}", f"model.layers.{i}.{hf}", qk


def to_hf(state: dict, args: ModelArgs) -> dict:
    return {hf: permute(state[ours], args.n_heads) if qk else state[ours] for ours, hf, qk in _names(args)}


def from_hf(hf_state: dict, args: ModelArgs) -> dict:
    return {ours: unpermute(hf_state[hf], args.n_heads) if qk else hf_state[hf] for ours, hf, qk in _names(args)}


def save_hf(state: dict, args: ModelArgs, out_dir, dtype: str = "float32",
            max_shard_bytes: int = 5 * 2**30) -> list[str]:
    """Write this model's ``state`` (Meta names) as a HuggingFace LLaMA checkpoint: config.json,
    generation_config.json and safetensors shards of at most ``max_shard_bytes`` (with
    ``model.safetensors.index.json`` when there is more than one), one tensor converted at a
    time.  Returns the files written."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shards, current, size = [], {}, 0
    for ours, hf, qk in _names(args):
        t = state[ours]
        t = (permute(t, args.n_heads) if qk else t).to(torch_dtype).contiguous()
        if current and size + t.numel() * t.element_size() > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[hf] = t
        size += t.numel() * t.element_size()
    shards.append(current)
    names = ["model.safetensors"] if len(shards) == 1 else \
        [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map, total = {}, 0
    for name, shard in zip(names, shards):
        save_file(shard, str(out / name), metadata={"format": "pt"})
        for k, t in shard.items():
            weight_map[k] = name
            total += t.numel() * t.element_size()
    written = list(names)
    if len(shards) > 1:
        (out / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
        written.append("model.safetensors.index.json")
    config = hf_config(args)
    config.dtype = dtype
    config.save_pretrained(str(out))
    (out / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}, indent=2))
    return written + ["config.json", "generation_config.json"]


def export_hf(model, out_dir) -> None:
    """Write a HuggingFace checkpoint directory (config.json + safetensors) of ``model``."""
    save_hf({k: v.detach() for k, v in model.state_dict().items()}, model.args, out_dir)


def import_hf(path_or_model, args: ModelArgs | None = None):
    from transformers import LlamaForCausalLM

    from .llama import Transformer

    if hasattr(path_or_model, "state_dict"):
        hf = path_or_model
    else:
        hf = LlamaForCausalLM.from_pretrained(str(path_or_model))
    c = hf.config
    if args is None:
        for multiple_of in (256, 128, 64, 32, 16, 8, 4, 2, 1):
            args = ModelArgs(dim=c.hidden_size, n_layers=c.num_hidden_layers, n_heads=c.num_attention_heads,
                             vocab_size=c.vocab_size, norm_eps=c.rms_norm_eps,
                             rope_theta=c.rope_parameters["rope_theta"], max_seq_len=c.max_position_embeddings,
                             multiple_of=multiple_of)
            if args.hidden_dim == c.intermediate_size:
                break
        else:
            raise ValueError(f"intermediate_size {c.intermediate_size} is not LLaMA's SwiGLU size for "
                             f"dim {c.hidden_size} with any multiple_of")
    model = Transformer(args)
    model.load_state_dict(from_hf(hf.state_dict(), args), strict=True)
    return model
