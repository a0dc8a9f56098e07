"""The source registry (pipelines/registry.py): every registered source gets its command, its
DAG task, its place in the mixture and in the Makefile's list -- and a new source is one module
plus one registry line (the README's example, tests/example_source.py, run for real)."""
import dataclasses
import inspect
import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import cli
from core.errors import InputError
from core.options import fields_of
from pipelines import registry, tokenize

PIPELINES = [s.name for s in registry.pipelines()]


@pytest.mark.parametrize("name", PIPELINES)
def test_every_option_is_a_run_argument_and_a_flag(name):
    src = registry.get(name)
    cls = src.options()
    params = inspect.signature(src.load().run).parameters
    assert dataclasses.is_dataclass(cls) and {f.name for f in fields_of(cls)} <= set(params), name
    for f in fields_of(cls):  # the dataclass's default is run()'s, so the CLI, the DAG and a caller agree
        assert params[f.name].default == f.default, (name, f.name)
        assert f.metadata["help"], (name, f.name)
    parser = cli.build_parser(name)
    args = parser.parse_args([name])
    from cli.common import options_from

    assert options_from(args, cls) == cls()   # no flag given: the defaults
    flags = {s for a in parser._subparsers._group_actions[0].choices[name]._actions for s in a.option_strings}
    assert {"--" + f.name.replace("_", "-") for f in fields_of(cls)} <= flags


def test_the_mixture_is_the_registry_and_a_file_may_override_it(tmp_path):
    mix = tokenize.load_mixture()
    assert list(mix) == registry.names() and abs(sum(m["weight"] for m in mix.values()) - 1) < 1e-9
    assert mix["common_crawl"] == {"weight": pytest.approx(0.67 / sum(s.weight for s in registry.SOURCES)),
                                   "epochs": 1.10, "dir": "cc"}
    f = tmp_path / "mix.json"
    f.write_text(json.dumps({"sources": {"books": {"weight": 1, "epochs": 2}, "arxiv": {"weight": 3, "epochs": 1}}}))
    assert tokenize.load_mixture(str(f)) == {"books": {"weight": 0.25, "epochs": 2, "dir": "books"},
                                             "arxiv": {"weight": 0.75, "epochs": 1, "dir": "arxiv"}}
    f.write_text(json.dumps({"sources": {"bookz": {"weight": 1, "epochs": 2}}}))
    with pytest.raises(InputError, match="'bookz' is not a registered source"):
        tokenize.load_mixture(str(f))


def test_dag_tasks_and_make_list_follow_the_registry(capsys):
    from dags import steps

    graph = {name: up for name, _, up in steps.graph()}
    assert set(PIPELINES) <= set(graph) and set(PIPELINES) <= set(graph["tokenizer"])
    registry.main(["commands", "out"])
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[1] for ln in lines] == PIPELINES
    assert "-q books --out out/books --rejected" in lines and "-q stackexchange --out out/stackexchange" in lines


@pytest.fixture
def udhr_registered(monkeypatch):
    src = registry.Source("udhr", "example_source", "langid", 0.01, 1.0, "UDHR paragraphs (the README's example)")
    monkeypatch.setattr(registry, "SOURCES", registry.SOURCES + (src,))
    monkeypatch.setattr(registry, "BY_NAME", dict(registry.BY_NAME, udhr=src))
    # the local runner's worker processes import it too (a real source lives in pipelines/)
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    return src


@pytest.mark.slow
def test_a_new_source_is_one_module_and_one_registry_line(udhr_registered, data, tmp_path, capsys):
    from dags import steps

    out = tmp_path / "udhr"
    assert cli.main(["-q", "udhr", str(data / "langid"), "--out", str(out), "--min-chars", "200",
                     "--rejected"]) == 0
    paragraphs = [json.loads(x) for x in (data / "langid" / "udhr_paragraphs.jsonl").read_text().splitlines()]
    kept = pq.read_table(out / "udhr").to_pylist()
    rejected = pq.read_table(out / "_rejected" / "length").to_pylist()
    assert sorted(r["id"] for r in kept) == sorted(p["id"] for p in paragraphs if len(p["text"]) >= 200)
    assert len(rejected) == len(paragraphs) - len(kept) and all(len(r["text"]) < 200 for r in rejected)
    assert "udhr" in {n for n, _, up in steps.graph()} and "udhr" in dict(
        (n, up) for n, _, up in steps.graph())["tokenizer"]
    assert tokenize.load_mixture()["udhr"]["dir"] == "udhr"
    registry.main(["commands", "o"])
    assert capsys.readouterr().out.splitlines()[-1] == "-q udhr --out o/udhr --rejected"


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_source_wrote_its_documents(corpus, name):
    """Each source of the registry, as the corpus fixture ran it from there: complete, the
    document schema, every row tagged with the source's name, the counters' totals true."""
    from core import output
    from core.schema import DOC_SCHEMA

    where = corpus / registry.get(name).out_dir
    assert output.is_complete(str(where))
    import pyarrow as pa

    table = pa.concat_tables(pq.read_table(f) for f in output.shard_files(str(where)))  # not _rejected/
    assert table.schema.equals(DOC_SCHEMA, check_metadata=False) and table.num_rows > 0
    assert set(table.column("source").to_pylist()) == {name}
    written = output.read_stats(str(where))["counters"]["output"]
    assert written["documents"] == table.num_rows
    assert written["bytes"] == sum(len(t.encode()) for t in table.column("text").to_pylist())
