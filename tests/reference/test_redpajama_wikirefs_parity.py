"""The URLs cited in Wikipedia's <ref> elements, as RedPajama's ``extract_urls.py`` extracts
them from the shared dumps (values recorded by ``generate_redpajama_wikirefs.py``; see
README.md here): the same URLs in the same order with ``reference=True``; with the default,
the documented fix -- the same URLs, none cut or tailed by an XML entity."""
import html
import json

import pytest

from filters.wikipedia import iter_pages
from filters.wikirefs import ref_urls
from tests.reference.generate_redpajama_wikirefs import ENTITY_TAIL, EXPECTED, digest, sample_dumps


@pytest.fixture(scope="module")
def expected():
    return {d["dump"]: d for d in json.loads(EXPECTED.read_text())["dumps"]}


def test_ref_urls_equal_redpajama_and_the_fix_only_mends_entities(expected, data):
    total = mended = 0
    for dump in sample_dumps(data):
        exp = expected[dump.name]
        pages = [p.text for p in iter_pages(str(dump))]  # every namespace: the script reads every line
        theirs = [u for text in pages for u in ref_urls(text, reference=True)]
        assert (len(theirs), digest(theirs)) == (exp["urls"], exp["sha1"]), dump.name
        ours = [u for text in pages for u in ref_urls(text)]
        assert len(ours) == len(theirs)
        for r, o in zip(theirs, ours):
            if "&" not in r:
                assert o == r
            else:  # theirs was cut at, or tailed by, an entity: ours is the decoded URL, whole
                assert o.startswith(html.unescape(ENTITY_TAIL.sub("", r)).rstrip(".:?-")) and not ENTITY_TAIL.search(o), (r, o)
                mended += o != r
        total += len(theirs)
    assert total == sum(d["urls"] for d in expected.values()) > 5000
    assert mended >= sum(d["entity_tails"] for d in expected.values()) > 600


@pytest.mark.slow
def test_extract_wiki_refs_step_lists_each_cited_page_once(tmp_path, data):
    """``llama extract-wiki-refs`` (Beam) on the English dump: one row per join key of the URLs
    ``ref_urls`` finds, citations counted, the same URLs as text for wget."""
    from collections import Counter

    import pyarrow.parquet as pq

    from pipelines import wikirefs

    wikirefs.run([str(data / "wikipedia")], str(tmp_path / "refs"))  # default: English dumps only
    rows = [r for f in sorted((tmp_path / "refs").rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    (enwiki,) = (data / "wikipedia").glob("enwiki-*")
    urls = [u for p in iter_pages(str(enwiki)) for u in ref_urls(p.text)]
    keys = Counter(wikirefs.url_key(u) for u in urls)
    assert {r["id"]: r["citations"] for r in rows} == keys and None not in keys
    assert len(rows) == len(keys) > 2500 and len(set(urls)) > len(keys)  # spellings of one page merged
    assert all(wikirefs.url_key(r["url"]) == r["id"] and r["url"] in urls for r in rows)
    text = [u for f in sorted((tmp_path / "refs").glob("urls-*.txt")) for u in f.read_text().splitlines()]
    assert sorted(text) == sorted(r["url"] for r in rows)
    assert (tmp_path / "refs" / "_SUCCESS").exists()
