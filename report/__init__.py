"""The run report: one self-contained HTML file (``<out>/report.html``) of what a run did.

Per source: a funnel of the documents and bytes each step kept, the drops by reason, the
languages and perplexity buckets of what was written; then the token mixture against LLaMA's
Table 1, the training loss curve, and snippets of rejected documents (``--rejected``) with the
command that shows more.  Everything comes from what the steps leave behind -- ``stats.json``
counters (a handful of numbers per step, whatever the corpus size), a few rows of each
``_rejected/`` step, ``tokens/manifest.json`` and the run's ``log.jsonl`` -- read through
``core.fs``, so a ``gs://`` output works.  Plots are matplotlib SVG, inlined.
"""
from __future__ import annotations

import html
import io
import json
import time

from core import fs, output

SECTIONS = (("funnel", "Funnel: documents and bytes kept per step"), ("drops", "Drops by reason"),
            ("languages", "Languages"), ("perplexity", "Perplexity buckets"),
            ("mixture", "Token mixture vs LLaMA Table 1"), ("loss", "Training loss"),
            ("rejected", "Rejected examples"))
# the counter namespaces (steps) in pipeline order; others follow in name order
STEP_ORDER = ["read", "length", "url_dedup", "clean", "skip", "dedup", "filter", "sentences", "langid", "badwords",
              "perplexity", "near_dedup", "format", "quality"]
SNIPPETS = 3          # rejected examples per step and reason
SNIPPET_CHARS = 400
MAX_REJECT_FILES = 4  # shards read per rejected step, at most (a few rows of each)


def source_dirs() -> list[tuple[str, list[str]]]:
    """(source, the output dirs of its steps in order), in the registry's order: Common Crawl's
    CCNet output then its quality-filtered one; one dir for every other source."""
    from pipelines import registry

    return [(s.name, ["ccnet", s.out_dir] if s.name == "common_crawl" else [s.out_dir]) for s in registry.SOURCES]


def ordered_steps(namespaces) -> list[str]:
    """Counter namespaces (steps) in pipeline order."""
    return sorted(namespaces, key=lambda n: (STEP_ORDER.index(n) if n in STEP_ORDER else len(STEP_ORDER), n))


def _funnel(c: dict) -> list[tuple[str, int, int | None]]:
    """(step, documents kept, bytes kept or None) of a step's counters, in pipeline order: a
    funnel only narrows, so by decreasing count (ties in the usual step order)."""
    steps = [(ns, c[ns]["documents"], c[ns].get("bytes")) for ns in set(c) - {"output"} if "documents" in c[ns]]
    order = {ns: i for i, ns in enumerate(ordered_steps(ns for ns, _, _ in steps))}
    return sorted(steps, key=lambda t: (-t[1], order[t[0]]))


def collect(out: str) -> dict:
    """What the report shows, as plain data (also what the tests check against)."""
    data = {"out": str(out), "sources": {}, "tokens": None, "loss": [], "rejected": {}}
    for source, dirs in source_dirs():
        funnel, drops, buckets, written = [], {}, {}, None
        for d in dirs:
            where = fs.join(str(out), d)
            stats = output.read_stats(where) if output.is_complete(where) else None
            if not stats:
                continue
            c = stats.get("counters", {})
            funnel += _funnel(c)
            drops.update({f"{ns}/{k[len('dropped_'):]}": n for ns in ordered_steps(c) for k, n in sorted(c[ns].items())
                          if k.startswith("dropped_") and n})
            out_c = c.get("output", {})
            written = (d, sum(stats.get("shards", {}).values()), out_c.get("bytes"), out_c)
            b = {k[len("bucket_"):]: n for k, n in out_c.items() if k.startswith("bucket_")}
            if b:
                buckets[d] = b
            if stats.get("rejected"):
                data["rejected"][d] = {"count": sum(stats["rejected"].values()),
                                       "examples": _rejected_snippets(where)}
        if written is None or written[0] != dirs[-1]:  # its last step has not run
            continue
        d, kept, nbytes, out_c = written
        data["sources"][source] = {
            "dirs": dirs, "funnel": funnel + [("written", kept, nbytes)], "drops": drops, "buckets": buckets,
            "languages": {k[len("language_"):]: n for k, n in out_c.items() if k.startswith("language_")},
        }
    man = fs.join(str(out), "tokens", "manifest.json")
    if fs.isfile(man):
        data["tokens"] = fs.read_json(man)
    log = fs.join(str(out), "runs", "tiny", "log.jsonl")
    if fs.isfile(log):
        data["loss"] = [json.loads(x) for x in fs.read_text(log).splitlines() if x.strip()]
    return data


def _rejected_snippets(step_out: str) -> dict[str, list[dict]]:
    """'step/reason' -> up to SNIPPETS rejected documents (id, url, snippet, extra metadata),
    from the first few rows of each rejected step's shards."""
    found: dict[str, list[dict]] = {}
    root = fs.join(step_out, fs.REJECTED)
    if not fs.isdir(root):
        return found
    by_step: dict[str, list[str]] = {}
    for f in output.shard_files(root):
        by_step.setdefault(fs.dirname(f), []).append(f)
    for files in by_step.values():
        for f in files[:MAX_REJECT_FILES]:
            pf = output.open_shard(f, "text", "document")
            for batch in pf.iter_batches(columns=["id", "url", "text", "metadata"], batch_size=64,
                                         use_threads=False):
                for r in batch.to_pylist():
                    meta = dict(r["metadata"] or [])
                    key = f"{meta.pop('rejected_step', '?')}/{meta.pop('rejected_reason', '?')}"
                    if len(found.setdefault(key, [])) < SNIPPETS:
                        text = r["text"] or ""
                        found[key].append({"id": r["id"], "url": r["url"], "chars": len(text),
                                           "snippet": text[:SNIPPET_CHARS],
                                           "meta": {k: v for k, v in meta.items() if len(v) < 200}})
                break  # the first batch of each shard is enough for a few examples
    return found


# ------------------------------------------------------------------ plots

def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _figure(height: float, width: float = 7.5, **kw):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                                "axes.spines.right": False})
    return plt.subplots(figsize=(width, height), **kw)


def plot_funnel(name: str, funnel) -> str:
    fig, (a, b) = _figure(0.35 * len(funnel) + 0.9, 9, ncols=2, sharey=True)
    labels = [s for s, _, _ in funnel][::-1]
    docs = [n for _, n, _ in funnel][::-1]
    mb = [(x or 0) / 2**20 for _, _, x in funnel][::-1]
    a.barh(labels, docs, color="#4878a8")
    a.set_xlabel("documents")
    for y, n in enumerate(docs):
        a.text(n, y, f" {n:,}", va="center", fontsize=8)
    b.barh(labels, mb, color="#e09040")
    b.set_xlabel("MB of text (where the step counts it)")
    for y, (m, (_, _, x)) in enumerate(zip(mb, funnel[::-1])):
        b.text(m, y, f" {m:.2f}" if x is not None else " -", va="center", fontsize=8)
    fig.suptitle(name, x=0.01, ha="left", fontsize=10)
    return _svg(fig)


def plot_bars(title: str, counts: dict, color="#6a9a58", xlabel="documents") -> str:
    items = sorted(counts.items(), key=lambda kv: kv[1])
    fig, ax = _figure(0.28 * len(items) + 0.8)
    ax.barh([k for k, _ in items], [v for _, v in items], color=color)
    for y, (_, v) in enumerate(items):
        ax.text(v, y, f" {v:,}", va="center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left", fontsize=10)
    return _svg(fig)


def plot_languages(sources: dict) -> str:
    """One bar per source, 100% stacked: the share of each language in the documents it wrote
    (the run's 8 commonest languages named, the rest as 'other')."""
    from collections import Counter

    total = Counter()
    for st in sources.values():
        total.update(st["languages"])
    top = [lang for lang, _ in total.most_common(8)]
    names = [n for n, st in sources.items() if st["languages"]][::-1]
    fig, ax = _figure(0.4 * len(names) + 1.2)
    left = [0.0] * len(names)
    colors = ["#4878a8", "#e09040", "#6a9a58", "#c05050", "#8a6ab0", "#8c6d4f", "#d080b0", "#a0a040", "#999999"]
    for i, lang in enumerate(top + ["other"]):
        counts = [(sources[n]["languages"].get(lang, 0) if lang != "other" else
                   sum(v for k, v in sources[n]["languages"].items() if k not in top)) for n in names]
        shares = [c / sum(sources[n]["languages"].values()) for c, n in zip(counts, names)]
        if any(counts):
            ax.barh(names, shares, left=left, label=lang, color=colors[i % len(colors)])
            left = [a + b for a, b in zip(left, shares)]
    for y, n in enumerate(names):
        ax.text(1.01, y, f"{sum(sources[n]['languages'].values()):,} docs", va="center", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the documents written")
    ax.legend(frameon=False, ncol=9, loc="upper center", bbox_to_anchor=(0.5, -0.3), fontsize=8)
    return _svg(fig)


BUCKETS = ("head", "middle", "tail", "all")


def plot_buckets(buckets: dict) -> str:
    """Documents per perplexity bucket, grouped by step output (CCNet's, then after the quality filter)."""
    names = [b for b in BUCKETS if any(b in v for v in buckets.values())]
    fig, ax = _figure(2.8)
    w = 0.8 / len(buckets)
    for i, (d, v) in enumerate(buckets.items()):
        xs = [j + (i - (len(buckets) - 1) / 2) * w for j in range(len(names))]
        ax.bar(xs, [v.get(b, 0) for b in names], w, label=f"{d}/", color=["#8a6ab0", "#4878a8"][i % 2])
        for x, b in zip(xs, names):
            ax.text(x, v.get(b, 0), f"{v.get(b, 0):,}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("documents")
    ax.legend(frameon=False)
    return _svg(fig)


def plot_mixture(tokens: dict) -> str:
    from pipelines import registry

    names = [s.name for s in registry.SOURCES if s.name in tokens["sources"]]
    table1 = {s.name: s.weight for s in registry.SOURCES}
    total1 = sum(table1[n] for n in names)
    fig, ax = _figure(3.2)
    x = range(len(names))
    w = 0.27
    ax.bar([i - w for i in x], [table1[n] for n in names], w, label="LLaMA Table 1", color="#999999")
    ax.bar(list(x), [table1[n] / total1 for n in names], w, label="target (Table 1 over present sources)",
           color="#4878a8")
    ax.bar([i + w for i in x], [tokens["sources"][n]["weight_achieved"] for n in names], w,
           label="achieved", color="#e09040")
    ax.set_xticks(list(x), names, rotation=20)
    ax.set_ylabel("share of training tokens")
    ax.legend(frameon=False)
    return _svg(fig)


def plot_loss(log: list[dict]) -> str:
    fig, ax = _figure(3.0)
    ax.plot([h["step"] for h in log], [h["loss"] for h in log], label="training loss", color="#4878a8")
    val = [h for h in log if "val_loss" in h]
    if val:
        ax.plot([h["step"] for h in val], [h["val_loss"] for h in val], "o-", label="validation loss",
                color="#e09040")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend(frameon=False)
    return _svg(fig)


# ------------------------------------------------------------------ the page

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
h1{font-size:1.5em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em} h3{font-size:1em}
nav a{margin-right:1em} table{border-collapse:collapse;font-size:.9em} td,th{padding:2px 8px;text-align:right}
td:first-child,th:first-child{text-align:left} .none{color:#888;font-style:italic}
.card{border:1px solid #ddd;border-radius:4px;padding:.5em;margin:.4em 0;background:#fafafa}
.card pre{white-space:pre-wrap;font-size:.8em;max-height:10em;overflow:auto;margin:.3em 0}
.meta{font-size:.75em;color:#555} code{background:#f0f0f0;padding:0 3px} svg{max-width:100%;height:auto}
"""

_JS = """
for (const sel of document.querySelectorAll('select.reason')) {
  const cards = document.querySelectorAll('#' + sel.dataset.target + ' .card');
  sel.addEventListener('change', () => {
    for (const c of cards) c.style.display = (sel.value === '' || c.dataset.reason === sel.value) ? '' : 'none';
  });
}
document.body.dataset.sections = document.querySelectorAll('section').length;
document.body.dataset.ready = '1';
"""


def _e(x) -> str:
    return html.escape(str(x))


def _none(text: str) -> str:
    return f'<p class="none">{_e(text)}</p>'


def render(data: dict) -> str:
    parts = {k: [] for k, _ in SECTIONS}
    sources = data["sources"]
    for name, st in sources.items():
        label = f"{name} ({', '.join(d + '/' for d in st['dirs'])})"
        parts["funnel"].append(plot_funnel(label, st["funnel"]))
        if st["drops"]:
            parts["drops"].append(plot_bars(label, st["drops"], "#c05050"))
        if st["buckets"]:
            parts["perplexity"].append(plot_buckets(st["buckets"]))
    if any(st["languages"] for st in sources.values()):
        parts["languages"].append(plot_languages(sources))
    for key, text in (("funnel", "no step output under this directory yet"), ("drops", "no document was dropped"),
                      ("languages", "no language recorded"), ("perplexity", "no perplexity bucket recorded "
                                                                              "(the CCNet step)")):
        if not parts[key]:
            parts[key].append(_none(text))
    tok = data["tokens"]
    if tok:
        from pipelines import registry

        rows = "".join(f"<tr><td>{_e(s.name)}</td><td>{v['tokens']:,}</td><td>{s.weight:.3f}</td>"
                       f"<td>{v['weight_target']:.3f}</td><td>{v['weight_achieved']:.3f}</td>"
                       f"<td>{s.epochs:.2f}</td><td>{v['epochs_achieved']:.2f}</td></tr>"
                       for s in registry.SOURCES if (v := tok["sources"].get(s.name)))
        parts["mixture"] += [plot_mixture(tok), f"<p>{tok['tokens']:,} tokens in {tok['sequences']:,} sequences of "
                             f"&le; {tok['seq_len']} (vocabulary {tok['vocab_size']:,}).</p>",
                             "<table><tr><th>source</th><th>tokens</th><th>Table 1</th><th>target</th>"
                             "<th>achieved</th><th>epochs (Table 1)</th><th>epochs</th></tr>"
                             f"{rows}</table>"]
    else:
        parts["mixture"].append(_none("no token shards yet (llama tokenize)"))
    if data["loss"]:
        last = data["loss"][-1]
        parts["loss"] += [plot_loss(data["loss"]), f"<p>{len(data['loss'])} steps; last loss {last['loss']:.3f}</p>"]
    else:
        parts["loss"].append(_none("no training run yet (llama train)"))
    for d, rej in data["rejected"].items():
        by_reason = rej["examples"]
        sid = f"rej-{d}"
        options = "".join(f'<option value="{_e(k)}">{_e(k)}</option>' for k in sorted(by_reason))
        cards = []
        for key in sorted(by_reason):
            for r in by_reason[key]:
                meta = ", ".join(f"{k}={v}" for k, v in sorted(r["meta"].items()))
                cards.append(f'<div class="card" data-reason="{_e(key)}"><b>{_e(key)}</b> &mdash; '
                             f'<code>{_e(r["id"])}</code> {_e(r["url"])} ({r["chars"]:,} chars)'
                             f'<pre>{_e(r["snippet"])}</pre><div class="meta">{_e(meta)}</div></div>')
        where = fs.join(data["out"], d, fs.REJECTED)
        parts["rejected"].append(
            f'<h3>{_e(d)}/ &mdash; {rej["count"]:,} rejected documents kept</h3>'
            f'<p>Files: <a href="{_e(d)}/{fs.REJECTED}/">{_e(where)}</a>; more with '
            f'<code>llama inspect {_e(fs.join(data["out"], d))} --rejected --reason R</code></p>'
            f'<select class="reason" data-target="{_e(sid)}"><option value="">every reason</option>{options}'
            f'</select><div id="{_e(sid)}">{"".join(cards)}</div>')
    if not parts["rejected"]:
        parts["rejected"].append(_none("no rejected documents kept (run the steps with --rejected)"))
    nav = "".join(f'<a href="#{k}">{_e(t.split(":")[0])}</a>' for k, t in SECTIONS)
    body = "".join(f'<section id="{k}"><h2>{_e(t)}</h2>{"".join(parts[k])}</section>' for k, t in SECTIONS)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>LLaMA-1 run report</title>'
            f"<style>{_CSS}</style></head><body><h1>LLaMA-1 pretraining system: run report</h1>"
            f"<p>{_e(data['out'])} &middot; written {time.strftime('%Y-%m-%d %H:%M:%S')}</p><nav>{nav}</nav>"
            f"{body}<script>{_JS}</script></body></html>")


def write(out: str, path: str | None = None) -> str:
    """Write the report of the run under ``out`` (default ``<out>/report.html``); returns its path."""
    path = path or fs.join(str(out), "report.html")
    fs.write_text(path, render(collect(out)))
    return path
