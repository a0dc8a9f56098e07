"""Fault injection: each hostile input or fault is built at test time from the shared sample,
and each test asserts the exact outcome -- the one-line message and exit status, or the
counted skip, and the state of the output.  The README's "Faults" table lists them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import InputError


def llama(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "cli", "-q", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(res, *fragments):
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    errors = [x for x in res.stderr.splitlines() if x.startswith("llama: error: ")]
    assert len(errors) == 1, res.stderr[-3000:]
    for f in fragments:
        assert f in errors[0], errors[0]
    return errors[0]


# ---------------------------------------------------------------- text encodings (books)

def _counter():
    counts = {}

    def inc(name, k=1):
        counts[name] = counts.get(name, 0) + k
    return counts, inc


def _read(path):
    from pipelines.books import read_book

    counts, inc = _counter()
    docs = list(read_book(str(path), inc))
    return docs, counts


def test_one_invalid_byte_in_a_utf8_book_costs_one_character(tmp_path, data):
    raw = (data / "books" / "pg1260_jane_eyre.txt").read_bytes()
    i = raw.index("Reader, I married him".encode())
    bad = tmp_path / "jane.txt"
    bad.write_bytes(raw[:i] + b"\xff" + raw[i:])  # one stray byte in the last chapter
    (clean,), _ = _read(data / "books" / "pg1260_jane_eyre.txt")
    (doc,), counts = _read(bad)
    assert counts["invalid_utf8_sequences_replaced"] == 1
    assert "Ã" not in doc["text"] and doc["text"].count("ë") == clean["text"].count("ë") > 0
    assert len(doc["text"]) == len(clean["text"]) + 1 and doc["text"].count("\ufffd") == 1


def test_a_utf16_book_with_a_bom_is_read_like_its_utf8_original(tmp_path, data):
    src = data / "books" / "pg345_dracula.txt"
    utf16 = tmp_path / "dracula.txt"
    utf16.write_bytes(src.read_bytes().decode("utf-8-sig").encode("utf-16"))  # BOM + UTF-16LE
    (clean,), _ = _read(src)
    (doc,), counts = _read(utf16)
    assert doc["text"] == clean["text"] and counts["decoded_as_utf-16"] == 1


def test_cr_cr_lf_line_ends_do_not_double_the_lines(tmp_path, data):
    src = data / "books" / "pg345_dracula.txt"
    raw = src.read_bytes()
    assert b"\r\n" in raw
    twice = tmp_path / "dracula.txt"
    twice.write_bytes(raw.replace(b"\r\n", b"\r\r\n"))  # a CRLF file converted once more
    (clean,), _ = _read(src)
    (doc,), _ = _read(twice)
    assert doc["text"] == clean["text"] and "\r" not in doc["text"]


def test_an_8bit_latin1_book_stays_latin1(tmp_path, data):
    text = (data / "books" / "pg345_dracula.txt").read_bytes().decode("utf-8-sig")
    latin = tmp_path / "dracula.txt"
    i = text.index("CHAPTER I")
    text = text[:i] + "calèche, naïve, café.\n\n" + text[i:]
    latin.write_bytes(text.encode("latin-1", "replace"))  # an 8-bit file: every é one byte
    (doc,), counts = _read(latin)
    assert "calèche, naïve, café." in doc["text"] and counts.get("decoded_as_latin-1") == 1


# ---------------------------------------------------------------- one writer per output

@pytest.mark.slow
def test_a_second_run_on_the_same_output_is_refused_naming_the_first(tmp_path, data):
    from core.lock import OutputLock

    out = tmp_path / "books"
    first = subprocess.Popen([sys.executable, "-m", "cli", "-q", "books", str(data / "books"),
                              "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while True:  # until the first run holds the lock
        try:
            OutputLock(str(out), "probe").acquire().release()
        except InputError:
            break
        assert first.poll() is None and time.time() < deadline, "the first run never took the lock"
        time.sleep(0.05)
    second = llama("books", data / "books", "--out", out)
    line = one_line_error(second, str(out), "is writing this output", f"pid {first.pid} ")
    assert "wait for it to finish or choose another --out" in line
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    marker = json.loads((out / "_SUCCESS").read_text())
    stats = json.loads((out / "stats.json").read_text())
    assert marker["run_id"] == stats["run_id"] and sum(stats["shards"].values()) == 3
    assert llama("books", data / "books", "--out", out, "--force").returncode == 0  # the lock is free again


@pytest.mark.parametrize("store", ["s3", "gs"])
def test_object_store_lock_refuses_a_second_writer_and_a_taken_over_finish(monkeypatch, tmp_path, store):
    from core import lock as lk
    from tests.emulators import environ, gcs_emulator, s3_server

    server = s3_server() if store == "s3" else gcs_emulator(tmp_path)
    with server as env, environ(env):
        out = f"{store}://llama-test/runs/cc"
        a = lk.OutputLock(out, "run-A").acquire()
        with pytest.raises(InputError, match=r"another run run-A \(pid \d+ on .*\) is writing this output"):
            lk.OutputLock(out, "run-B").acquire()
        a.check()  # still A's: A may finish
        monkeypatch.setattr(lk, "LEASE_SECONDS", 0)  # A looks dead: B takes over
        b = lk.OutputLock(out, "run-B").acquire()
        with pytest.raises(InputError, match="not marked complete: another run run-B"):
            a.check()
        a.release()  # A's release leaves B's lock alone
        b.check()
        b.release()
        from core import fs

        assert not fs.exists(lk.lock_path(out))


# ---------------------------------------------------------------- training inputs and resume

def test_token_shards_without_their_manifest_are_refused(tmp_path):
    from train.trainer import vocab_size_of

    (tmp_path / "tokens").mkdir()
    with pytest.raises(InputError, match="no manifest.json beside the token shards.*llama tokenize"):
        vocab_size_of(str(tmp_path / "tokens"))
    (tmp_path / "tokens" / "manifest.json").write_text('{"vocab_size": 400}')
    assert vocab_size_of(str(tmp_path / "tokens")) == 400


def test_train_7b_on_the_demos_token_shards_says_what_to_rebuild(tmp_path):
    """Shards made with the demo's VOCAB=8000 SEQ=512 under the 7B config (2048 tokens, 32000
    pieces): one line naming both mismatches and the make commands, before any plan or launch."""
    from train.trainer import check_data, load_config

    tokens = tmp_path / "tokens"
    tokens.mkdir()
    (tokens / "manifest.json").write_text(json.dumps({"vocab_size": 8000, "seq_len": 512}))
    cfg = json.loads((Path(__file__).resolve().parents[2] / "configs" / "train_7b.json").read_text())
    (tmp_path / "7b.json").write_text(json.dumps(dict(cfg, data=str(tokens), run_dir=str(tmp_path / "run"))))
    err = one_line_error(llama("train-7b", "--config", tmp_path / "7b.json", "--num-nodes", 1, "--num-gpus", 8),
                         "512-token sequences, the config trains on 2048 (`make tokens SEQ=2048`)",
                         "8000-piece vocabulary, the config's model has 32000 (`make tokenizer VOCAB=32000`")
    assert str(tokens) in err
    ok = load_config(str(tmp_path / "7b.json"), {"seq_len": 512, "vocab_size": 8000})
    assert check_data(ok)["vocab_size"] == 8000  # matching shards pass


def test_a_gpu_launch_does_not_inherit_the_cpu_accelerator(tmp_path, monkeypatch, capsys):
    """DS_ACCELERATOR=cpu (the CPU default: tests, the local DAG run) must not reach the
    deepspeed launcher on a GPU machine, where the trainer picks nccl."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core import output
    from train import launch as ln

    tokens = tmp_path / "tokens"
    tokens.mkdir()
    pq.write_table(pa.table({"tokens": [[1, 2, 3]]}), tokens / "part-00000.parquet")
    (tokens / "manifest.json").write_text(json.dumps({"vocab_size": 8000, "seq_len": 512}))
    output.mark_complete(str(tokens), {})
    (tmp_path / "c.json").write_text(json.dumps({"data": str(tokens), "seq_len": 512}))
    seen = {}
    monkeypatch.setattr(ln, "gpu_count", lambda: 8)
    monkeypatch.setattr(ln.subprocess, "call", lambda cmd, env: seen.update(cmd=cmd, env=env) or 0)
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    assert ln.launch(str(tmp_path / "c.json")) == 0
    assert "DS_ACCELERATOR" not in seen["env"] and "train.trainer" in seen["cmd"]
    assert "DS_ACCELERATOR=cpu from the environment ignored" in capsys.readouterr().out


def _checkpoint(ckpt: Path, step: int):
    import torch

    d = ckpt / f"step{step}"
    d.mkdir(parents=True)
    for name in ("mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt"):
        torch.save({"step": step, "w": torch.arange(1000.0)}, d / name)
    (ckpt / "latest").write_text(f"step{step}")


def test_resume_skips_a_truncated_newest_checkpoint_and_names_the_file(tmp_path, caplog):
    from train.checkpoint import resume_tag

    ckpt = tmp_path / "checkpoints"
    assert resume_tag(ckpt) is None  # nothing to resume: start over
    _checkpoint(ckpt, 2)
    _checkpoint(ckpt, 4)
    assert resume_tag(ckpt) == "step4"
    bad = ckpt / "step4" / "zero_pp_rank_0_mp_rank_00_optim_states.pt"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # the disk filled up mid-write
    with caplog.at_level("WARNING"):
        assert resume_tag(ckpt) == "step2"
    assert str(bad) in caplog.text and "resuming from step2" in caplog.text
    for f in (ckpt / "step2").iterdir():
        f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(InputError, match="no whole checkpoint to resume from"):
        resume_tag(ckpt)


def test_a_resumed_run_logs_each_step_once(tmp_path):
    from train.trainer import _truncate_log

    log = tmp_path / "log.jsonl"
    # killed after logging step 5, its last checkpoint at step 4, the last line cut
    log.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(1, 6)) + '{"step": 6, "lo')
    _truncate_log(log, 4)
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [1, 2, 3, 4]


# ---------------------------------------------------------------- user mistakes: one line, never a traceback

@pytest.mark.slow
def test_a_dangling_symlink_among_the_books(tmp_path, data):
    books = tmp_path / "books"
    books.mkdir()
    (books / "dracula.txt").symlink_to(data / "books" / "pg345_dracula.txt")
    (books / "gone.txt").symlink_to(tmp_path / "deleted.txt")
    res = llama("books", books, "--out", tmp_path / "out")
    one_line_error(res, "could not be read", "gone.txt")
    assert not (tmp_path / "out" / "_SUCCESS").exists()


@pytest.mark.slow
def test_a_corrupt_shard_given_to_tokenize(tmp_path, corpus, tokenizer_model):
    import shutil

    root = tmp_path / "out"
    shutil.copytree(corpus / "books", root / "books")
    shard = next((root / "books").rglob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:200])  # cut: no footer
    res = llama("tokenize", "--root", root, "--only", "books", "--tokenizer", tokenizer_model,
                "--seq-len", 64, "--out", root / "tokens")
    one_line_error(res, shard.name)
    assert not (root / "tokens" / "_SUCCESS").exists()


# ---------------------------------------------------------------- resource bombs: bounded time and memory

def _bounded(code: str, mem_gb: float = 1.5, timeout: int = 120):
    """Run ``code`` in a fresh interpreter under an address-space limit and a time limit.  The
    limit is set by the child's first line, not a ``preexec_fn``: Python code run between fork
    and exec in a process where gRPC is live (Beam has run in pytest's) runs gRPC's fork hooks,
    which restart its poller in the child, and closing the child's descriptors then aborts it
    (-6, "epoll_wait error: Bad file descriptor"; 47 of 200 such spawns in a probe)."""
    cap = int(mem_gb * 2**30)
    limit = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))\n"
    t0 = time.time()
    res = subprocess.run([sys.executable, "-c", limit + code], capture_output=True, text=True, timeout=timeout,
                         cwd=str(Path(__file__).resolve().parents[2]))
    return res, time.time() - t0


def test_latex_macros_that_fan_out_are_skipped_in_bounded_time_and_memory(tmp_path):
    paper = tmp_path / "bomb"
    paper.mkdir()
    defs = "".join(f"\\newcommand{{\\m{chr(97 + i)}}}{{{(' ' + chr(92) + 'm' + chr(98 + i)) * 10}}}\n"
                   for i in range(11)) + "\\newcommand{\\ml}{lol}\n"  # \ma uses \mb 10 times, ... 10^11 lols
    (paper / "main.tex").write_text("\\documentclass{article}\n" + defs +
                                    "\\begin{document}\n\\section{Intro}\nReal text. \\ma\n\\end{document}\n")
    res, seconds = _bounded(
        "import sys; from filters.latex import clean_paper, load_paper, PaperTooLarge\n"
        f"try:\n    clean_paper(load_paper({str(paper)!r}))\nexcept PaperTooLarge as e:\n"
        "    print(e.reason); sys.exit(0)\nsys.exit(1)")
    assert res.returncode == 0 and res.stdout.strip() == "macro_expansion_limit", res.stderr[-2000:]
    assert seconds < 60


def _gz_stream_of_zeros(path: Path, members: dict[str, int]):
    """A .tar.gz whose members are runs of zeros of the given sizes, written as a stream."""
    import tarfile
    import zlib

    class Zeros:
        def __init__(self, n):
            self.left = n

        def read(self, k=-1):
            k = self.left if k < 0 else min(k, self.left)
            self.left -= k
            return bytes(k)

    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, size in members.items():
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, Zeros(size))
    assert zlib  # (the tarfile module compresses)


@pytest.mark.slow
def test_a_tex_member_that_inflates_to_gigabytes_is_skipped_unread(tmp_path):
    bomb = tmp_path / "1234.5678.tar.gz"
    _gz_stream_of_zeros(bomb, {"main.tex": 3 << 30})  # a few MB on disk, 3 GiB inflated
    assert bomb.stat().st_size < 20 << 20
    res, seconds = _bounded(
        "import sys; from filters.latex import load_paper, PaperTooLarge\n"
        f"try:\n    load_paper({str(bomb)!r})\nexcept PaperTooLarge as e:\n    print(e.reason); sys.exit(0)\n"
        "sys.exit(1)", mem_gb=1.0)
    assert res.returncode == 0 and res.stdout.strip() == "tex_too_large", res.stderr[-2000:]
    assert seconds < 30


def test_an_archive_that_inflates_past_the_scan_cap_is_skipped(tmp_path):
    from filters.latex import PaperTooLarge, load_paper_bytes

    bomb = tmp_path / "paper.tar.gz"
    _gz_stream_of_zeros(bomb, {"main.tex": 1000, "figure.eps": 64 << 20})
    with pytest.raises(PaperTooLarge) as e:
        load_paper_bytes("paper.tar.gz", bomb.read_bytes(), max_scan_bytes=8 << 20)
    assert e.value.reason == "archive_too_large"
    assert load_paper_bytes("paper.tar.gz", bomb.read_bytes())["main.tex"] == "\0" * 1000  # default cap: read


@pytest.mark.slow
def test_a_200mb_stackexchange_row_is_skipped_unread_and_counted(tmp_path, data):
    posts = (data / "stackexchange" / "beer.stackexchange.com" / "Posts.xml").read_bytes()
    lines = posts.split(b"\n")
    huge = b'  <row Id="999999" PostTypeId="1" Score="1" Title="x" Body="' + b"a" * (200 << 20) + b'" />'
    big = tmp_path / "beer.stackexchange.com" / "Posts.xml"
    big.parent.mkdir()
    big.write_bytes(b"\n".join(lines[:5] + [huge] + lines[5:]))
    res, seconds = _bounded(
        "from filters.stackexchange import iter_posts\nn = []\n"
        f"posts = list(iter_posts({str(big)!r}, skipped=lambda: n.append(1)))\n"
        "print(len(posts), len(n))", mem_gb=1.5)
    assert res.returncode == 0, res.stderr[-2000:]
    n_posts = sum(1 for x in lines if b'PostTypeId="1"' in x or b'PostTypeId="2"' in x)
    assert res.stdout.split() == [str(n_posts), "1"] and seconds < 60


@pytest.mark.slow
def test_a_book_over_the_size_cap_is_skipped_and_counted(tmp_path, data):
    books = tmp_path / "books"
    books.mkdir()
    (books / "dracula.txt").symlink_to(data / "books" / "pg345_dracula.txt")
    with open(books / "one_line.txt", "wb") as f:  # a 200 MB line
        for _ in range(200):
            f.write(b"word " * 209_715)  # 1 MB, no newline
    res = llama("books", books, "--out", tmp_path / "out")
    assert res.returncode == 0, res.stderr[-3000:]
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["counters"]["read"]["dropped_too_large"] == 1 and sum(stats["shards"].values()) == 1
    assert "one_line.txt: over 64 MB" in res.stderr


# ---------------------------------------------------------------- oversized records (WARC, JSONL, dumps)

def _wet_record(uri: str, body: bytes, extra: str = "", length: int | None = None) -> bytes:
    head = (f"WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Target-URI: {uri}\r\n{extra}"
            f"Content-Length: {len(body) if length is None else length}\r\n\r\n")
    return head.encode() + body + b"\r\n\r\n"


def _http_record(uri: str, payload: bytes, encoding: str) -> bytes:
    http = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Encoding: "
            + encoding.encode() + b"\r\n\r\n" + payload)
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {uri}\r\n"
            f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(http)}\r\n\r\n")
    return head.encode() + http + b"\r\n\r\n"


def test_warc_records_over_the_cap_are_skipped_counted_and_the_rest_read(tmp_path, data):
    """A record longer than --max-record-mb (declared, found by re-synchronising a wrong length,
    or an HTTP payload that inflates past it) is skipped and counted; every other record is
    read, including one whose huge declared length a real next header contradicts."""
    import gzip

    from filters.warc import ReadReport, read_documents

    sample = data / "cc" / "cc_net_test_sample.warc.wet"
    base = ReadReport()
    want = [(url, text) for _, url, text, _, _ in read_documents(str(sample), base)]
    page = want[0][1].encode() + b"\n"
    big = page * (2 * (1 << 20) // len(page) + 1)  # > 2 MB of real text
    html = b"<html><body><p>" + want[0][1].encode() + b"</p></body></html>"
    bomb = gzip.compress(b"<html><body>" + b"a" * (4 << 20) + b"</body></html>")
    f = tmp_path / "hostile.warc.wet"
    f.write_bytes(sample.read_bytes()
                  + _wet_record("http://declared.big/", big)                          # declared over the cap
                  + _wet_record("http://lies.about/its/length", b"short body", length=3 << 30)
                  + _wet_record("http://short.length/", big, length=100)             # resynced past the cap
                  + _http_record("http://gzip.bomb/", bomb, "gzip")                  # inflates past the cap
                  + _http_record("http://small.gzip/", gzip.compress(html), "gzip")
                  + _wet_record("http://last.page/", b"The last page is read."))
    report = ReadReport()
    got = [(url, text) for _, url, text, _, _ in read_documents(str(f), report, max_record_bytes=1 << 20)]
    assert got[:len(want)] == want
    assert [url for url, _ in got[len(want):]] == ["http://lies.about/its/length", "http://small.gzip/",
                                                   "http://last.page/"]
    assert got[len(want)][1] == "short body" and "Mark Twain" in got[len(want) + 1][1]
    assert (report.oversized, report.length_mismatch, report.truncated) == (3, base.length_mismatch + 1, 0)
    assert sum("--max-record-mb" in n for n in report.notes) == 3
    report = ReadReport()  # the default cap (64 MB) reads them all
    assert len(list(read_documents(str(f), report))) == len(want) + 6 and report.oversized == 0


@pytest.mark.slow
def test_a_600mb_record_line_or_page_is_read_past_in_bounded_memory(tmp_path, data):
    """Hostile sizes in every line-or-record reader (gzip-compressed, a few MB on disk): a 600 MB
    WET record, a 600 MB JSON line (CCNet and GitHub input) and a 600 MB Wikipedia page are
    skipped and counted under a 1 GB address-space limit, and what follows them is read."""
    import gzip

    text = (data / "books" / "pg345_dracula.txt").read_bytes()[:1 << 20].replace(b'"', b" ").replace(b"\\", b" ")
    text = b" ".join(text.split())
    n = 600
    with gzip.open(tmp_path / "big.warc.wet.gz", "wb", compresslevel=1) as g:
        g.write(_wet_record("http://first/", b"first page"))
        g.write(f"WARC/1.0\r\nWARC-Type: conversion\r\nContent-Length: {n * len(text)}\r\n\r\n".encode())
        for _ in range(n):
            g.write(text)
        g.write(b"\r\n\r\n" + _wet_record("http://after/", b"the page after"))
    with gzip.open(tmp_path / "big.jsonl.gz", "wb", compresslevel=1) as g:
        g.write(json.dumps({"url": "u1", "text": "first", "repo": "r", "path": "a.py",
                            "content": "x = 1\n", "license": "mit"}).encode() + b"\n")
        g.write(b'{"url": "u2", "repo": "r", "path": "b.py", "license": "mit", "text": "')
        for _ in range(n):
            g.write(text)
        g.write(b'"}\n' + json.dumps({"url": "u3", "text": "after", "repo": "r", "path": "c.py",
                                       "content": "y = 2\n", "license": "mit"}).encode() + b"\n")
    page = ("  <page>\n    <title>{t}</title>\n    <ns>0</ns>\n    <id>{i}</id>\n    <revision>\n"
            "      <text xml:space=\"preserve\">")
    with gzip.open(tmp_path / "enwiki-big.xml.gz", "wb", compresslevel=1) as g:
        g.write(b'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">\n  <siteinfo>\n'
                b"    <dbname>enwiki</dbname>\n  </siteinfo>\n")
        g.write(page.format(t="Before", i=1).encode() + b"Text before.</text>\n    </revision>\n  </page>\n")
        g.write(page.format(t="Huge", i=2).encode() + b"\n")
        for _ in range(n):
            g.write(text + b"\n")
        g.write(b"</text>\n    </revision>\n  </page>\n")
        g.write(page.format(t="After", i=3).encode() + b"Text after.</text>\n    </revision>\n  </page>\n")
        g.write(b"</mediawiki>\n")
    readers = {
        "big.warc.wet.gz": "from pipelines.ccnet import read_cc_file\n"
                           "print([d['url'] for d in read_cc_file({f!r}, inc)], c)",
        "big.jsonl.gz": "from pipelines.ccnet import read_cc_file\n"
                        "print([d['url'] for d in read_cc_file({f!r}, inc)], c)",
        "enwiki-big.xml.gz": "from filters.wikipedia import iter_pages\n"
                             "print([p.title for p in iter_pages({f!r}, skipped=lambda: inc('oversized_pages'))], c)",
    }
    prelude = "c = {{}}\ndef inc(k, n=1): c[k] = c.get(k, 0) + n\n"
    out = {}
    for name, code in readers.items():
        res, seconds = _bounded((prelude + code).format(f=str(tmp_path / name)), mem_gb=1.0, timeout=300)
        assert res.returncode == 0, (name, res.stderr[-2000:])
        out[name] = res.stdout.strip()
    assert out["big.warc.wet.gz"].startswith("['http://first/', 'http://after/'] {")
    assert "'oversized_records': 1" in out["big.warc.wet.gz"]
    assert out["big.jsonl.gz"].startswith("['u1', 'u3'] {") and "'oversized_records': 1" in out["big.jsonl.gz"]
    assert out["enwiki-big.xml.gz"] == "['Before', 'After'] {'oversized_pages': 1}"
    res, _ = _bounded("from pipelines.github import read_files\n"
                      f"g = {str(tmp_path / 'big.jsonl.gz')!r}\nprint([r[1][0] for r in read_files((g, [g]), None)])",
                      mem_gb=1.0, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "['a.py', 'c.py']", res.stderr[-2000:]


# ---------------------------------------------------------------- faults while running

@pytest.fixture
def small_disk(tmp_path):
    """A 600 KB filesystem (tmpfs; needs root, as the CI machine and this one run tests)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {res.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.slow
def test_a_full_disk_while_shards_are_written(small_disk, data):
    out = small_disk / "books"
    res = llama("books", data / "books", "--out", out)
    line = one_line_error(res, str(out), "the disk filled up while this step wrote its output",
                          "MB free with the partial output removed", "free space (or choose another --out)")
    assert "Traceback" not in res.stdout + res.stderr, line
    assert not (out / "_SUCCESS").exists() and not (out / "_tmp").exists()
    assert not [p for p in out.rglob("*") if p.is_file()]  # no partial shard, no stats.json(.tmp)


def _sdk_workers() -> int:
    """The local runner's SDK worker processes (``local_runner.name_worker``: forked from the
    launcher or started as processes of their own, each is named so)."""
    return sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() and _comm(p) == "sdk_worker")


def _comm(p: Path) -> str:
    try:
        return (p / "comm").read_text().strip()
    except OSError:
        return ""


@pytest.mark.slow
def test_ctrl_c_during_a_step_ends_in_one_line_and_leaves_the_output_unmarked(tmp_path, data):
    import signal

    before = _sdk_workers()
    out = tmp_path / "wiki"
    proc = subprocess.Popen([sys.executable, "-m", "cli", "-q", "wikipedia", str(data / "wikipedia"),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while _sdk_workers() <= before or not out.exists():  # the step has started and its workers are up
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines() == ["llama: interrupted (the output is left incomplete: no _SUCCESS)"]
    assert not (out / "_SUCCESS").exists()
    time.sleep(1.0)
    assert _sdk_workers() == before  # no worker left behind


@pytest.mark.slow
def test_a_dangling_symlink_among_a_repositorys_files(tmp_path, data):
    import shutil

    repos = tmp_path / "github"
    shutil.copytree(data / "github" / "antirez__linenoise", repos / "antirez__linenoise", symlinks=True)
    (repos / "antirez__linenoise" / "gone.c").symlink_to(tmp_path / "deleted.c")
    res = llama("github", repos, "--out", tmp_path / "out")
    one_line_error(res, "could not be read", "gone.c")
    assert not (tmp_path / "out" / "_SUCCESS").exists()


@pytest.mark.slow
def test_consumers_refuse_incomplete_outputs(tmp_path, corpus):
    import shutil

    for name in ("ccnet", "wikipedia"):
        shutil.copytree(corpus / name, tmp_path / name)
        (tmp_path / name / "_SUCCESS").unlink()  # as a killed run leaves it
    one_line_error(llama("train-tokenizer", tmp_path / "ccnet", "--vocab-size", 500, "--out", tmp_path / "tok"),
                   str(tmp_path / "ccnet"), "_SUCCESS")
    one_line_error(llama("train-quality-classifier", "--pages", corpus / "ccnet", "--wiki", tmp_path / "wikipedia",
                         "--out", tmp_path / "q"), str(tmp_path / "wikipedia"), "llama wikipedia")
    one_line_error(llama("quality", "--input", tmp_path / "ccnet", "--model", corpus / "quality" / "model.bin",
                         "--out", tmp_path / "cc"), str(tmp_path / "ccnet"), "llama ccnet")
    assert not any((tmp_path / d / "_SUCCESS").exists() for d in ("tok", "q", "cc"))


@pytest.mark.slow
def test_the_caps_are_flags(tmp_path, data):
    """The size caps real data never meets can be lowered (or raised) from the command line."""
    papers = tmp_path / "papers"
    papers.mkdir()
    _gz_stream_of_zeros(papers / "big.tar.gz", {"main.tex": 1000, "figure.eps": 64 << 20})
    res = llama("arxiv", papers, "--out", tmp_path / "arxiv", "--max-paper-mb", 8)
    assert res.returncode == 0, res.stderr[-3000:]
    stats = json.loads((tmp_path / "arxiv" / "stats.json").read_text())
    assert stats["counters"]["read"]["dropped_archive_too_large"] == 1 and stats["limits"]["max_scan_bytes"] == 8 << 20
    res = llama("stackexchange", data / "stackexchange", "--out", tmp_path / "se", "--max-post-mb", 0.002)
    assert res.returncode == 0, res.stderr[-3000:]
    read = json.loads((tmp_path / "se" / "stats.json").read_text())["counters"]["read"]
    assert read["dropped_row_too_large"] > 100 and read["questions"] + read["answers"] > 1000
    res = llama("c4", data / "cc" / "cc_net_test_sample.warc.wet", "--out", tmp_path / "c4", "--max-record-mb", 0.0003,
                "--lang-id", "fasttext")
    assert res.returncode == 0, res.stderr[-3000:]
    stats = json.loads((tmp_path / "c4" / "stats.json").read_text())
    assert stats["counters"]["read"]["oversized_records"] >= 1 and stats["config"]["max_record_mb"] == 0.0003
    enwiki = next((data / "wikipedia").glob("enwiki-*"))
    res = llama("wikipedia", enwiki, "--out", tmp_path / "wiki", "--max-page-mb", 0.02)
    assert res.returncode == 0, res.stderr[-3000:]
    read = json.loads((tmp_path / "wiki" / "stats.json").read_text())["counters"]["read"]
    assert read["oversized_pages"] > 5 and read["documents"] > 5


def test_a_quality_classifier_from_the_older_version_is_not_taken_for_a_current_one(tmp_path):
    from core import output
    from pipelines import quality

    pages = tmp_path / "ccnet"
    pages.mkdir()
    output.mark_complete(str(pages), {})
    old = tmp_path / "quality"  # what the version that trained on articles left
    old.mkdir()
    (old / "model.bin").write_bytes(b"x")
    output.mark_complete(str(old), {"positives": 106, "negatives": 31, "heldout_accuracy": 0.85, "language": "en"})
    with pytest.raises(InputError, match="made by an older version of this step.*--force"):
        quality.train(str(pages), str(old), wiki_dir=None, refs_dir=str(pages))
