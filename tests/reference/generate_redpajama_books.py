"""Regenerate ``redpajama_books_expected.json``: RedPajama's Books dedup run once on the shared
Gutenberg books.

    git clone https://github.com/togethercomputer/RedPajama-Data /tmp/rpj
    git -C /tmp/rpj checkout 45b37c2a1d1e495b0f48549ef3ce03ff029f7881   # branch rp_v1
    pip install --target /tmp/simhash --no-deps simhash==2.1.2
    .venv/bin/python -m tests.reference.generate_redpajama_books --redpajama /tmp/rpj --simhash /tmp/simhash

``data_prep/book/dedup.py`` runs as it is, as its own process, with its defaults (``-w 6 -k
5 -l 0``; ``-n 2`` processes), on its own input layout (``data/book/split/pg19_000`` ...
``pg19_014`` and ``books3_000`` ... ``books3_098``, JSON lines with ``text``): the shared
books, in sorted file order, in ``pg19_000``, every other split empty.  RedPajama's input is
PG-19, whose texts come without Project Gutenberg's header and licence; the shared books are
given with them removed by ``filters.books.strip_gutenberg`` (the project's own step before
dedup), so both dedups see the same texts.  The record holds the books it writes, and per
book the 64-bit SimHash of its features (``simhash.Simhash(get_features(text))``) so the
Hamming distances can be read off.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "redpajama_books_expected.json"
REDPAJAMA_COMMIT = "45b37c2a1d1e495b0f48549ef3ce03ff029f7881"
SCRIPT = "data_prep/book/dedup.py"


def sample_books(data: Path) -> list[Path]:
    return sorted((data / "books").glob("*.txt"))


def book_texts(data: Path) -> dict[str, str]:
    """{file name: text as the dedup sees it (Gutenberg header and licence removed)}"""
    from filters.books import strip_gutenberg

    out = {}
    for f in sample_books(data):
        raw = f.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        out[f.name] = strip_gutenberg(text)[0]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redpajama", required=True, help=f"a checkout of RedPajama-Data at {REDPAJAMA_COMMIT[:7]}")
    ap.add_argument("--simhash", required=True, help="a directory with the simhash package (pip --target)")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    a = ap.parse_args(argv)
    texts = book_texts(Path(a.data))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([a.simhash, os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "data" / "book" / "split"
        split.mkdir(parents=True)
        for i in range(15):
            (split / f"pg19_{i:03d}").write_text("")
        for i in range(99):
            (split / f"books3_{i:03d}").write_text("")
        (split / "pg19_000").write_text("".join(json.dumps({"name": n, "text": t}) + "\n" for n, t in texts.items()))
        subprocess.run([sys.executable, str(Path(a.redpajama) / SCRIPT), "-n", "2"], cwd=tmp, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        kept = [json.loads(line)["meta"]["name"]
                for line in (Path(tmp) / "data" / "book" / "book.jsonl").read_text().splitlines()]
        code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import dedup; from simhash import Simhash; "
                "texts = json.load(sys.stdin); "
                "print(json.dumps({n: format(Simhash(dedup.get_features(t)).value, '016x') for n, t in texts.items()}))")
        hashes = json.loads(subprocess.run([sys.executable, "-c", code, str(Path(a.redpajama) / "data_prep" / "book")],
                                           input=json.dumps(texts), capture_output=True, text=True, env=env,
                                           check=True).stdout)
    EXPECTED.write_text(json.dumps({"reference": f"togethercomputer/RedPajama-Data@{REDPAJAMA_COMMIT}:{SCRIPT}",
                                    "settings": {"w": 6, "k": 5, "l": 0}, "books": list(texts), "kept": kept,
                                    "simhash": hashes}, indent=1) + "\n")
    print(f"kept {len(kept)} of {len(texts)}: {kept}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
