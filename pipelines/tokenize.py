"""Token shards: documents of all sources -> tokens -> the paper's mixture -> packed sequences.

Per document: ``bos + tokens + eos``.  The mixture follows LLaMA's Table 1: source ``s``
contributes the fraction ``w_s`` of the tokens, drawing at most ``e_s`` epochs of its data.
With source sizes ``N_s`` (tokens), the total is ``T = min_s N_s * e_s / w_s`` (the largest
total no source needs more than its epochs for), or ``--total-tokens`` if smaller.  Source
``s`` then needs ``c_s = w_s * T / N_s`` copies of its data.  The sampling unit is a
piece of a document of at most ``unit_tokens`` tokens (default ``seq_len``; a
200k-token book sampled whole could never give 4.5% of a small total): every unit is
taken ``floor(c_s)`` times plus once more with probability ``frac(c_s)``.  All randomness is a
hash of (seed, document id, copy), so the same seed gives identical shards whatever the
runner's bundling.

Packing: each document copy goes to shard ``hash % n_shards``; inside a shard the copies are
ordered by their hash and concatenated into ``seq_len``-token rows.  No token is dropped
or padded: the last row of a shard may be shorter (``length`` column).  Rows carry the
ids and sources of the documents they contain and where each starts.

Held-out split: before any sampling, a document goes to validation with probability
``val_fraction`` (a hash of seed, source and document id: the same documents whatever the
runner), and none of it is trained on.  Held-out documents are taken once each (no mixture
copies: the validation loss is that of unseen documents as the sources hold them) and packed
the same way into ``val/part-NNNNN.parquet``.

Output: ``part-NNNNN.parquet`` (columns ``tokens: list<int32>, length, doc_ids,
sources, doc_starts``), ``val/part-NNNNN.parquet`` and ``manifest.json`` (shards, sequences,
tokens per source, target vs achieved mixture and epochs, the held-out split).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from core import fs, output
from core.errors import InputError
from core.schema import TOKEN_SCHEMA

from . import beam_utils

log = logging.getLogger(__name__)


def load_mixture(path: str | None = None) -> dict:
    """The sampling mixture, weights normalised: LLaMA's Table 1 from the source registry, or a
    JSON file ``{"sources": {name: {"weight": w, "epochs": e[, "dir": d]}}}`` that overrides it for
    the sources it names (each a registered source; ``dir`` defaults to the source's output)."""
    from . import registry

    if path is None:
        sources = registry.default_mixture()
    else:
        try:
            cfg = fs.read_json(str(path))
            sources = {}
            for name, s in cfg["sources"].items():
                if name not in registry.BY_NAME:
                    raise ValueError(f"{name!r} is not a registered source ({', '.join(registry.names())})")
                if not (s["weight"] > 0 and s["epochs"] > 0):
                    raise ValueError(f"{name}: weight and epochs must be > 0")
                sources[name] = {"weight": s["weight"], "epochs": s["epochs"],
                                 "dir": s.get("dir", registry.get(name).out_dir)}
            if not sources:
                raise ValueError("no source in it")
        except OSError:
            raise InputError(f"{path}: mixture config not found") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(f"{path}: bad mixture config ({type(e).__name__}: {e})") from None
    total = sum(s["weight"] for s in sources.values())
    return {k: dict(v, weight=v["weight"] / total) for k, v in sources.items()}


def _u64(*parts) -> int:
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big")


def plan(sizes: dict[str, int], mixture: dict, total_tokens: int | None = None) -> dict:
    """Copies per source for the target mixture (see the module docstring)."""
    present = {s: n for s, n in sizes.items() if n > 0 and s in mixture}
    if not present:
        return {"total": 0, "copies": {}}
    weight = sum(mixture[s]["weight"] for s in present)
    w = {s: mixture[s]["weight"] / weight for s in present}  # renormalised over present sources
    total = min(present[s] * mixture[s]["epochs"] / w[s] for s in present)
    if total_tokens:
        total = min(total, total_tokens)
    return {"total": total, "copies": {s: w[s] * total / present[s] for s in present}}


VAL = "val"  # the held-out split's output and subdirectory


def held_out(seed: int, source: str, doc_id: str, val_fraction: float) -> bool:
    return val_fraction > 0 and _u64(seed, "heldout", source, doc_id) / 2**64 < val_fraction


class Tokenize(beam.DoFn):
    """(source, row) -> (source, unit id, int32 tokens) for each unit of the document; the
    units of a held-out document go to the ``val`` output."""

    def __init__(self, model_path: str, unit_tokens: int, val_fraction: float = 0.0, seed: int = 0):
        self.model_path, self.unit_tokens = model_path, unit_tokens
        self.val_fraction, self.seed = val_fraction, seed

    def setup(self):
        from tokenizer import Tokenizer

        self.tok = Tokenizer(self.model_path)  # staged locally when remote

    def process(self, item):
        source, row = item
        ids = np.asarray(self.tok.encode(row["text"] or "", bos=True, eos=True), dtype=np.int32)
        val = held_out(self.seed, source, row["id"], self.val_fraction)
        kind = "val_" if val else ""
        Metrics.counter("tokenize", f"{source}_{kind}documents").inc()
        Metrics.counter("tokenize", f"{source}_{kind}tokens").inc(len(ids))
        for j, start in enumerate(range(0, len(ids), self.unit_tokens)):
            unit = (source, f"{row['id']}#{j}", ids[start:start + self.unit_tokens])
            yield beam.pvalue.TaggedOutput(VAL, unit) if val else unit


class HeldOut(beam.DoFn):
    """A held-out unit -> (val shard, (order key, source, unit id, tokens)), once each."""

    def __init__(self, seed, shard_tokens):
        self.seed, self.shard_tokens = seed, shard_tokens

    def process(self, item, sizes):
        source, doc_id, ids = item
        n_shards = max(1, math.ceil(sizes.get(VAL, 0) / self.shard_tokens))
        key = _u64(self.seed, "val-order", source, doc_id)
        yield key % n_shards, (key, source, doc_id, ids)


class Sample(beam.DoFn):
    def __init__(self, mixture, seed, total_tokens, shard_tokens):
        self.mixture, self.seed, self.total_tokens, self.shard_tokens = mixture, seed, total_tokens, shard_tokens
        self._plan = None

    def process(self, item, sizes):
        source, doc_id, ids = item
        if self._plan is None:  # the sizes side input is one fixed dict (global window)
            p = plan(sizes, self.mixture, self.total_tokens)
            self._plan = (p["copies"], max(1, math.ceil(p["total"] / self.shard_tokens)))
        all_copies, n_shards = self._plan
        c = all_copies.get(source, 0.0)
        copies = int(c) + (1 if (_u64(self.seed, "sample", source, doc_id) / 2**64) < c - int(c) else 0)
        for k in range(copies):
            key = _u64(self.seed, "order", source, doc_id, k)
            Metrics.counter("sample", f"{source}_tokens").inc(len(ids))
            yield key % n_shards, (key, source, doc_id, ids)


class PackShard(beam.DoFn):
    """(shard, document copies) -> (``part-NNNNN``, packed row) records for ``WriteParquetFiles``."""

    def __init__(self, seq_len, counters: str = "pack"):
        self.seq_len, self.counters = seq_len, counters

    def process(self, kv):
        shard, docs = kv
        docs = sorted(docs, key=lambda d: (d[0], d[2]))
        rows, buf, ids, srcs, starts, fill = [], [], [], [], [], 0
        for _, source, doc_id, tokens in docs:
            pos = 0
            while pos < len(tokens):
                take = min(self.seq_len - fill, len(tokens) - pos)
                if pos == 0 or not ids or ids[-1] != doc_id:
                    ids.append(doc_id)
                    srcs.append(source)
                    starts.append(fill)
                buf.append(tokens[pos:pos + take])
                fill += take
                pos += take
                if fill == self.seq_len:
                    rows.append(self._row(buf, ids, srcs, starts))
                    buf, ids, srcs, starts, fill = [], [], [], [], 0
        if fill:
            rows.append(self._row(buf, ids, srcs, starts))
        Metrics.counter(self.counters, "sequences").inc(len(rows))
        Metrics.counter(self.counters, "tokens").inc(sum(r["length"] for r in rows))
        name = f"part-{shard:05d}"
        for r in rows:
            yield name, beam_utils.pack(r)

    @staticmethod
    def _row(buf, ids, srcs, starts):
        tokens = np.concatenate(buf).astype(np.int32)
        return {"tokens": tokens.tolist(), "length": len(tokens), "doc_ids": list(ids),
                "sources": list(srcs), "doc_starts": list(starts)}


def _read_source(p, name, directory):
    # a shard per work unit, through FileSystems (gs:// too); a damaged shard is a one-line error
    return (p | f"Read_{name}" >> beam_utils.ReadShards([directory], ["id", "text"], step=f"read_{name}")
              | f"Tag_{name}" >> beam.Map(lambda r, s=name: (s, r)))


def build(p, sources: dict, tokenizer_model, out_dir, mixture, seq_len, seed, total_tokens, shard_tokens,
          unit_tokens=None, val_fraction=0.0):
    tagged = [_read_source(p, name, d) for name, d in sorted(sources.items())]
    split = (tagged | "All" >> beam.Flatten()
                    | "Tokenize" >> beam.ParDo(Tokenize(tokenizer_model, unit_tokens or seq_len, val_fraction, seed))
                                        .with_outputs(VAL, main="train"))
    docs, val = split.train, split[VAL]
    # tokens per source, and of the held-out split (one number per key: never grows with the corpus)
    sizes = ((docs | "Sizes" >> beam.Map(lambda d: (d[0], len(d[2]))),
              val | "ValSizes" >> beam.Map(lambda d: (VAL, len(d[2]))))
             | "AllSizes" >> beam.Flatten()
             | "SumPerSource" >> beam.CombinePerKey(sum))
    train_rows = (docs | "Sample" >> beam.ParDo(Sample(mixture, seed, total_tokens, shard_tokens),
                                                sizes=beam.pvalue.AsDict(sizes))
                       | "ByShard" >> beam.GroupByKey()
                       | "Pack" >> beam.ParDo(PackShard(seq_len)).with_output_types(beam_utils.Packed))
    val_rows = (val | "HeldOut" >> beam.ParDo(HeldOut(seed, shard_tokens), sizes=beam.pvalue.AsDict(sizes))
                    | "ValByShard" >> beam.GroupByKey()
                    | "PackVal" >> beam.ParDo(PackShard(seq_len, "pack_val"))
                                         .with_output_types(beam_utils.Packed))
    val_rows | "WriteVal" >> beam_utils.WriteParquetFiles(fs.join(out_dir, VAL), TOKEN_SCHEMA)
    return train_rows | "Write" >> beam_utils.WriteParquetFiles(out_dir, TOKEN_SCHEMA)


def source_dirs(root: str, mixture: dict, overrides: dict | None = None) -> dict[str, str]:
    dirs = {}
    for name, s in mixture.items():
        d = str((overrides or {}).get(name) or fs.join(str(root), s["dir"]))
        if not output.is_complete(d):
            raise InputError(f"{d}: {name} documents missing or incomplete (no {output.SUCCESS}); "
                             f"run that source's pipeline first, or drop it from the mixture")
        dirs[name] = d
    return dirs


def run(sources: dict[str, str], tokenizer_model: str, out_dir: str, mixture: dict, seq_len: int = 2048,
        seed: int = 0, total_tokens: int | None = None, shard_tokens: int = 1 << 24,
        unit_tokens: int | None = None, runner: str = "DirectRunner", beam_args=None,
        force: bool = False, dry_run: bool = False, val_fraction: float = 0.01) -> dict | None:
    from tokenizer import Tokenizer

    if seq_len < 2:
        raise InputError(f"--seq-len must be at least 2, got {seq_len}")
    if not 0 <= val_fraction < 1:
        raise InputError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    tok = Tokenizer(tokenizer_model)

    def write_manifest(stats):  # before _SUCCESS: a complete output always has its manifest
        fs.delete(fs.join(out_dir, VAL, output.TMP))  # the held-out split's writer's temporary directory
        fs.write_json(fs.join(out_dir, "manifest.json"), make_manifest(stats, mixture, out_dir))

    stats = beam_utils.run_step(
        lambda p: build(p, sources, tokenizer_model, out_dir, mixture, seq_len, seed, total_tokens, shard_tokens,
                        unit_tokens, val_fraction),
        out_dir, runner, beam_args, force, dry_run=dry_run, before_complete=write_manifest,
        extra={"sources": sources, "seq_len": seq_len, "seed": seed, "tokenizer": str(tokenizer_model),
               "val_fraction": val_fraction,
               "mixture": mixture, "total_tokens_cap": total_tokens,
               "vocab_size": tok.vocab_size})
    if stats is None or dry_run:
        return stats
    return fs.read_json(fs.join(out_dir, "manifest.json"))


def make_manifest(stats: dict, mixture: dict, out_dir: str) -> dict:
    c = stats["counters"]
    tok, smp = c.get("tokenize", {}), c.get("sample", {})
    sizes = {s: tok.get(f"{s}_tokens", 0) for s in mixture}
    total_sampled = sum(smp.values()) or 1
    per_source = {}
    for s, m in mixture.items():
        n = sizes[s]
        got = smp.get(f"{s}_tokens", 0)
        per_source[s] = {"documents": tok.get(f"{s}_documents", 0), "source_tokens": n, "tokens": got,
                         "weight_target": round(m["weight"], 4), "weight_achieved": round(got / total_sampled, 4),
                         "epochs_target": m["epochs"], "epochs_achieved": round(got / n, 3) if n else 0.0}
    shards = {name: n for name, n in stats["shards"].items() if not name.startswith(f"{VAL}/")}
    pv = c.get("pack_val", {})
    val = {"fraction": stats.get("val_fraction", 0.0),
           "documents": sum(tok.get(f"{s}_val_documents", 0) for s in mixture),
           "sequences": pv.get("sequences", 0), "tokens": pv.get("tokens", 0),
           "shards": {name: n for name, n in stats["shards"].items() if name.startswith(f"{VAL}/")}}
    return {"seq_len": stats["seq_len"], "seed": stats["seed"], "tokenizer": stats["tokenizer"],
            "vocab_size": stats["vocab_size"], "sequences": c.get("pack", {}).get("sequences", 0),
            "tokens": c.get("pack", {}).get("tokens", 0), "shards": shards, "sources": per_source,
            "val": val, "seconds": stats["seconds"]}


def train_tokenizer_sampled(inputs: list[str], out_dir: str, vocab_size: int = 32000,
                            sample_lines: int = 2_000_000, seed: int = 0, force: bool = False,
                            runner: str = "DirectRunner", beam_args=None) -> str:
    """``llama train-tokenizer``: the shards are read by a Beam pipeline that draws a seeded,
    bounded sample of ``sample_lines`` lines (``beam_utils.SeededSample``); SentencePiece
    then trains on that sample in this process.  No process reads every shard."""
    from tokenizer.train import shard_texts, text_lines, train_tokenizer

    def sample(files, max_bytes):  # `files` were checked; the pipeline lists them itself
        def build(p):
            texts = (p | "Shards" >> beam_utils.ExpandInputs([str(i) for i in inputs], (".parquet",))
                       | "Read" >> beam.FlatMap(shard_texts))
            return {"lines": texts | "Lines" >> beam.FlatMap(text_lines, max_bytes)}

        return beam_utils.draw_samples(build, sample_lines, out_dir, runner, beam_args, seed)["lines"]

    return train_tokenizer(inputs, out_dir, vocab_size=vocab_size, input_sentence_size=sample_lines, seed=seed,
                           force=force, sample=sample)

