"""`llama inspect`: summary and sample rows of any Parquet shard (or a directory of them)."""
from __future__ import annotations

import json
import textwrap
from collections import Counter

from core import fs, output
from core.errors import InputError


def _files(target: str) -> list[str]:
    """The shards of a file or a step output (local or remote); an output that is not
    complete is said so, since its shards may be partial."""
    if fs.isfile(target):
        return [target]
    if not fs.isdir(target):
        raise InputError(f"{target}: no such file or directory")
    files = output.shard_files(target)
    if not files:
        raise InputError(f"{target}: no .parquet shards under this directory")
    if not output.is_complete(target):
        import logging

        logging.getLogger(__name__).warning("%s: no %s: the output is incomplete", target, output.SUCCESS)
    return files


def _rejected(target: str, reason: str | None):
    """The documents a step's filters dropped (``<out>/_rejected/``, kept with ``--rejected``),
    those of one ``reason`` when given, and the count of each step/reason."""
    import pyarrow as pa

    from pipelines.beam_utils import Rejects

    where = fs.join(target, Rejects.DIR)
    files = output.shard_files(where) if fs.isdir(where) else []
    if not files:
        raise InputError(f"{target}: no rejected documents kept; run the step again with --rejected")
    tables, reasons = [], Counter()
    for f in files:
        t = output.read_shard(f)
        rows = t.to_pylist()
        for r in rows:
            meta = dict(r["metadata"] or [])
            reasons[f"{meta.get('rejected_step')}/{meta.get('rejected_reason')}"] += 1
        if reason is not None:
            rows = [r for r in rows if dict(r["metadata"] or []).get("rejected_reason") == reason]
            t = pa.Table.from_pylist(rows, schema=t.schema)
        if t.num_rows:
            tables.append((f, t))
    if not tables:
        raise InputError(f"{target}: no document was rejected for {reason!r}; reasons: "
                         + ", ".join(f"{k}={n}" for k, n in reasons.most_common()))
    return [f for f, _ in tables], tables, reasons


def inspect(target: str, rows: int = 3, width: int = 300, as_json: bool = False, rejected: bool = False,
            reason: str | None = None) -> str:
    """Summary and sample rows; ``rejected``: of the documents the step dropped (``reason``:
    only those dropped for it)."""
    if reason is not None:
        rejected = True
    reasons = None
    if rejected:
        files, tables, reasons = _rejected(target, reason)
    else:
        files = _files(target)
        tables = [(f, output.read_shard(f)) for f in files]
    names = set(tables[0][1].schema.names)
    if "tokens" in names:
        from tokenizer.inspect import describe_token_tables

        return describe_token_tables(tables, rows=rows, width=width)
    if "text" not in names:
        raise InputError(f"{files[0]}: unknown shard schema (columns: {sorted(names)})")
    total = sum(t.num_rows for _, t in tables)
    size = sum(fs.size(f) for f in files)
    counts: dict[str, Counter] = {k: Counter() for k in ("source", "language", "bucket")}
    lengths, ppl = [], []
    samples = []
    for _, t in tables:
        cols = {k: t.column(k).to_pylist() for k in counts if k in t.schema.names}
        for k, vals in cols.items():
            counts[k].update(v or "-" for v in vals)
        lengths += [len(x or "") for x in t.column("text").to_pylist()]
        if "perplexity" in t.schema.names:
            ppl += [x for x in t.column("perplexity").to_pylist() if x is not None]
        if len(samples) < rows:
            samples += t.slice(0, rows - len(samples)).to_pylist()
    if as_json:
        return json.dumps({"files": [str(f) for f in files], "rows": total, "bytes": size,
                           **{k: dict(v) for k, v in counts.items()},
                           **({"rejected": dict(reasons)} if reasons is not None else {}),
                           "samples": samples}, default=str, indent=2)
    kind = "rejected documents" + (f" ({reason})" if reason else "") if rejected else "documents"
    out = [f"{len(files)} shard(s), {total} {kind}, {size / 1e6:.2f} MB on disk",
           f"  {files[0]}" + (f"  ... {files[-1]}" if len(files) > 1 else "")]
    if reasons is not None:
        out.append("  rejected  " + ", ".join(f"{k}={n}" for k, n in reasons.most_common()))
    for k, c in counts.items():
        if c and set(c) != {"-"}:  # skip a field no document has
            out.append(f"  {k:<9} " + ", ".join(f"{v}={n}" for v, n in c.most_common(12)))
    if lengths:
        lengths.sort()
        out.append(f"  chars     total={sum(lengths):,} median={lengths[len(lengths) // 2]:,} "
                   f"max={lengths[-1]:,}")
    if ppl:
        ppl.sort()
        out.append(f"  perplexity min={ppl[0]:.1f} median={ppl[len(ppl) // 2]:.1f} max={ppl[-1]:.1f}")
    for i, r in enumerate(samples):
        score, pp = r.get("lang_score"), r.get("perplexity")
        out.append(f"--- row {i}: id={r['id']} source={r.get('source')} lang={r.get('language') or '-'}"
                   + (f" score={score:.3f}" if score is not None else "")
                   + (f" ppl={pp:.1f}" if pp is not None else "")
                   + (f" bucket={r['bucket']}" if r.get("bucket") else ""))
        if r.get("url"):
            out.append(f"    url: {r['url']}")
        meta = dict(r.get("metadata") or [])
        if meta:
            out.append("    meta: " + ", ".join(f"{k}={v}" for k, v in list(meta.items())[:8]))
        text = (r["text"] or "")[:width].replace("\n", " | ")
        out.append(textwrap.indent(textwrap.fill(text, 100), "    "))
    return "\n".join(out)
