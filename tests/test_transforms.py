"""Each composite transform on a TestPipeline with assert_that, on real text (the fast tier):
the ones not already unit-tested where their source is (C4Dedup and DedupUrls in
test_sources.py, Rejects.keep_if too, JoinPacked in test_scale.py)."""
import gzip
import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as Pipeline
from apache_beam.testing.util import assert_that, equal_to

from core.schema import make_doc
from pipelines import beam_utils
from pipelines.dedup import CCNetDedup, remove_lines


def _ccnet_docs(data):
    """The 16 pages of the CC-MAIN-2020-34 excerpt (they share 88 boilerplate lines)."""
    from pipelines.ccnet import read_cc_file

    return list(read_cc_file(str(data / "cc" / "CC-MAIN-2020-34_excerpt.warc.gz"), lambda *a: None))


def test_ccnet_dedup_removes_every_copy_of_a_shared_line(data):
    docs = _ccnet_docs(data)
    # cc_net's rule by hand: a line (normalised) in two or more documents leaves all of them
    from collections import Counter

    from filters.text import line_hash

    owners = Counter(h for d in docs for h in {line_hash(ln) for ln in d["text"].split("\n")})
    shared = {h for h, n in owners.items() if n > 1}
    assert shared, "the sample's pages share boilerplate lines"
    expected = []
    for d in docs:
        kept, _ = remove_lines(d["text"], shared)
        if kept:
            expected.append((d["id"], "\n".join(kept)))
    with Pipeline(runner="FnApiRunner") as p:
        out = p | beam.Create(docs) | CCNetDedup("dedup") | beam.Map(lambda d: (d["id"], d["text"]))
        assert_that(out, equal_to(expected))


def test_near_dedup_keeps_one_of_the_frankenstein_pair_and_rejects_the_other(data):
    from pipelines.books import NearDedup

    books = [make_doc(f.stem, "books", f.read_text(encoding="utf-8")) for f in sorted((data / "books").glob("*.txt"))]
    pair = {"pg42324_frankenstein_1831ed.with_pg_header", "pg42324_frankenstein_1831ed.header_stripped"}
    with Pipeline(runner="FnApiRunner") as p:
        rejects = beam_utils.Rejects("unused", enabled=True)
        kept = p | beam.Create(books) | NearDedup(0.9, rejects=rejects)
        rejected = rejects.outputs[0]
        ids = kept | "Ids" >> beam.Map(lambda d: d["id"])
        # the longer copy (the one with Gutenberg's header) is kept, as the longest of a cluster
        assert_that(ids, equal_to(sorted({b["id"] for b in books} - {"pg42324_frankenstein_1831ed.header_stripped"})))
        why = rejected | "Why" >> beam.Map(lambda d: (d["id"], d["metadata"]["rejected_reason"],
                                                      d["metadata"]["duplicate_of"]))
        assert_that(why, equal_to([("pg42324_frankenstein_1831ed.header_stripped", "near_duplicate",
                                    "pg42324_frankenstein_1831ed.with_pg_header")]), label="Rejected")
    assert len(pair) == 2


def test_expand_inputs_lists_files_inside_the_pipeline_and_reads_a_manifest(data, tmp_path):
    books = sorted(str(f) for f in (data / "books").glob("*.txt"))
    manifest = tmp_path / "books.paths.gz"
    manifest.write_bytes(gzip.compress("\n".join(f.split("/")[-1] for f in books[:2]).encode()))
    with Pipeline(runner="FnApiRunner") as p:
        listed = p | "Dir" >> beam_utils.ExpandInputs([str(data / "books")], (".txt",))
        assert_that(listed, equal_to(books), label="Listing")
        from_manifest = p | "Manifest" >> beam_utils.ExpandInputs([str(manifest)], (".txt",),
                                                                   prefix=str(data / "books") + "/")
        assert_that(from_manifest, equal_to(books[:2]), label="FromManifest")


@pytest.mark.parametrize("seed", [0, 1])
def test_seeded_sample_is_the_n_smallest_seeded_keys(data, seed):
    lines = [json.loads(x)["text"] for x in (data / "langid" / "udhr_paragraphs.jsonl").read_text().splitlines()]
    want = [x for _, x in sorted((beam_utils.seeded_key(seed, x), x) for x in lines)[:25]]
    with Pipeline(runner="FnApiRunner") as p:
        got = p | beam.Create(lines) | beam_utils.SeededSample(25, seed) | beam.combiners.ToList()
        assert_that(got, equal_to([want]))


def test_write_then_read_shards_round_trips_documents(data, tmp_path):
    docs = [make_doc(str(i), "udhr", json.loads(x)["text"], metadata={"n": i})
            for i, x in enumerate((data / "langid" / "udhr_paragraphs.jsonl").read_text().splitlines()[:300])]
    with Pipeline(runner="FnApiRunner") as p:
        p | beam.Create(docs) | beam_utils.WriteShards(str(tmp_path), lambda d: "udhr", target_bytes=20_000)
    assert len(list((tmp_path / "udhr").glob("part-*.parquet"))) > 1   # split by size
    with Pipeline(runner="FnApiRunner") as p:
        back = p | beam_utils.ReadShards([str(tmp_path)])  # a Parquet map comes back as (key, value) pairs
        back = back | beam.Map(lambda d: (d["id"], d["text"], dict(d["metadata"])["n"]))
        assert_that(back, equal_to([(d["id"], d["text"], d["metadata"]["n"]) for d in docs]))


def _page_titles(item, counter):
    from filters.wikipedia import iter_pages

    path, unit = item
    for page in iter_pages(path, None, unit):
        yield f"{page.dbname}:{page.page_id}"


def test_read_dumps_gives_every_page_of_every_dump_once(data):
    """Wikipedia's ReadDumps: every page of the five sample dumps (the UTF-16 one included), each once."""
    from filters.wikipedia import is_index, iter_pages
    from pipelines.wikipedia import ReadDumps

    dumps = sorted(str(f) for f in (data / "wikipedia").iterdir() if not is_index(str(f)))
    want = [f"{pg.dbname}:{pg.page_id}" for d in dumps for pg in iter_pages(d)]
    assert len(want) > 300
    with Pipeline(runner="FnApiRunner") as p:
        got = p | ReadDumps([str(data / "wikipedia")], _page_titles, documents=False)
        assert_that(got, equal_to(want))
