"""Tokenizer commands: train-tokenizer and tokenize (the token shards)."""
from __future__ import annotations

from core import paths
from core.errors import InputError
from core.options import fraction
from pipelines import registry

from .common import add_runner, dry, report


def cmd_train_tokenizer(a, extra):
    from pipelines.tokenize import train_tokenizer_sampled

    inputs = a.inputs or [str(paths.out_dir() / s.out_dir) for s in registry.SOURCES]
    model = train_tokenizer_sampled(inputs, a.out, vocab_size=a.vocab_size, sample_lines=a.sample_lines,
                                    force=a.force, runner=a.runner, beam_args=extra)
    from tokenizer import Tokenizer

    tok = Tokenizer(model)
    print(f"tokenizer: {model} ({tok.vocab_size} pieces)")
    print("  'In 1984, 2,500 people' ->", tok.pieces("In 1984, 2,500 people"))
    return 0


def cmd_tokenize(a, beam_args):
    from pipelines import tokenize

    mixture = tokenize.load_mixture(a.mixture)
    if a.only:
        unknown = set(a.only) - set(mixture)
        if unknown:
            raise InputError(f"--only: unknown source(s) {sorted(unknown)}; known: {sorted(mixture)}")
        mixture = {k: v for k, v in mixture.items() if k in a.only}
    sources = tokenize.source_dirs(a.root, mixture)
    m = tokenize.run(sources, a.tokenizer, a.out, mixture, seq_len=a.seq_len, seed=a.seed,
                     total_tokens=a.total_tokens, shard_tokens=a.shard_tokens, runner=a.runner,
                     beam_args=beam_args, force=a.force, dry_run=dry(a), val_fraction=a.val_fraction)
    if m is None or m.get("dry_run"):
        return report(m, a.out)
    print(f"{m['sequences']} sequences, {m['tokens']:,} tokens in {len(m['shards'])} shard(s) under {a.out}")
    print(f"  {'source':<14} {'target':>7} {'achieved':>9} {'epochs':>7} {'tokens':>9}")
    for s, v in m["sources"].items():
        print(f"  {s:<14} {v['weight_target']:>7.3f} {v['weight_achieved']:>9.3f} "
              f"{v['epochs_achieved']:>7.3f} {v['tokens']:>9,}")
    v = m.get("val", {})
    print(f"  held out: {v.get('documents', 0):,} documents, {v.get('sequences', 0)} sequences, "
          f"{v.get('tokens', 0):,} tokens in {a.out}/val/ (validation only)")
    print(f"inspect with: llama inspect {a.out}")
    return 0




def add_commands(sub) -> None:
    out = paths.out_dir()
    p = sub.add_parser("train-tokenizer", help="SentencePiece BPE with LLaMA's trainer spec")
    p.add_argument("inputs", nargs="*", help="document shard dirs (default: every source under out/)")
    p.add_argument("--out", default=str(out / "tokenizer"))
    p.add_argument("--vocab-size", type=int, default=32000)
    p.add_argument("--sample-lines", type=int, default=2_000_000,
                   help="lines sampled (inside a Beam pipeline) for SentencePiece: input_sentence_size")
    p.add_argument("--force", action="store_true")
    p.add_argument("--runner", default="DirectRunner", help="Beam runner of the sampling pipeline")
    p.set_defaults(fn=cmd_train_tokenizer)

    p = sub.add_parser("tokenize", help="token shards with the paper's mixture, packed to --seq-len")
    p.add_argument("--root", default=str(out), help="where the source outputs are")
    p.add_argument("--mixture", default=None,
                   help="JSON {\"sources\": {name: {\"weight\", \"epochs\"[, \"dir\"]}}} overriding the "
                        "default mixture, LLaMA's Table 1 (pipelines/registry.py)")
    p.add_argument("--only", nargs="+", help="use only these sources of the mixture")
    p.add_argument("--tokenizer", default=str(out / "tokenizer" / "tokenizer.model"))
    p.add_argument("--out", default=str(out / "tokens"))
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-tokens", type=int, default=None, help="cap on the mixture's total tokens")
    p.add_argument("--shard-tokens", type=int, default=1 << 24, help="tokens per shard (target)")
    p.add_argument("--val-fraction", type=fraction, default=0.01,
                   help="documents held out for validation into <out>/val/ (never trained on)")
    add_runner(p, inputs=False)
    p.set_defaults(fn=cmd_tokenize)

