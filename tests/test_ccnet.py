"""The CCNet pipeline, step by step and end to end, on ../shared/data/cc."""
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from core import paths
from filters.perplexity import LMPaths, PerplexityScorer, bucket
from filters.text import line_hash
from filters.warc import read_documents
from pipelines.dedup import CCNetDedup, remove_lines
from pipelines.ccnet import CCNetConfig, read_cc_file, run


@pytest.fixture(scope="module")
def ccnet_out(tmp_path_factory, data, lm_dir):
    out = tmp_path_factory.mktemp("ccnet") / "out"
    cfg = CCNetConfig(inputs=[str(data / "cc")], out_dir=str(out), lm_dir=str(lm_dir),
                      lid_model=str(paths.lid_model()), rejected=True)
    stats = run(cfg)
    rows = [r for f in sorted(out.rglob("*.parquet")) if "_rejected" not in f.relative_to(out).parts
            for r in pq.read_table(f).to_pylist()]
    return cfg, stats, rows


def _dedup(docs, tmp_path):
    """Run the pipeline's dedup transforms on in-memory documents."""
    with beam.Pipeline(runner=FnApiRunner()) as p:
        res = p | beam.Create(docs) | CCNetDedup("dedup", line_hash)
        res | beam.Map(json.dumps) | beam.io.WriteToText(str(tmp_path / "dedup"))
    out = [json.loads(line) for f in tmp_path.glob("dedup*") for line in f.read_text().splitlines()]
    return {doc["id"]: doc for doc in out}


def test_dedup_removes_boilerplate_shared_across_pages(data, tmp_path):
    pages = list(read_cc_file(str(data / "cc" / "CC-MAIN-2020-34_excerpt.warc.gz"), lambda *a: None))
    a, b = [d for d in pages if "live-radsport.ch" in d["url"]]  # two pages of one site
    shared = ({line_hash(x) for x in a["text"].split("\n")} & {line_hash(x) for x in b["text"].split("\n")})
    assert len(shared) >= 5  # real navigation boilerplate
    result = _dedup(pages, tmp_path)
    for page in (a, b):  # cc_net keeps no copy: the shared lines leave both pages
        kept = {line_hash(x) for x in result[page["id"]]["text"].split("\n")}
        assert not (shared & kept)
        assert int(result[page["id"]]["metadata"]["nlines"]) < int(result[page["id"]]["metadata"]["original_nlines"])
    # every line hash now lives in exactly one document, once
    seen = {}
    for doc in result.values():
        for h in {line_hash(x) for x in doc["text"].split("\n")}:
            assert h not in seen, "line survives in two documents"
            seen[h] = doc["id"]
        lines = doc["text"].split("\n")
        assert len({line_hash(x) for x in lines}) == len(lines), "a repeat inside a page survives"


def _docs(*docs):
    return [{"id": f"d{i}", "text": "\n".join(lines), "metadata": {}} for i, lines in enumerate(docs)]


def test_dedup_matches_cc_net_test_vectors(tmp_path):
    """cc_net tests/test_dedup.py (facebookresearch/cc_net@bda555b), carried over."""
    import hashlib

    import numpy as np

    # str_hash: the first 8 bytes of SHA-1 read as numpy's uint64
    assert line_hash("_world") == int(np.frombuffer(hashlib.sha1(b"_world").digest()[:8], dtype=np.uint64)[0])
    # test_dedup_fast: a line in both parts leaves both; the rest is untouched
    got = _dedup(_docs(["Hello", "_World", "I'm so original"], ["Good morning", "_World", "I'm originaler"]),
                 tmp_path / "a")
    assert got["d0"]["text"] == "Hello\nI'm so original" and got["d1"]["text"] == "Good morning\nI'm originaler"
    assert (got["d0"]["metadata"]["original_nlines"], got["d0"]["metadata"]["nlines"]) == ("3", "2")
    # test_dedup_with_dump: duplicates are found case-insensitively ("_World" ~ "_world")
    got = _dedup(_docs(["_Hello", "_World", "I'm so original"], ["_world", "I'm originaler", "_Hello"]),
                 tmp_path / "b")
    assert got["d0"]["text"] == "I'm so original" and got["d1"]["text"] == "I'm originaler"
    # test_dedup_from_hashes (DuplicatesRemover given the duplicate set)
    dups = {line_hash(x) for x in ("_hello", "i'm originaler")}
    assert remove_lines("_Hello\nWorld\nI'm so original", dups)[0] == ["World", "I'm so original"]
    assert remove_lines("Good morning\nWorld\nI'm originaler", dups)[0] == ["Good morning", "World"]
    # finalize_doc: a repeat inside one document is not a cross-document duplicate; the first copy stays
    got = _dedup(_docs(["menu", "text one", "menu", "MENU"], ["other text"]), tmp_path / "c")
    assert got["d0"]["text"] == "menu\ntext one" and got["d1"]["text"] == "other text"
    # a document left without lines is dropped
    got = _dedup(_docs(["same", "lines"], ["Same", "LINES"]), tmp_path / "d")
    assert got == {}


def test_dedup_within_groups_of_files(data, lm_dir, tmp_path):
    """--dedup-group-files N dedups within N consecutive input files (cc_net's hash_in_mem)."""
    from core import output

    page = data / "cc" / "cc_net_test_sample.warc.wet"
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(4):  # four copies of one WET file: every line is in several documents
        (inputs / f"{i}.warc.wet").symlink_to(page)
    for n, expected in ((0, 0), (1, 1)):
        cfg = CCNetConfig(inputs=[str(inputs)], out_dir=str(tmp_path / f"o{n}"), lm_dir=str(lm_dir),
                          lid_model=str(paths.lid_model()), dedup_group_files=n)
        stats = run(cfg)
        assert output.read_stats(cfg.out_dir)["config"]["dedup_group_files"] == n
        assert stats["counters"]["dedup"].get("documents", 0) == expected * 12, n


def test_pipeline_stats_and_language_filter(ccnet_out):
    cfg, stats, rows = ccnet_out
    c = stats["counters"]
    assert c["read"]["files"] == 5 and c["read"]["documents"] == 31
    assert c["read"]["length_mismatch"] == 4
    assert c["dedup"]["lines_removed"] > 0
    assert c["dedup"]["lines"] == c["dedup"]["lines_in"] - c["dedup"]["lines_removed"]
    # non-English pages are dropped with their language recorded
    assert c["langid"]["dropped_zh"] >= 10 and c["langid"]["dropped_ru"] >= 1
    assert c["langid"]["dropped_an"] + c["langid"].get("dropped_es", 0) >= 1  # Aragonese Wikipedia
    assert all(r["language"] == "en" and r["lang_score"] >= 0.5 for r in rows)
    urls = {r["url"] for r in rows}
    assert "http://sample_english.com" in urls
    assert not {"http://sample_chinese.zh", "http://sample_russian.ru"} & urls
    assert len(rows) == c["langid"]["documents"]
    # --rejected: the dropped pages, each with its language as the reason, in the document schema
    rejected = [r for f in sorted((Path(cfg.out_dir) / "_rejected").rglob("*.parquet"))
                for r in pq.read_table(f).to_pylist()]
    why = Counter(dict(r["metadata"])["rejected_reason"] for r in rejected)
    assert why == Counter({k[len("dropped_"):]: n for k, n in c["langid"].items() if k.startswith("dropped_")})
    assert all(r["language"] == dict(r["metadata"])["rejected_reason"].split("_")[0] for r in rejected)
    assert "http://sample_chinese.zh" in {r["url"] for r in rejected}


def test_perplexity_buckets_are_consistent(ccnet_out):
    cfg, stats, rows = ccnet_out
    for r in rows:
        assert r["bucket"] == bucket(r["perplexity"], cfg.cutoffs["en"])
    counts = {k.split("_")[1]: v for k, v in stats["counters"]["perplexity"].items()}
    assert sum(counts.values()) == len(rows)
    for key, n in stats["shards"].items():
        assert key.startswith("en_" + key.split("/")[0].split("_")[1])


def test_perplexity_orders_wikipedia_before_spam(data, lm_dir):
    scorer = PerplexityScorer(LMPaths.in_dir(lm_dir))
    held = [t for t in (lm_dir / "heldout.txt").read_text().split("\n\n") if len(t) > 300]
    wiki = sorted(scorer.score(t) for t in held)
    spam = sorted(scorer.score(t) for _, _, t, _, _ in
                  read_documents(str(data / "cc" / "CC-MAIN-2020-34_excerpt.warc.gz")))
    import gzip
    ccnet_head = [scorer.score(json.loads(line)["text"]) for line in
                  gzip.open(data / "cc" / "ccnet_output" / "cc_en_head-0174.jsonl.gz", "rt")]
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    assert median(wiki) < median(ccnet_head) < median(spam)
    assert max(wiki[: len(wiki) // 2]) < min(spam)


def test_output_is_complete_and_rerun_is_skipped(ccnet_out):
    cfg, stats, rows = ccnet_out
    from pathlib import Path
    out = Path(cfg.out_dir)
    assert (out / "_SUCCESS").is_file() and not (out / "_tmp").exists()
    assert json.loads((out / "stats.json").read_text())["counters"] == stats["counters"]
    assert run(cfg) is None  # complete: skipped
    from dataclasses import replace

    from core.errors import InputError

    other = replace(cfg, inputs=[str(Path(cfg.inputs[0]) / "cc_net_test_sample.warc.wet")])
    with pytest.raises(InputError, match="output of a different run .inputs differ"):
        run(other)  # never silently keep the output of other inputs
    with pytest.raises(InputError, match="config differ"):
        run(replace(cfg, lang_threshold=0.9))


def test_partial_output_is_redone(ccnet_out, tmp_path, data, lm_dir):
    out = tmp_path / "partial"
    (out / "en_head").mkdir(parents=True)
    (out / "en_head" / "part-99999.parquet").write_bytes(b"half written")
    cfg = CCNetConfig(inputs=[str(data / "cc" / "cc_net_test_sample.warc.wet")], out_dir=str(out),
                      lm_dir=str(lm_dir), lid_model=str(paths.lid_model()))
    stats = run(cfg)
    assert not (out / "en_head" / "part-99999.parquet").exists()
    assert sum(stats["shards"].values()) == 1


def _llama(*args):
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True)


def test_cli_inspect_and_clear_errors(ccnet_out, data, tmp_path):
    cfg, _, rows = ccnet_out
    res = _llama("inspect", cfg.out_dir, "-n", "1")
    assert res.returncode == 0 and f"{len(rows)} documents" in res.stdout and "bucket" in res.stdout
    res = _llama("ccnet", str(tmp_path / "nope.wet"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "nope.wet" in res.stderr
    res = _llama("ccnet", str(data / "books" / "pg345_dracula.txt"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "not a WARC/WET file" in res.stderr and "Traceback" not in res.stderr
    res = _llama("inspect", str(data / "books" / "pg345_dracula.txt"))
    assert res.returncode == 2 and "not a readable Parquet file" in res.stderr


def test_truncated_jsonl_keeps_earlier_documents(data, tmp_path):
    raw = (data / "cc" / "ccnet_output" / "cc_en_head-0174.jsonl.gz").read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(raw[: len(raw) * 2 // 3])
    counts = {}
    docs = list(read_cc_file(str(cut), lambda name, k=1: counts.__setitem__(name, counts.get(name, 0) + k)))
    assert 3 <= len(docs) < 10 and counts["stream_errors"] == 1
    assert docs[0]["url"].startswith("http://archives2.getty.edu")
