"""`make bench` (a benchmark, not a test): every stage side by side with the tool a user would
pick instead, on the same real input, in one run.

For each stage the project's function and the peer's run on the same input, interleaved
(project, peer, project, peer, ...), ``--repeats`` pairs; the rate of each run is units/s and
the ratio is the median over the pairs of project rate / peer rate (> 1: the project is
faster).  Each stage runs on one thread (``OMP_NUM_THREADS=1``, torch on one thread) except
the whole pipelines, which run on 1 and 2 worker processes.  Results: printed as
``stage project_rate peer_rate ratio``, written to ``bench/results.json`` and
``bench/results.md``, and the Markdown table is put into the README (between its
``bench:start``/``bench:end`` markers) with the date and the machine.

Input (real text only, recombined for volume, as ``bench.scale`` documents it): the text
stages read the real pages of the bundled CC sample, each long line followed by a long line
of another page (``bench.scale.recombine``), copied until the stage's input reaches its size
(``--mb``, default 16 MB of text).  The whole pipelines read ``bench.scale``'s volume corpus
(every CC page and every Wikipedia article, ``2 x --mb`` of text in files of 100 documents)
as Common Crawl WET files -- what CCNet reads, laid out as the real CC-MAIN-2024-22 WET file in
the samples (``bench.scale.wet_record``); datatrove reads them with its ``WarcReader`` -- and,
for the 2-worker run, as JSON lines (``JsonlReader``): there the long lines are new to the
line dedup, as a crawl's are, and short ones repeat, as a crawl's boilerplate does -- the 115 kB of CC pages alone, copied to 32 MB,
would be a corpus the dedup empties (99.9% of its lines), leaving the project's language ID
and perplexity almost nothing to do beside the peer's.
Stages that need other inputs say so: WARC extraction reads the real CC-MAIN WARC excerpt
(its gzip members repeated), Wikipedia cleaning the raw wikitext of the dumps' articles
(cycled), MinHash the three Gutenberg books, the tokenizer stage a SentencePiece model with
LLaMA's trainer spec trained here on the recombined text (the peer: the same model converted
to a HF ``tokenizers`` tokenizer by ``transformers``), the loader token shards written from
that tokenizer's ids.

Peers (``pip install -e .[bench]``, ``make bench-setup``): datatrove (LID, C4 rules, line
hashing, the whole CCNet-like pipeline), fastwarc + resiliparse (WARC), datasketch and rensa
(MinHash), mwparserfromhell and wikitextparser (Wikipedia), HF tokenizers, transformers
(train step), numpy memmap (loader).  A stage whose peer is not installed is reported as
such, never silently dropped.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from core import paths  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
TABLE = ROOT / "bench" / "results.md"


class Missing(Exception):
    """The peer is not installed."""


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise Missing(f"{module} not installed (make bench-setup)") from e


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def pairs(project, peer, units: float, repeats: int, warmup: bool = True) -> dict:
    """Interleaved runs; rates in units/s; the ratio is the median of per-pair ratios."""
    if warmup:
        project(), peer()  # imports, model loads, caches
    rp, rq = [], []
    for _ in range(repeats):
        rp.append(units / _time(project))
        rq.append(units / _time(peer))
    return {"project_rate": statistics.median(rp), "peer_rate": statistics.median(rq),
            "ratio": statistics.median(a / b for a, b in zip(rp, rq))}


# ------------------------------------------------------------------ inputs

class Inputs:
    """The recombined real text, built once per run."""

    def __init__(self, mb: float, work: Path):
        self.mb, self.work = mb, work
        self._docs = None

    def documents(self):
        if self._docs is None:
            from bench.scale import real_documents

            self._docs = real_documents()
        return self._docs

    def texts(self, group: str = "cc", mb: float | None = None) -> list[str]:
        """Real documents of ``group`` ("cc" or "wiki"), recombined until ``mb`` MB."""
        from bench.scale import recombine

        target = (mb or self.mb) * 1e6
        src = [t for g, t in self.documents() if (g == "cc") == (group == "cc")]
        out, size, j = [], 0, 0
        while size < target:
            for i, t in enumerate(src):
                body = recombine(t, src[(i + j + 1) % len(src)]) if j else t
                out.append(body)
                size += len(body.encode())
                if size >= target:
                    break
            j += 1
        return out


# ------------------------------------------------------------------ stages

def stage_warc(inp: Inputs, repeats: int):
    from filters.warc import read_documents

    fastwarc = _need("fastwarc.warc")
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import detect_encoding
    from resiliparse.parse.html import HTMLTree

    src = paths.shared_data() / "cc" / "CC-MAIN-2020-34_excerpt.warc.gz"
    path = inp.work / "warc.warc.gz"
    data = src.read_bytes()
    with open(path, "wb") as f:  # gzip members concatenate into one valid file
        for _ in range(max(1, int(inp.mb * 1e6 / 4 / len(data)))):
            f.write(data)
    n = sum(1 for _ in read_documents(str(path)))

    def project():
        for _ in read_documents(str(path)):
            pass

    def peer():
        with open(path, "rb") as f:
            for rec in fastwarc.ArchiveIterator(f, record_types=fastwarc.WarcRecordType.response,
                                                parse_http=True):
                if rec.http_headers is None or rec.http_headers.status_code != 200:
                    continue
                payload = rec.reader.read()
                tree = HTMLTree.parse_from_bytes(payload, detect_encoding(payload))
                extract_plain_text(tree, main_content=False, alt_texts=False, links=False,
                                   list_bullets=False, preserve_formatting=True)
    return "pages", n, "fastwarc + resiliparse", project, peer


def _datatrove_lid():
    _need("datatrove")
    from bench.dt_blocks import language_filter

    return language_filter()


def stage_lid(inp: Inputs, repeats: int):
    from filters.langid import LanguageIdentifier

    texts = inp.texts("cc")
    from datatrove.data import Document

    lf = _datatrove_lid()
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    lid = LanguageIdentifier(str(paths.lid_model()))
    return ("docs", len(texts), "datatrove LanguageFilter",
            lambda: [lid.predict(t) for t in texts], lambda: [lf.filter(d) for d in docs])


def stage_c4(inp: Inputs, repeats: int):
    from filters.c4 import clean_page, default_splitter

    _need("datatrove")
    from datatrove.data import Document
    from datatrove.pipeline.filters import C4QualityFilter

    texts = inp.texts("cc", inp.mb / 4)
    splitter = default_splitter()
    qf = C4QualityFilter()

    def peer():
        for i, t in enumerate(texts):
            qf.filter(Document(text=t, id=str(i)))
    return ("docs", len(texts), "datatrove C4QualityFilter",
            lambda: [clean_page(t, splitter=splitter) for t in texts], peer)


def stage_line_hash(inp: Inputs, repeats: int):
    from filters.text import line_hash

    _need("datatrove")
    from datatrove.data import Document
    from datatrove.pipeline.dedup.sentence_dedup import SentDedupConfig, SentenceDedupSignature

    texts = inp.texts("cc")
    sig = SentenceDedupSignature(str(inp.work / "sigs"), config=SentDedupConfig(split_sentences=False,
                                                                                  n_sentences=1))
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    n = sum(t.count("\n") + 1 for t in texts)
    return ("lines", n, "datatrove sentence-dedup signature",
            lambda: [[line_hash(x) for x in t.split("\n")] for t in texts],
            lambda: [sig.get_hashes(d, i) for i, d in enumerate(docs)])


def stage_minhash(inp: Inputs, repeats: int, peer_name: str):
    from filters.books import iter_shingles, minhash

    books = [p.read_text(encoding="utf-8", errors="replace")
             for p in sorted((paths.shared_data() / "books").glob("*.txt"))]
    mb = sum(len(b.encode()) for b in books) / 1e6
    if peer_name == "datasketch":
        ds = _need("datasketch")

        def peer():
            for b in books:
                m = ds.MinHash(num_perm=128, seed=1)
                for chunk in iter_shingles(b):
                    m.update_batch([s.encode() for s in chunk])
                m.digest()
        name = "datasketch MinHash.update_batch"
    else:
        rensa = _need("rensa")

        def peer():  # as a user would: the shingle set, then one update
            for b in books:
                m = rensa.RMinHash(num_perm=128, seed=1)
                m.update(list({s for chunk in iter_shingles(b) for s in chunk}))
                m.digest()
        name = "rensa RMinHash (shingle set)"
    return "MB", mb, name, lambda: [minhash(b) for b in books], peer


def _wiki_pages(inp: Inputs, limit_mb: float):
    from filters.wikipedia import DumpInfo, iter_pages

    pages = []
    for dump in sorted((paths.shared_data() / "wikipedia").glob("*wiki-*")):
        if "UTF-16" in dump.name:
            continue
        info = DumpInfo()
        pages += [(p.text, info) for p in iter_pages(str(dump), info) if p.ns == 0 and not p.redirect and p.text]
    out, size = [], 0
    while size < limit_mb * 1e6:
        for t, info in pages:
            out.append((t, info))
            size += len(t.encode())
    return out


def stage_wiki(inp: Inputs, repeats: int, peer_name: str):
    from filters.wikipedia import clean_wikitext

    pages = _wiki_pages(inp, min(inp.mb / 8, 2.0))
    if peer_name == "wikitextparser":
        wtp = _need("wikitextparser")
        peer, name = (lambda: [wtp.parse(t).plain_text() for t, _ in pages]), "wikitextparser plain_text"
    elif peer_name == "tree":  # issue 15's target: the cleaner before it (f997bd5) was this path, ~1.07x slower
        from filters.wikipedia import _clean_tree, _fallback_clean

        def peer():
            for t, info in pages:
                media, category = info.media_pattern(), info.category_pattern()
                _fallback_clean(_clean_tree(t, media, category, fix_skips=True), media, category)
        name = "its own tree path (before issue 15)"
    else:
        mw = _need("mwparserfromhell")
        peer, name = (lambda: [mw.parse(t).strip_code() for t, _ in pages]), "mwparserfromhell parse+strip_code"
    return "pages", len(pages), name, lambda: [clean_wikitext(t, info) for t, info in pages], peer


def _tokenizer(inp: Inputs) -> tuple[str, object]:
    """A SentencePiece model with LLaMA's spec (vocab 8000) trained on the recombined text, and
    the same model as a HF ``tokenizers`` tokenizer (converted by transformers)."""
    import sentencepiece as spm

    from tokenizer.train import LLAMA_TRAINER_SPEC

    model = inp.work / "sp.model"
    if not model.exists():
        lines = [ln for t in inp.texts("cc", 4) for ln in t.split("\n") if ln.strip()]
        spec = dict(LLAMA_TRAINER_SPEC, vocab_size=8000, input_sentence_size=200_000, num_threads=2)
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(inp.work / "sp"),
                                       minloglevel=2, **spec)
    return str(model), _hf_tokenizer(model)


def _hf_tokenizer(model: Path):
    """The SentencePiece model as a HF ``tokenizers.Tokenizer``, built by transformers'
    ``SpmConverter`` from the model's proto (read as ``tokenizer.model_proto`` reads it:
    sentencepiece's own protobuf module refuses apache-beam's protobuf runtime)."""
    _need("transformers")
    from transformers.convert_slow_tokenizer import SpmConverter

    from tokenizer.tokenizer import model_proto

    proto = model_proto(model)
    vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    return SpmConverter.build_tokenizer_from_spm_proto(proto, vocab)


def stage_tokenizer(inp: Inputs, repeats: int, batch: bool):
    from tokenizer.tokenizer import Tokenizer

    model, hf = _tokenizer(inp)
    tok = Tokenizer(model)
    texts = inp.texts("cc", inp.mb / 4)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    same = sum(tok.encode(t, bos=False) == hf.encode(t, add_special_tokens=False).ids for t in texts[:200])
    if batch:
        project = lambda: tok.encode_batch(texts, bos=False)  # noqa: E731
        peer = lambda: hf.encode_batch(texts, add_special_tokens=False)  # noqa: E731
    else:
        project = lambda: [tok.encode(t, bos=False) for t in texts]  # noqa: E731
        peer = lambda: [hf.encode(t, add_special_tokens=False) for t in texts]  # noqa: E731
    return "MB", mb, "HF tokenizers" + (" encode_batch" if batch else " encode"), project, peer, \
        {"same_ids_of_200": same}


def _token_shards(inp: Inputs, tokens: int, seq: int = 512) -> tuple[Path, Path]:
    """Token shards (the project's TOKEN_SCHEMA) of ``tokens`` real token ids, and the same rows
    as a flat uint16 file for the memmap peer."""
    import numpy as np

    from tokenizer.tokenizer import Tokenizer
    from train.bench import write_token_shards

    d = inp.work / f"tokens-{tokens}"
    flat = inp.work / f"tokens-{tokens}.u16"
    if d.exists():
        return d, flat
    tok = Tokenizer(_tokenizer(inp)[0])
    ids = np.concatenate([np.asarray(x, dtype=np.int32) for x in tok.encode_batch(inp.texts("cc", 4))])
    rows = tokens // seq
    ids = np.resize(ids, rows * seq).reshape(rows, seq)  # cycled to the size asked
    write_token_shards(ids, d, "cc", rows_per_file=8192)
    ids.astype(np.uint16).tofile(flat)
    return d, flat


def stage_loader(inp: Inputs, repeats: int, tokens: int):
    import numpy as np

    from train.data import TokenLoader

    seq, mb_ = 512, 8
    d, flat = _token_shards(inp, tokens, seq)
    rows = tokens // seq
    n = 64  # micro-batches per run

    loader = TokenLoader(str(d), seq, mb_, seed=0)  # as a trainer does: once (its index is laid out here)

    def project():
        for _ in range(n):
            loader.next_batch()

    def peer():
        import torch

        mm = np.memmap(flat, dtype=np.uint16, mode="r").reshape(rows, seq)
        order = np.random.default_rng(0).permutation(rows)
        for b in range(n):
            idx = np.sort(order[b * mb_:(b + 1) * mb_])
            x = torch.from_numpy(mm[idx].astype(np.int64))
            x[:, :-1], x[:, 1:]
    return "samples", n * mb_, "numpy memmap + permutation", project, peer


def stage_train_step(inp: Inputs, repeats: int):
    import torch

    _need("transformers")
    from transformers import LlamaForCausalLM

    from model.hf import hf_config, to_hf
    from model.llama import Transformer, get_config

    torch.set_num_threads(1)
    args = get_config("tiny", vocab_size=8000)
    seq, batch, steps = 256, 4, 5
    ours = Transformer(args).init_weights(seed=0)
    theirs = LlamaForCausalLM(hf_config(args))
    theirs.load_state_dict(to_hf(ours.state_dict(), args), strict=False)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, args.vocab_size, (batch, seq), generator=g)
    opt_a = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_b = torch.optim.AdamW(theirs.parameters(), lr=1e-4)

    def project():
        for _ in range(steps):
            loss = ours(x[:, :-1], x[:, 1:])
            loss.backward()
            opt_a.step()
            opt_a.zero_grad(set_to_none=True)

    def peer():
        for _ in range(steps):
            loss = theirs(input_ids=x, labels=x).loss
            loss.backward()
            opt_b.step()
            opt_b.zero_grad(set_to_none=True)
    return "steps", steps, "transformers LlamaForCausalLM", project, peer


# ------------------------------------------------------------------ whole pipelines

def _pipeline_corpus(inp: Inputs, fmt: str = "wet") -> Path:
    """``bench.scale``'s volume corpus at ``2 x --mb`` of text (start-up, on both sides, is then
    a small part of a run), as Common Crawl WET files (what CCNet reads) or as JSON lines."""
    from bench.scale import build_corpus

    d = inp.work / ("corpus" if fmt == "jsonl" else f"corpus-{fmt}")
    if not d.exists():
        docs = inp.documents()
        real_mb = sum(len(t.encode()) for _, t in docs) / 1e6
        build_corpus(str(d) + ".tmp", max(1, round(inp.mb * 2 / real_mb)), docs, fmt=fmt)
        os.rename(str(d) + ".tmp", d)
    return d


def stage_pipeline(inp: Inputs, repeats: int, workers: int, fmt: str = "wet"):
    _need("datatrove")
    _need("kenlm")
    if fmt == "wet":
        _need("warcio")
        _need("cchardet")  # faust-cchardet and python-magic: what datatrove's WarcReader asks for
        _need("magic")
    corpus = _pipeline_corpus(inp, fmt)
    from pipelines.ccnet import read_cc_file

    n = sum(1 for f in sorted(corpus.iterdir()) for _ in read_cc_file(str(f), lambda *a: None))
    runs = {"k": 0}

    def project():
        runs["k"] += 1
        out = inp.work / f"cc-{workers}-{runs['k']}"
        res = subprocess.run([sys.executable, "-m", "cli", "-q", "ccnet", str(corpus), "--out", str(out),
                              "--direct_num_workers", str(workers)], capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(res.stderr[-2000:])
        shutil.rmtree(out, ignore_errors=True)

    def peer():
        runs["k"] += 1
        out = inp.work / f"dt-{workers}-{runs['k']}"
        res = subprocess.run([sys.executable, "-m", "bench.dt_blocks", str(corpus), str(out), str(workers)],
                             capture_output=True, text=True, cwd=str(ROOT))
        if res.returncode:
            raise RuntimeError(res.stderr[-2000:])
        shutil.rmtree(out, ignore_errors=True)
    return "docs", n, f"datatrove LocalPipelineExecutor tasks={workers}", project, peer, {"warmup": False}


STAGES = [
    ("WARC extraction", stage_warc, {}),
    ("fastText LID", stage_lid, {}),
    ("C4 line rules", stage_c4, {}),
    ("line hashing", stage_line_hash, {}),
    ("MinHash vs datasketch", stage_minhash, {"peer_name": "datasketch"}),
    ("MinHash vs rensa", stage_minhash, {"peer_name": "rensa"}),
    ("Wikipedia cleaning vs wikitextparser", stage_wiki, {"peer_name": "wikitextparser"}),
    ("Wikipedia cleaning vs mwparserfromhell", stage_wiki, {"peer_name": "mwparserfromhell"}),
    ("Wikipedia cleaning vs its tree path", stage_wiki, {"peer_name": "tree"}),
    ("tokenizer encode", stage_tokenizer, {"batch": False}),
    ("tokenizer encode_batch", stage_tokenizer, {"batch": True}),
    ("TokenLoader, 1M tokens", stage_loader, {"tokens": 1 << 20}),
    ("TokenLoader, 10M tokens", stage_loader, {"tokens": 10 << 20}),
    ("train step (tiny, 1 thread)", stage_train_step, {}),
    ("CCNet pipeline, 1 worker", stage_pipeline, {"workers": 1}),
    ("CCNet pipeline, 2 workers", stage_pipeline, {"workers": 2}),
    ("CCNet pipeline on JSON lines, 2 workers", stage_pipeline, {"workers": 2, "fmt": "jsonl"}),
]


def machine() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"


def markdown(results: list[dict], when: str, where: str) -> str:
    lines = [f"Measured {when} on {where}; `make bench`, median of interleaved pairs "
             "(ratio > 1: the project is faster).", "",
             "| stage | unit | project | peer | peer rate | ratio |", "|---|---|---:|---|---:|---:|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['stage']} | | | {r.get('peer', '')} | | {r['error']} |")
        else:
            lines.append(f"| {r['stage']} | {r['unit']}/s | {r['project_rate']:,.1f} | {r['peer']} | "
                         f"{r['peer_rate']:,.1f} | {r['ratio']:.2f}x |")
    return "\n".join(lines) + "\n"


def embed_in_readme(table: str) -> None:
    readme = ROOT / "README.md"
    s = readme.read_text(encoding="utf-8")
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start in s and end in s:
        a, b = s.index(start) + len(start), s.index(end)
        readme.write_text(s[:a] + "\n" + table + s[b:], encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=16, help="MB of recombined text for the text stages")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved pairs per stage")
    ap.add_argument("--only", nargs="*", default=None,
                    help="stages whose name contains one of these words (printed only; the record is kept)")
    ap.add_argument("--no-readme", action="store_true", help="do not update the README's table")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory(prefix="llama-bench-") as tmp:
        inp = Inputs(a.mb, Path(tmp))
        print(f"{'stage':<40} {'unit':>8} {'project/s':>12} {'peer/s':>12} {'ratio':>7}  peer")
        for name, fn, kw in STAGES:
            if a.only and not any(w.lower() in name.lower() for w in a.only):
                continue
            row = {"stage": name}
            try:
                unit, n, peer, project, peer_fn, *extra = fn(inp, a.repeats, **kw)
                extra = dict(extra[0]) if extra else {}
                warmup = extra.pop("warmup", True)
                row.update(unit=unit, units=n, peer=peer, **extra)
                row.update(pairs(project, peer_fn, n, a.repeats, warmup))
                print(f"{name:<40} {unit:>8} {row['project_rate']:>12,.1f} {row['peer_rate']:>12,.1f} "
                      f"{row['ratio']:>6.2f}x  {peer}", flush=True)
            except (Missing, ImportError) as e:  # a peer (or what it needs) is not installed
                row["error"] = f"peer missing: {e}"
                print(f"{name:<40} {row['error']}", flush=True)
            results.append(row)
    if a.only:  # a partial run never replaces the full run's record
        return 0
    when, where = datetime.date.today().isoformat(), machine()
    RESULTS.write_text(json.dumps({"date": when, "machine": where, "mb": a.mb, "repeats": a.repeats,
                                   "stages": results}, indent=1))
    table = markdown(results, when, where)
    TABLE.write_text(table)
    if not a.no_readme:
        embed_in_readme(table)
    print(f"wrote {RESULTS.relative_to(ROOT)} and {TABLE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
