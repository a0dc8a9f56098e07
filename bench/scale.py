"""`make bench-scale` (a benchmark, not a test): the data steps on a volume corpus made by
recombining the real sample documents at 1x, 4x and 16x, with 1 and 2 worker processes;
throughput and peak RSS per process (the Beam runner and each SDK worker process).

Recombination (real text only): every real document of the bundled CC sample (WARC/WET/
JSONL pages) and of the Wikipedia dumps (cleaned articles) is read once, in groups of one
language source (the CC pages; each Wikipedia dump).  In copy ``j`` of document ``i``, each
line of 40 characters or more is followed by a line of the ``(i + j + 1)``-th document of
the same group (``"<line> <partner line>"``), and shorter lines (headings, boilerplate)
stay as they are; every copy is made the same way, so documents have the same sizes at
every scale.  So 16x is ~16 times the text,
every sentence real and in the document's language, long lines new to the line dedup (as a
crawl's are) and short ones repeated across documents (as a crawl's boilerplate is) -- not
a corpus the dedup empties.  Written as JSON-lines files of 100 documents (many files, as a
crawl has, so two workers can share the reading), the groups interleaved so that every file
holds a like mix of languages (as a crawl's files do; files of one language each would make
the work of a file depend on its language).
"""
from __future__ import annotations

import argparse
import functools
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psutil

from core import paths


def real_documents() -> list[tuple[str, str]]:
    """(group, text) of every real document: group "cc" or the Wikipedia dump's name."""
    from filters.wikipedia import iter_articles
    from pipelines.ccnet import read_cc_file
    from core import fs

    d = paths.shared_data()
    docs = [("cc", doc["text"]) for f in fs.list_files(str(d / "cc")) if not f.endswith(".wat.gz")
            for doc in read_cc_file(f, lambda *a: None)]
    for dump in sorted((d / "wikipedia").glob("*wiki-*")):
        docs += [(dump.name, p.text) for p in iter_articles(str(dump))]
    return [(g, t) for g, t in docs if t.strip()]


def recombine(text: str, partner: str, min_chars: int = 40) -> str:
    """Each long line of ``text`` followed by a long line of ``partner`` (cycled)."""
    other = [ln for ln in partner.split("\n") if len(ln) >= min_chars] or [partner.replace("\n", " ")]
    out, k = [], 0
    for line in text.split("\n"):
        if len(line) >= min_chars:
            line, k = f"{line} {other[k % len(other)]}", k + 1
        out.append(line)
    return "\n".join(out)


def build_corpus(out_dir: str, scale: int, docs: list[tuple[str, str]], per_file: int = 100,
                 fmt: str = "jsonl") -> int:
    """The recombined corpus as files of ``per_file`` documents: JSON lines (``url``, ``text``),
    or ``fmt="wet"``: Common Crawl WET files (``wet_record``) of the same documents."""
    os.makedirs(out_dir, exist_ok=True)
    groups: dict[str, list[str]] = {}
    for g, t in docs:
        groups.setdefault(g, []).append(t)
    rows, part, total_bytes = [], 0, 0

    def flush():
        nonlocal rows, part
        if not rows:
            return
        if fmt == "wet":
            with open(os.path.join(out_dir, f"part-{part:05d}.warc.wet.gz"), "wb") as f:
                f.write(gzip.compress(wet_record("warcinfo", "", WET_INFO, f"part-{part:05d}")))
                for url, text in rows:  # one gzip member per record, as Common Crawl's
                    f.write(gzip.compress(wet_record("conversion", url, text.encode())))
        else:
            with gzip.open(os.path.join(out_dir, f"part-{part:05d}.jsonl.gz"), "wt") as f:
                f.write("".join(json.dumps({"url": url, "text": text}) + "\n" for url, text in rows))
        rows, part = [], part + 1

    longest = max(map(len, groups.values()))
    for j in range(scale):
        for i in range(longest):  # the groups interleaved: every file a like mix, as a crawl's are
            for g, texts in groups.items():
                if i >= len(texts):
                    continue
                body = recombine(texts[i], texts[(i + j + 1) % len(texts)])
                total_bytes += len(body.encode())
                rows.append((f"https://volume.example/{g}/{j}/{i}", body))
                if len(rows) >= per_file:
                    flush()
    flush()
    return total_bytes


# the warcinfo block of the real CC-MAIN-2024-22 WET file in shared/data/cc/whirlwind_CC-MAIN-2024-22
WET_INFO = (b"Software-Info: ia-web-commons.1.1.10-SNAPSHOT-20240513074037\r\n"
            b"Extracted-Date: Fri, 31 May 2024 01:16:46 GMT\r\n"
            b"isPartOf: CC-MAIN-2024-22\r\n"
            b"operator: Common Crawl Admin (info@commoncrawl.org)\r\n"
            b"description: Wide crawl of the web for May 2024\r\n"
            b"publisher: Common Crawl\r\n\r\n")


def wet_record(kind: str, url: str, body: bytes, name: str = "") -> bytes:
    """One WARC/1.0 record laid out as Common Crawl's WET files lay them out (the headers of
    the real whirlwind WET file): ``warcinfo`` for a file, ``conversion`` for a page's text."""
    import base64
    import hashlib
    import uuid

    rid = uuid.uuid5(uuid.NAMESPACE_URL, url or name)
    digest = "sha1:" + base64.b32encode(hashlib.sha1(body).digest()).decode()
    if kind == "warcinfo":
        head = [("WARC-Type", "warcinfo"), ("WARC-Date", "2024-05-31T01:16:46Z"),
                ("WARC-Filename", f"CC-MAIN-{name}.warc.wet.gz"), ("WARC-Record-ID", f"<urn:uuid:{rid}>"),
                ("Content-Type", "application/warc-fields"), ("Content-Length", str(len(body))),
                ("WARC-Block-Digest", digest)]
    else:
        head = [("WARC-Type", "conversion"), ("WARC-Target-URI", url), ("WARC-Date", "2024-05-18T01:58:10Z"),
                ("WARC-Record-ID", f"<urn:uuid:{rid}>"),
                ("WARC-Refers-To", f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, url)}>"),
                ("WARC-Block-Digest", digest), ("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                ("WARC-Payload-Digest", digest)]
    return (b"WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head).encode() + b"\r\n"
            + body + b"\r\n\r\n")


def corpus_mb(corpus: str, scale: int, docs) -> float:
    """Build the corpus of ``scale`` in ``corpus`` unless a finished one is there (its size
    in MB of text is recorded beside it, in ``<corpus>.mb``); return that size.  ``docs``:
    a function returning ``real_documents()``."""
    done = corpus + ".mb"
    if os.path.exists(done):
        with open(done) as f:
            return float(f.read())
    mb = build_corpus(corpus, scale, docs()) / 1e6
    with open(done, "w") as f:
        f.write(str(mb))
    return mb


def peak_rss(q: psutil.Process) -> int:
    """The kernel's high-water mark of the process's RSS (Linux ``VmHWM``), so a peak between
    two samples is not missed; elsewhere the current RSS."""
    try:
        with open(f"/proc/{q.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return q.memory_info().rss


def run_measured(cmd: list[str]) -> dict:
    """Run a command; sample the peak RSS of it and of every descendant (Beam's SDK workers)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak: dict[int, tuple[str, int]] = {}
    cpu: dict[int, tuple[str, float]] = {}
    stop = threading.Event()

    def sample():
        p = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                for q in [p] + p.children(recursive=True):
                    try:
                        rss = peak_rss(q)
                        kind = "runner" if q.pid == proc.pid else (
                            "worker" if q.name() == "sdk_worker" else "other")  # local_runner.name_worker
                        if rss > peak.get(q.pid, ("", 0))[1]:
                            peak[q.pid] = (kind, rss)
                        t = q.cpu_times()
                        cpu[q.pid] = (kind, t.user + t.system)
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t0 = time.time()
    t.start()
    _, err = proc.communicate()
    stop.set()
    t.join()
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err[-2000:]}")
    workers = [r for k, r in peak.values() if k == "worker"]
    return {"seconds": time.time() - t0, "runner_mb": max((r for k, r in peak.values() if k == "runner"), default=0) / 2**20,
            "worker_mb": max(workers, default=0) / 2**20, "workers": len(workers),
            "runner_cpu_s": sum(c for k, c in cpu.values() if k == "runner"),
            "worker_cpu_s": sum(c for k, c in cpu.values() if k == "worker")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench.scale")
    ap.add_argument("--scales", default="1,4,16")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--out", default=str(paths.out_dir() / "bench-scale"))
    ap.add_argument("--shard-mb", type=float, default=2,
                    help="--target-shard-mb of the runs: a worker holds one shard's rows (as bytes) while "
                         "writing it, so this, not the corpus, bounds that part of its memory (full shards "
                         "from 4x on; C4's 1x output is one smaller shard)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of every (step, scale, workers), interleaved; the table gives the median "
                         "time and the highest peak RSS (one 2-core VM's speed varies by +-10%% run to run)")
    ap.add_argument("--steps", default="ccnet,c4")
    ap.add_argument("--corpus-dir", default=None,
                    help="build the volume corpora here and reuse them on the next run (default: a "
                         "temporary directory, removed at the end)")
    a = ap.parse_args(argv)
    llama = os.path.join(os.path.dirname(sys.executable), "llama")
    lm_dir = str(paths.lm_dir())
    from pipelines.lm import train_lm

    train_lm(sorted(str(p) for p in (paths.shared_data() / "wikipedia").glob("enwiki-*")), lm_dir)
    docs = functools.lru_cache(maxsize=1)(real_documents)
    runs: dict[tuple, list[dict]] = {}
    steps = [(s, e) for s, e in (("ccnet", ["--lm-dir", lm_dir]), ("c4", ["--lang-id", "fasttext"]))
             if s in a.steps.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for scale in map(int, a.scales.split(",")):
            corpus = os.path.join(a.corpus_dir or tmp, f"x{scale}")
            mb = corpus_mb(corpus, scale, docs)
            for rep in range(a.repeat):
                for w in map(int, a.workers.split(",")):
                    for step, extra in steps:
                        out = os.path.join(tmp, f"{step}-{scale}-{w}")
                        r = run_measured([llama, "-q", step, corpus, "--out", out, "--force",
                                          f"--direct_num_workers={w}", "--direct_running_mode=multi_processing",
                                          "--target-shard-mb", str(a.shard_mb), *extra])
                        with open(os.path.join(out, "stats.json")) as f:
                            dedup = json.load(f)["counters"].get("dedup", {})
                        r.update(text_mb=mb, dedup=dedup)
                        runs.setdefault((step, scale, w), []).append(r)
                        print(json.dumps({"step": step, "scale": scale, "workers": w, "run": rep + 1,
                                          "seconds": round(r["seconds"], 1), "worker_rss_mb": round(r["worker_mb"]),
                                          "runner_rss_mb": round(r["runner_mb"])}), flush=True)
    results = [summarise(k, v) for k, v in runs.items()]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"| step | scale | text MB | workers | MB/s | seconds (median of {a.repeat}) | runner peak RSS MB | "
          "worker peak RSS MB | runner CPU s | workers' CPU s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(results, key=lambda r: (r["scale"], r["workers"], r["step"] != "ccnet")):
        print(f"| {r['step']} | {r['scale']}x | {r['text_mb']} | {r['workers']} | {r['mb_per_s']} | {r['seconds']} | "
              f"{r['runner_rss_mb']} | {r['worker_rss_mb']} | {r['runner_cpu_s']} | {r['worker_cpu_s']} |")
    scales = sorted({r["scale"] for r in results})
    ws = sorted({r["workers"] for r in results})
    by = {(r["step"], r["scale"], r["workers"]): r for r in results}
    for step, _ in steps:
        lo, hi = scales[0], scales[-1]
        if len(scales) > 1:
            growth = by[step, hi, ws[0]]["worker_rss_mb"] / by[step, lo, ws[0]]["worker_rss_mb"]
            print(f"{step}: worker peak RSS {hi}x / {lo}x = {growth:.2f} (target <= 1.20)")
        if len(ws) > 1:
            speedup = by[step, hi, ws[0]]["seconds"] / by[step, hi, ws[-1]]["seconds"]
            print(f"{step}: {ws[-1]} workers / {ws[0]} at {hi}x = {speedup:.2f}x (target >= 1.7)")
    return 0


def summarise(key: tuple, rs: list[dict]) -> dict:
    step, scale, w = key
    med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
    row = {"step": step, "scale": scale, "text_mb": round(rs[0]["text_mb"], 1), "workers": w, "runs": len(rs),
           "seconds": round(med("seconds"), 1), "mb_per_s": round(rs[0]["text_mb"] / med("seconds"), 2),
           "seconds_all": [round(r["seconds"], 1) for r in rs],
           "runner_rss_mb": round(max(r["runner_mb"] for r in rs)), "worker_rss_mb": round(max(r["worker_mb"] for r in rs)),
           "runner_cpu_s": round(med("runner_cpu_s"), 1), "worker_cpu_s": round(med("worker_cpu_s"), 1)}
    dedup = rs[0]["dedup"]
    if dedup.get("lines_in"):
        row["lines_removed_by_dedup"] = round(dedup["lines_removed"] / dedup["lines_in"], 3)
    return row


if __name__ == "__main__":
    sys.exit(main())
