"""The whole system as one Airflow DAG, end to end on a slice of the bundled data."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest


@pytest.fixture(scope="module")
def slice_data(data, tmp_path_factory):
    """A small slice of ../shared/data with the same layout."""
    root = tmp_path_factory.mktemp("slice")
    links = {
        "cc/cc_net_test_sample.warc.wet": "cc/cc_net_test_sample.warc.wet",
        "cc/cc_en_head-0174.jsonl.gz": "cc/ccnet_output/cc_en_head-0174.jsonl.gz",
        "github/DaveGamble__cJSON": "github/DaveGamble__cJSON",
        "github/Xfennec__progress": "github/Xfennec__progress",
        "wikipedia/enwiki.xml.bz2": "wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
        "books/a.txt": "books/pg42324_frankenstein_1831ed.with_pg_header.txt",
        "books/b.txt": "books/pg42324_frankenstein_1831ed.header_stripped.txt",
        "arxiv/arXiv-1202.3665_emcee": "arxiv/arXiv-1202.3665_emcee",
        "stackexchange/beer.stackexchange.com": "stackexchange/beer.stackexchange.com",
        "models": "models",
    }
    for dst, src in links.items():
        (root / dst).parent.mkdir(parents=True, exist_ok=True)
        (root / dst).symlink_to(data / src)
    return root


def _conf(slice_data, out, lm_dir, **kw):
    return json.dumps({"data": str(slice_data), "out": str(out), "lm_dir": str(lm_dir), "vocab_size": 1000,
                       "seq_len": 128, "train_steps": 4, "model": "micro", "nproc": 2, **kw})


def _start(conf, home):
    env = dict(os.environ, AIRFLOW_HOME=str(home), DS_ACCELERATOR="cpu", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "dags.run_local", "--conf", conf], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)


def test_dag_killed_midway_then_rerun_completes_without_redoing(slice_data, lm_dir, tmp_path):
    out, home = tmp_path / "out", tmp_path / "airflow"
    conf = _conf(slice_data, out, lm_dir)
    # run 1: killed (SIGKILL, the whole process group) after three tasks have finished
    proc, done_first, lines = _start(conf, home), [], []
    deadline = time.time() + 600
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("[llama] ok "):
            done_first.append(line.split()[2].rstrip(":"))
            if len(done_first) == 3:
                os.killpg(proc.pid, signal.SIGKILL)
                break
        assert time.time() < deadline, "".join(lines[-50:])
    proc.wait()
    assert len(done_first) == 3, "".join(lines[-50:])
    # run 2: completes; the tasks finished before the kill are not redone
    proc = _start(conf, home)
    text = proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, text[-4000:]
    for task in done_first:
        assert f"[llama] ok {task}: already complete, not redone" in text
    assert "[llama] ok train: done" in text
    assert "LLaMA-1 pretraining system: run report" in text and "Tiny model loss curve (4 steps)" in text
    for d in ("cc", "c4", "github", "wikipedia", "books", "arxiv", "stackexchange", "tokens"):
        assert (out / d / "_SUCCESS").is_file(), d
    assert not list(out.rglob("_tmp"))  # no half-written shards anywhere
    report = text[text.index("Documents kept per source"):]
    import re

    assert re.search(r"books \(books\)\s+kept\s+1\s+read 2 -> near_dedup 1", report), report  # the pair -> one
    # cJSON's 5 whitelisted files kept (its LICENSE is not code); the GPL repo dropped
    assert re.search(r"github \(github\)\s+kept\s+5\s+read 6 -> skip \d+ -> dedup \d+ -> filter 5$", report, re.M), report
    _check_html_report(out, text)
    # run 3: nothing left to do
    proc = _start(conf, home)
    text = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0
    from dags.steps import GRAPH

    assert text.count("already complete, not redone") == len(GRAPH) == 14


def _check_html_report(out, text):
    """The DAG's last task writes out/report.html: loaded in headless Chromium, no console
    message, no uncaught exception, no failed resource; every section shows content of this run."""
    import browser
    from report import SECTIONS

    path = out / "report.html"
    assert f"[llama] report: {path}" in text
    script = """({ready: document.body.dataset.ready, sections: [...document.querySelectorAll('section')].map(s => ({
        id: s.id, height: s.getBoundingClientRect().height, plots: s.querySelectorAll('svg').length,
        empty: s.querySelectorAll('.none').length, text: s.textContent}))})"""
    page = browser.load(str(path), script)
    assert page["console"] == [] and page["exceptions"] == [] and page["log"] == [], page
    assert page["value"]["ready"] == "1"   # its script ran to the end
    sections = {s["id"]: s for s in page["value"]["sections"]}
    assert list(sections) == [k for k, _ in SECTIONS]
    for sid, s in sections.items():
        assert s["height"] > 100 and s["empty"] == 0, (sid, s["text"][:300])
    for sid in ("funnel", "drops", "languages", "perplexity", "mixture", "loss"):
        assert sections[sid]["plots"] >= 1, sid
    assert "near_dedup" in sections["funnel"]["text"] and "en" in sections["languages"]["text"]
    # the Frankenstein pair: one copy kept, the other shown among the rejects with the kept one named
    rejected = sections["rejected"]["text"]
    assert "near_dedup/near_duplicate" in rejected and "duplicate_of=" in rejected
    assert "4 steps; last loss" in sections["loss"]["text"]


def test_dag_runs_only_the_selected_source(slice_data, lm_dir, tmp_path):
    out = tmp_path / "out"
    proc = _start(_conf(slice_data, out, lm_dir, sources=["books"], train_steps=0), tmp_path / "airflow")
    text = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, text[-4000:]
    assert "[llama] -- github: skipped (github not selected)" in text
    assert "[llama] -- train: skipped (train_steps is 0)" in text
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["books", "tokenizer", "tokens"]
    manifest = json.loads((out / "tokens" / "manifest.json").read_text())
    assert list(manifest["sources"]) == ["books"] and manifest["tokens"] > 0
