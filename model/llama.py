"""LLaMA-1 (Touvron et al. 2023), as in Meta's reference ``model.py``.

Pre-normalisation with RMSNorm (eps 1e-6, computed in fp32), SwiGLU feed-forward with
hidden size ``int(2 * 4 * dim / 3)`` rounded up to ``multiple_of`` (256 for the paper's
sizes), rotary position embeddings (theta 10000) on queries and keys in Meta's
interleaved-pair layout, causal attention through ``scaled_dot_product_attention``, no
biases, untied input embedding and output projection.  ``model.hf`` converts to and from
HuggingFace's ``LlamaForCausalLM`` layout (which rotates halves, hence the q/k row
permutation).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelArgs:
    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    vocab_size: int = 32000
    multiple_of: int = 256
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_seq_len: int = 2048

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def hidden_dim(self) -> int:
        hidden = int(2 * (4 * self.dim) / 3)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)

    def to_dict(self) -> dict:
        return asdict(self)


# The paper's Table 2 (dim, heads, layers), plus small test/demo sizes.
CONFIGS = {
    "7B": ModelArgs(dim=4096, n_heads=32, n_layers=32),
    "13B": ModelArgs(dim=5120, n_heads=40, n_layers=40),
    "33B": ModelArgs(dim=6656, n_heads=52, n_layers=60),
    "65B": ModelArgs(dim=8192, n_heads=64, n_layers=80),
    "tiny": ModelArgs(dim=128, n_heads=4, n_layers=4, multiple_of=32, max_seq_len=512),
    "micro": ModelArgs(dim=64, n_heads=4, n_layers=2, multiple_of=16, max_seq_len=256),
}


def get_config(name: str, **overrides) -> ModelArgs:
    if name not in CONFIGS:
        from core.errors import InputError

        raise InputError(f"unknown model config {name!r}; choose from {', '.join(CONFIGS)}")
    return replace(CONFIGS[name], **overrides)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return out.type_as(x) * self.weight


def rope_cos_sin(head_dim: int, seq_len: int, theta: float, device=None):
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    angles = torch.outer(torch.arange(seq_len, device=device).float(), freqs)
    return angles.cos(), angles.sin()  # (seq, head_dim/2)


def apply_rope(x, cos, sin):
    """Rotate interleaved pairs (x[..., 2i], x[..., 2i+1]), as Meta's complex-number version."""
    x = x.float()
    x1, x2 = x[..., 0::2], x[..., 1::2]
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads, self.head_dim = args.n_heads, args.head_dim
        self.wq = nn.Linear(args.dim, args.dim, bias=False)
        self.wk = nn.Linear(args.dim, args.dim, bias=False)
        self.wv = nn.Linear(args.dim, args.dim, bias=False)
        self.wo = nn.Linear(args.dim, args.dim, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, self.n_heads, self.head_dim)
        k = self.wk(x).view(b, t, self.n_heads, self.head_dim)
        v = self.wv(x).view(b, t, self.n_heads, self.head_dim)
        q, k = apply_rope(q, cos, sin).type_as(v), apply_rope(k, cos, sin).type_as(v)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                             is_causal=True)
        return self.wo(out.transpose(1, 2).reshape(b, t, -1))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, args.hidden_dim)
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, x, cos, sin):
        h = x + self.attention(self.attention_norm(x), cos, sin)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    CHECKPOINTING = {False: 0, "none": 0, True: 1, "full": 1, "selective": 2}

    def __init__(self, args: ModelArgs, activation_checkpointing: bool | str = False):
        """``activation_checkpointing``: False/"none"; True/"full" (every layer's activations
        recomputed in the backward pass); "selective" (every second layer, torchtitan's
        layer-wise selective checkpointing: about half the activation memory for about half
        the recompute)."""
        super().__init__()
        self.args = args
        if activation_checkpointing not in self.CHECKPOINTING:
            raise ValueError(f"activation_checkpointing must be one of false, true, 'full', 'selective'; "
                             f"got {activation_checkpointing!r}")
        self.activation_checkpointing = activation_checkpointing
        self._recompute_every = self.CHECKPOINTING[activation_checkpointing]
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
        cos, sin = rope_cos_sin(args.head_dim, args.max_seq_len, args.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def init_weights(self, std: float = 0.02, seed: int | None = None) -> "Transformer":
        """N(0, std) weight matrices (the residual projections ``wo``/``w2`` scaled by
        1/sqrt(2 * n_layers), GPT-2 style), ones for the norms -- drawn in the same order from
        one generator, so a model built whole, on the meta device, or partitioned by ZeRO-3
        (``deepspeed.zero.Init``: each parameter gathered alone, drawn on rank 0, and
        scattered) starts from the same weights.  Also (re)computes the rotary tables, which a
        meta-device construction leaves empty."""
        from contextlib import nullcontext

        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        writer = True
        for name, p in self.named_parameters():
            ctx = nullcontext()
            if hasattr(p, "ds_id"):  # a ZeRO-3 partition: this rank holds 1/world of it
                import deepspeed
                import torch.distributed as dist

                ctx, writer = deepspeed.zero.GatheredParameters([p], modifier_rank=0), dist.get_rank() == 0
            with ctx, torch.no_grad():
                if not writer:
                    continue
                if p.dim() == 1:
                    p.fill_(1.0)
                else:
                    scale = std / math.sqrt(2 * self.args.n_layers) if name.endswith(("wo.weight", "w2.weight")) \
                        else std
                    if p.device.type == "cpu":  # in place: no temporary the size of the parameter
                        p.normal_(0.0, scale, generator=gen)
                    else:  # the same numbers, drawn by the CPU generator
                        p.copy_(torch.randn(p.shape, generator=gen) * scale)
        cos, sin = rope_cos_sin(self.args.head_dim, self.args.max_seq_len, self.args.rope_theta,
                                device=self.rope_cos.device)
        self.rope_cos, self.rope_sin = cos, sin
        return self

    def forward(self, tokens, targets=None):
        t = tokens.shape[1]
        if t > self.args.max_seq_len:
            raise ValueError(f"sequence of {t} tokens is longer than max_seq_len {self.args.max_seq_len}")
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        h = self.tok_embeddings(tokens)
        for i, layer in enumerate(self.layers):
            if self._recompute_every and self.training and i % self._recompute_every == 0:
                h = torch.utils.checkpoint.checkpoint(layer, h, cos, sin, use_reentrant=False)
            else:
                h = layer(h, cos, sin)
        logits = self.output(self.norm(h)).float()
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)


def count_parameters(args: ModelArgs) -> int:
    with torch.device("meta"):
        model = Transformer(args)
    return sum(p.numel() for p in model.parameters())


def flops_per_token(args: ModelArgs, seq_len: int) -> float:
    """Training FLOPs per token: 6N for the matmuls plus attention scores (PaLM appendix B)."""
    n = count_parameters(args) - args.vocab_size * args.dim  # embedding lookup is not a matmul
    return 6 * n + 12 * args.n_layers * args.dim * seq_len
