"""RedPajama's Books dedup (SimHash, ``data_prep/book/dedup.py``) on the shared books (values
recorded by ``generate_redpajama_books.py``; see README.md here) and the project's MinHash
dedup (``pipelines/books.py``) find the same near-duplicate group and keep the same number
of books.  The kept copy of the group differs by a documented rule: RedPajama keeps the
first in its input order (meaningless on a distributed runner), the project the longest."""
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.reference.generate_redpajama_books import EXPECTED, book_texts


@pytest.fixture(scope="module")
def expected():
    return json.loads(EXPECTED.read_text())


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def test_books_dedup_drops_what_redpajamas_drops(expected, corpus, data):
    kept = {r["id"] for f in sorted((corpus / "books").rglob("*.parquet")) for r in pq.read_table(f).to_pylist()}
    books = [_stem(b) for b in expected["books"]]
    theirs = {_stem(b) for b in expected["kept"]}
    assert len(kept) == len(theirs) == len(books) - 1
    # the group: the two Frankenstein copies, whose SimHashes are equal (distance 0 <= k=5)
    (dropped_theirs,) = set(books) - theirs
    (dropped_ours,) = set(books) - kept
    group = {dropped_theirs, dropped_ours}
    assert group == {b for b in books if "frankenstein" in b}
    sims = {_stem(k): int(v, 16) for k, v in expected["simhash"].items()}
    a, b = sorted(group)
    assert bin(sims[a] ^ sims[b]).count("1") <= expected["settings"]["k"]
    # RedPajama keeps the first of the group, the project the longest
    texts = {_stem(k): v for k, v in book_texts(Path(data)).items()}
    assert dropped_theirs == max(group, key=lambda x: books.index(x))
    assert dropped_ours == min(group, key=lambda x: len(texts[x]))
