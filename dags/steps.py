"""The steps of the whole system as plain functions of one parameter dict.

The Airflow DAG (``dags/llama_pretraining.py``) wraps each in a task; they can also be
called directly.  Every step is idempotent: its output directory gets a ``_SUCCESS``
marker last, a complete step is skipped, and a step killed half-way leaves no marker
and is redone from a clean directory (``pipelines.beam_utils``).  Training resumes from
its last checkpoint.
"""
from __future__ import annotations

import json

from core import fs, output
from core import paths

from pipelines import registry

SOURCES = tuple(registry.names())

DEFAULT_PARAMS = {
    "data": str(paths.shared_data()), "out": str(paths.out_dir()), "lm_dir": None,
    "runner": "DirectRunner", "project": None, "region": None, "temp_location": None,
    "sources": list(SOURCES), "vocab_size": 8000, "seq_len": 512, "seed": 0,
    "train_config": str(paths.REPO / "configs" / "train_tiny.json"), "train_steps": 60, "nproc": 2,
    "model": None,
    # fastText's epochs and learning rate for the quality classifier: RedPajama's are the defaults
    # (5, 0.1) on ~600k lines; the bundled sample's ~100 lines learn nothing in 5 epochs
    "quality_epoch": 50, "quality_lr": 0.5,
    # keep the documents the filters drop in <step out>/_rejected/ (llama inspect --rejected)
    "rejected": True,
}


class Skip(Exception):
    """The step does not apply to this run (e.g. its source was not selected)."""


def params_with_defaults(p: dict | None) -> dict:
    out = dict(DEFAULT_PARAMS)
    out.update({k: v for k, v in (p or {}).items() if v is not None})
    unknown = set(out["sources"]) - set(SOURCES)
    if unknown:
        from core.errors import InputError

        raise InputError(f"unknown source(s) {sorted(unknown)}; choose from {', '.join(SOURCES)}")
    return out


def beam_args(p: dict) -> list[str]:
    return [f"--{k}={p[k]}" for k in ("project", "region", "temp_location") if p.get(k)]


def _out(p, *parts) -> str:
    return fs.join(str(p["out"]), *parts)


def _data(p, *parts) -> str:
    return fs.join(str(p["data"]), *parts)


def _selected(p, source):
    if source not in p["sources"]:
        raise Skip(f"{source} not selected")


def _summary(stats, out_dir):
    if stats is None:
        return {"skipped": "complete", "out": out_dir}
    return {"documents": sum(stats.get("shards", {}).values()), "out": out_dir,
            "seconds": stats.get("seconds")}


def lm(p):
    _selected(p, "common_crawl")
    from pipelines.lm import train_lm

    d = p["lm_dir"] or _out(p, "lm")
    already = output.is_complete(d)
    train_lm(fs.glob(_data(p, "wikipedia", "enwiki-*")), d, runner=p["runner"], beam_args=beam_args(p))
    return {"skipped": "complete", "out": d} if already else {"out": d}


def ccnet(p):
    _selected(p, "common_crawl")
    from pipelines import ccnet as m

    cfg = m.CCNetConfig([_data(p, "cc")], _out(p, "ccnet"), p["lm_dir"] or _out(p, "lm"),
                        _data(p, "models", "fasttext-lid.176", "lid.176.ftz"),
                        runner=p["runner"], beam_args=beam_args(p), rejected=bool(p["rejected"]))
    return _summary(m.run(cfg), cfg.out_dir)


def source(src: registry.Source):
    """The task of a registered source: its pipeline with its Options' defaults, paths declared
    ``data=`` under the data root, and the run's ``rejected`` for a source whose filters follow the
    contract."""
    def step(p):
        _selected(p, src.name)
        from core.options import fields_of

        cls = src.options()
        given = {f.name: _data(p, f.metadata["data"]) for f in fields_of(cls) if f.metadata["data"]}
        if src.keeps_rejects():
            given["rejected"] = bool(p["rejected"])
        stats = src.run([_data(p, src.input)], _out(p, src.out_dir), cls(**given), runner=p["runner"],
                        beam_args=beam_args(p))
        return _summary(stats, _out(p, src.out_dir))
    step.__name__ = src.name
    return step


def wiki_refs(p):
    _selected(p, "common_crawl")
    from pipelines import wikirefs

    return _summary(wikirefs.run([_data(p, "wikipedia")], _out(p, "wikirefs"), runner=p["runner"],
                                 beam_args=beam_args(p)), _out(p, "wikirefs"))


def quality_classifier(p):
    _selected(p, "common_crawl")
    from pipelines import quality

    if "wikipedia" not in p["sources"]:
        raise Skip("the quality classifier needs the Wikipedia source (the bundled sample has no cited pages; "
                   "its articles are the fallback positives)")
    outdated = quality.is_outdated(_out(p, "quality"))  # made by the older version: retrained
    already = output.is_complete(_out(p, "quality")) and not outdated
    stats = quality.train(_out(p, "ccnet"), _out(p, "quality"), refs_dir=_out(p, "wikirefs"),
                          wiki_dir=_out(p, "wikipedia"), epoch=p["quality_epoch"], lr=p["quality_lr"],
                          runner=p["runner"], beam_args=beam_args(p), force=outdated)
    result = {"positives": f"{stats['positives']} {stats['positives_from']}", "negatives": stats["negatives"],
              "heldout_accuracy": stats.get("heldout_accuracy"), "out": _out(p, "quality")}
    return dict(result, skipped="complete") if already else result


def quality_filter(p):
    _selected(p, "common_crawl")
    from pipelines import quality

    if "wikipedia" not in p["sources"]:
        raise Skip("the quality classifier needs the Wikipedia source")
    model = _out(p, "quality", "model.bin")
    done = output.read_stats(_out(p, "cc")) if output.is_complete(_out(p, "cc")) else None
    retrained = bool(done) and done.get("model_run_id") != quality.model_run_id(model)  # redo with the new model
    return _summary(quality.run(_out(p, "ccnet"), _out(p, "cc"), model, runner=p["runner"], beam_args=beam_args(p),
                                force=retrained, rejected=bool(p["rejected"])), _out(p, "cc"))


def _ready_sources(p):
    return [s for s in p["sources"] if output.is_complete(_out(p, registry.get(s).out_dir))]


def tokenizer(p):
    from pipelines.tokenize import train_tokenizer_sampled

    ready = _ready_sources(p)
    if not ready:
        raise Skip("no source output to train a tokenizer on")
    already = output.is_complete(_out(p, "tokenizer"))
    model = train_tokenizer_sampled([_out(p, registry.get(s).out_dir) for s in ready], _out(p, "tokenizer"),
                                    vocab_size=p["vocab_size"], runner=p["runner"], beam_args=beam_args(p))
    return {"skipped": "complete", "out": model} if already else {"out": model, "sources": ready}


def tokens(p):
    from pipelines import tokenize

    mixture = tokenize.load_mixture()
    mixture = {k: v for k, v in mixture.items() if k in _ready_sources(p)}
    if not mixture:
        raise Skip("no source output to tokenize")
    dirs = tokenize.source_dirs(p["out"], mixture)
    m = tokenize.run(dirs, _out(p, "tokenizer", "tokenizer.model"), _out(p, "tokens"), mixture,
                     seq_len=p["seq_len"], seed=p["seed"], runner=p["runner"], beam_args=beam_args(p))
    if m is None:
        return {"skipped": "complete", "out": _out(p, "tokens")}
    return {"sequences": m["sequences"], "tokens": m["tokens"], "out": _out(p, "tokens")}


def train(p):
    from core.errors import InputError
    from train.launch import launch

    if not p["train_steps"]:
        raise Skip("train_steps is 0")
    run_dir = _out(p, "runs", "tiny")
    if fs.is_remote(run_dir):
        raise InputError(f"{run_dir}: training writes checkpoints to a local or shared filesystem; "
                         f"give a local \"out\" for the train step")
    if output.is_complete(run_dir):
        return {"skipped": "complete", "out": run_dir}
    cfg = fs.read_json(p["train_config"])
    cfg.update(data=_out(p, "tokens"), run_dir=run_dir, steps=p["train_steps"], seq_len=p["seq_len"])
    if p["model"]:
        cfg["model"] = p["model"]
    fs.mkdirs(run_dir)
    cfg_path = _out(p, "runs", "tiny.config.json")
    fs.write_json(cfg_path, cfg)
    rc = launch(cfg_path, nproc=p["nproc"])  # resumes from run_dir/checkpoints if present
    if rc != 0:
        raise InputError(f"training failed with exit status {rc} (see the log above)")
    output.mark_complete(run_dir, {"steps": p["train_steps"], "config": cfg})
    return {"out": run_dir}


def report(p) -> str:
    """The terminal report (report/ writes the HTML one)."""
    from report import ordered_steps, source_dirs

    out = str(p["out"])
    lines = ["", "=" * 72, "LLaMA-1 pretraining system: run report", "=" * 72,
             "Documents kept per source and step:"]
    for src, d in ((s, d) for s, dirs in source_dirs() for d in dirs):
        stats = output.read_stats(fs.join(out, d))
        if src not in p["sources"] or not stats:
            continue
        c = stats["counters"]
        kept = sum(stats["shards"].values())
        flow = []
        for ns in ordered_steps(set(c) - {"output"}):
            n = c[ns].get("documents", c[ns].get("questions"))
            if n is not None:
                flow.append(f"{ns} {n}")
        lines.append(f"  {src + ' (' + d + ')':<30} kept {kept:>6}   " + " -> ".join(flow))
    man = fs.join(out, "tokens", "manifest.json")
    if fs.isfile(man):
        m = fs.read_json(man)
        lines.append(f"Tokens: {m['tokens']:,} in {m['sequences']} sequences of <= {m['seq_len']} "
                     f"(vocab {m['vocab_size']})")
        lines.append(f"  {'source':<14} {'tokens':>9} {'target':>7} {'achieved':>9} {'epochs':>7}")
        for s, v in m["sources"].items():
            lines.append(f"  {s:<14} {v['tokens']:>9,} {v['weight_target']:>7.3f} {v['weight_achieved']:>9.3f} "
                         f"{v['epochs_achieved']:>7.3f}")
    log = fs.join(out, "runs", "tiny", "log.jsonl")
    if fs.isfile(log):
        hist = [json.loads(x) for x in fs.read_text(log).splitlines()]
        lines.append(f"Tiny model loss curve ({len(hist)} steps):")
        marks = sorted({0, len(hist) // 4, len(hist) // 2, 3 * len(hist) // 4, len(hist) - 1})
        lines.append("  " + "  ".join(f"step {hist[i]['step']}: {hist[i]['loss']:.3f}" for i in marks))
        vals = [h for h in hist if "val_loss" in h]
        if vals:
            lines.append("  validation: " + "  ".join(f"step {h['step']}: {h['val_loss']:.3f}" for h in vals))
    lines += ["Inspect any output:",
              f"  .venv/bin/llama inspect {fs.join(out, 'cc')}          (documents: summary + sample rows)",
              f"  .venv/bin/llama inspect {fs.join(out, 'books')}",
              f"  .venv/bin/llama inspect {fs.join(out, 'tokens')}      (token shards, decoded)",
              "=" * 72]
    return "\n".join(lines)


def graph() -> list:
    """(task id, function, upstream task ids): the DAG's shape, shared with the local runner.
    Common Crawl's five steps, then one task per registered source, then the tokens."""
    sources = [(src.name, source(src), []) for src in registry.pipelines()]
    return [
        ("lm", lm, []),
        ("ccnet", ccnet, ["lm"]),
        *sources,
        ("wiki_refs", wiki_refs, []),
        ("quality_classifier", quality_classifier, ["ccnet", "wiki_refs", "wikipedia"]),
        ("quality_filter", quality_filter, ["ccnet", "quality_classifier"]),
        ("tokenizer", tokenizer, ["quality_filter", *(name for name, _, _ in sources)]),
        ("tokens", tokens, ["tokenizer"]),
        ("train", train, ["tokens"]),
    ]


GRAPH = graph()
