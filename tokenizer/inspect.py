"""`llama inspect` for token shards: counts, per-source tokens, first sequences decoded."""
from __future__ import annotations

import json
import textwrap
from collections import Counter
from core import fs


def _tokenizer_for(shard: str):
    from tokenizer import Tokenizer

    for d in (fs.dirname(shard), fs.dirname(fs.dirname(shard))):
        m = fs.join(d, "manifest.json")
        if fs.isfile(m):
            path = json.loads(fs.read_bytes(m)).get("tokenizer")
            if path and fs.isfile(path):
                return Tokenizer(path)
    return None


def describe_token_tables(tables, rows: int = 3, width: int = 300) -> str:
    files = [f for f, _ in tables]
    n_seq = sum(t.num_rows for _, t in tables)
    n_tok = sum(sum(t.column("length").to_pylist()) for _, t in tables)
    per_source = Counter()
    for _, t in tables:
        for srcs, starts, length in zip(t.column("sources").to_pylist(), t.column("doc_starts").to_pylist(),
                                        t.column("length").to_pylist()):
            bounds = list(starts[1:]) + [length]
            for s, a, b in zip(srcs, starts, bounds):
                per_source[s] += b - a
    tok = _tokenizer_for(str(files[0]))
    out = [f"{len(files)} token shard(s), {n_seq} sequences, {n_tok:,} tokens",
           f"  {files[0]}" + (f"  ... {files[-1]}" if len(files) > 1 else ""),
           "  tokens by source: " + ", ".join(f"{s}={n:,} ({n / max(n_tok, 1):.1%})"
                                              for s, n in per_source.most_common())]
    if tok is None:
        out.append("  (tokenizer not found from manifest.json: showing ids)")
    shown = 0
    for _, t in tables:
        for r in t.slice(0, rows - shown).to_pylist():
            out.append(f"--- sequence {shown}: {r['length']} tokens, {len(r['doc_ids'])} document piece(s): "
                       + ", ".join(f"{s}:{d}" for s, d in list(zip(r["sources"], r["doc_ids"]))[:4]))
            body = tok.decode(r["tokens"]) if tok else " ".join(map(str, r["tokens"][:80]))
            out.append(textwrap.indent(textwrap.fill(body[:width].replace("\n", " | "), 100), "    "))
            shown += 1
        if shown >= rows:
            break
    return "\n".join(out)
