"""The scalable I/O layer: Beam's own flags, every core, in-pipeline input expansion, Beam's
file sink, dry runs, and every path through FileSystems (gs:// on a local GCS emulator,
s3:// on a local moto server)."""
import gzip
import json
import os
import subprocess
import sys

import pytest

from core import paths
from tests.emulators import environ, gcs_emulator, s3_server, upload_tree


def _llama(*args, env=None):
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})))


def _docs(out) -> list[tuple]:
    """(id, text, bucket) of every document shard under a local or remote output, sorted."""
    from core import output

    rows = []
    for f in output.shard_files(str(out)):
        rows += output.read_shard(f, ["id", "text", "bucket"]).to_pylist()
    return sorted((r["id"], r["text"], r["bucket"]) for r in rows)


def _tokens(out) -> list[list[int]]:
    from core import output

    rows = []
    for f in output.shard_files(str(out)):
        rows += output.read_shard(f, ["tokens"]).column("tokens").to_pylist()
    return sorted(rows)


# ------------------------------------------------------------------ flags and runners

def test_user_beam_flags_win_in_both_forms():
    from apache_beam.options.pipeline_options import DirectOptions

    from pipelines.beam_utils import pipeline_options
    from cli.common import join_beam_flags

    default = pipeline_options("DirectRunner", []).view_as(DirectOptions)
    assert default.direct_running_mode == "multi_processing"
    assert default.direct_num_workers == (os.cpu_count() or 1)
    argv = join_beam_flags(["ccnet", "in.wet", "--direct_num_workers", "1", "--direct_running_mode", "in_memory",
                            "--out", "o"])
    assert argv == ["ccnet", "in.wet", "--direct_num_workers=1", "--direct_running_mode=in_memory", "--out", "o"]
    user = pipeline_options("DirectRunner", argv[2:4]).view_as(DirectOptions)
    assert (user.direct_num_workers, user.direct_running_mode) == (1, "in_memory")


def test_local_runner_sends_group_outputs_in_chunks_with_the_same_elements(data, monkeypatch):
    """The local runner's GroupByKey output (pipelines.local_runner) is cut into element-
    aligned chunks; decoded, one worker's share is Beam's own, key by key, in order; with two,
    every key goes whole to one of them, in the buffer's order, and their bytes differ by
    less than the largest key's (Beam: every other key)."""
    from apache_beam import coders
    from apache_beam.runners.portability.fn_api_runner import execution as ex
    from apache_beam.transforms import core, window
    from apache_beam.utils.windowed_value import WindowedValue

    from pipelines import local_runner
    from pipelines.ccnet import read_cc_file

    assert local_runner.install() and local_runner.beam_partition is not None
    monkeypatch.setattr(local_runner, "CHUNK_BYTES", 4096)
    docs = [d for f in sorted((data / "cc").glob("*.warc*")) for d in read_cc_file(str(f), lambda *a: None)]
    pairs = [(d["url"][:12].encode(), ln.encode()) for d in docs for ln in d["text"].split("\n")]
    assert len(pairs) > 1000
    wcoder = window.GlobalWindows().get_window_coder()
    pre = coders.WindowedValueCoder(coders.TupleCoder([coders.BytesCoder(), coders.BytesCoder()]), wcoder)
    post_kv = coders.TupleCoder([coders.BytesCoder(), coders.IterableCoder(coders.BytesCoder())])
    post = coders.WindowedValueCoder(post_kv, wcoder)

    def grouped(partition, n):
        buf = ex.GroupingBuffer(pre, post, core.Windowing(window.GlobalWindows()))
        for i in range(0, len(pairs), 500):
            buf.append(b"".join(pre.get_impl().encode_nested(WindowedValue(kv, 0, [window.GlobalWindow()]))
                                for kv in pairs[i:i + 500]))
        parts = partition(buf, n)
        return [[(k, list(v)) for chunk in part for k, v in (w.value for w in post.get_impl().decode_all(chunk))]
                for part in parts], [len(chunk) for part in parts for chunk in part]

    biggest = max(len(ln) for _, ln in pairs) * 50
    ours, sizes = grouped(local_runner._chunked_partition, 1)
    beams, _ = grouped(local_runner.beam_partition, 1)
    assert ours == beams and len(sizes) > 2
    assert max(sizes) < 4096 + biggest
    ours, sizes = grouped(local_runner._chunked_partition, 2)
    beams, _ = grouped(local_runner.beam_partition, 1)
    assert sorted(ours[0] + ours[1]) == sorted(beams[0]) and all(ours)
    order = [k for k, _ in beams[0]]
    for part in ours:
        assert [k for k, _ in part] == sorted((k for k, _ in part), key=order.index)  # the buffer's order
    weight = [sum(len(k) + sum(map(len, v)) for k, v in part) for part in ours]
    largest = max(len(k) + sum(map(len, v)) for k, v in beams[0])
    assert abs(weight[0] - weight[1]) <= largest + 16 * len(order), weight
    assert len(sizes) > 4 and max(sizes) < 4096 + biggest


def test_local_runner_writes_a_join_flatten_straight_into_its_group(data):
    """A Flatten read only by a GroupByKey (JoinPacked) is not materialised by the local
    runner (pipelines.local_runner): no stage of its own, and every key still joins its
    records with all its items."""
    import hashlib

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.util import assert_that, equal_to

    from pipelines import local_runner
    from pipelines.beam_utils import JoinPacked, split_joined
    from pipelines.ccnet import read_cc_file

    docs = [d for f in sorted((data / "cc").glob("*.warc*")) for d in read_cc_file(str(f), lambda *a: None)]
    with gzip.open(data / "cc" / "ccnet_output" / "cc_en_head-0174.jsonl.gz", "rt") as f:  # cc_net's own output
        docs += [{"id": f"ccnet/{i}", "text": json.loads(ln)["text"]} for i, ln in enumerate(f)]
    items = [(d["id"], hashlib.md5(ln.encode()).digest()[:8]) for d in docs for ln in d["text"].split("\n")]
    assert len(docs) > 20 and len(items) > 1000
    expected = {d["id"]: (d["text"], []) for d in docs}
    for k, v in items:
        expected[k][1].append(v)

    def joined(kv):
        records, its = split_joined(kv[1], 8)
        return kv[0], [r["text"] for r in records], sorted(its)

    runner = local_runner.runner()
    p = beam.Pipeline(runner=runner, options=PipelineOptions(["--direct_running_mode=in_memory"]))
    out = ({"records": p | "Docs" >> beam.Create(docs), "items": p | "Items" >> beam.Create(items)}
           | "Join" >> JoinPacked(lambda d: d["id"]) | beam.Map(joined))
    assert_that(out, equal_to([(k, [t], sorted(v)) for k, (t, v) in expected.items()]))
    _, stages = runner.create_stages(p.to_runner_api())
    names = [s.name for s in stages]
    assert not [n for n in names if "Join/Tagged/Read" in n] and [n for n in names if "Join/Group/Read" in n]
    p.run().wait_until_finish()


def _run_reporting_pids(workers: int, marks):
    """A two-stage pipeline on the local runner; each element leaves a file named by the
    process that handled it in ``marks``."""
    import apache_beam as beam

    from pipelines.beam_utils import new_pipeline

    def mark(x):
        (marks / f"{os.getpid()}-{x}").touch()
        return x % 3, x

    p = new_pipeline("DirectRunner", [f"--direct_num_workers={workers}"])
    _ = p | beam.Create(range(40)) | beam.Map(mark) | beam.GroupByKey() | beam.MapTuple(lambda k, v: mark(100 + k))
    p.run().wait_until_finish()
    return {int(f.name.split("-")[0]) for f in marks.iterdir()}


def test_a_run_hands_its_stages_to_the_workers_started_ahead(tmp_path, monkeypatch):
    """local_runner.prestart: the workers wait, Beam imported, and the next run's stages run
    in them (no other process); one started in another environment is not used and exits."""
    from pipelines import local_runner

    local_runner.prestart(1)
    ahead = list(local_runner._waiting)
    assert len(ahead) == 1 and ahead[0].poll() is None
    (tmp_path / "a").mkdir()
    assert _run_reporting_pids(1, tmp_path / "a") == {ahead[0].pid}
    assert ahead[0].wait() == 0 and not local_runner._waiting

    local_runner.prestart(1)
    stale = local_runner._waiting[0]
    monkeypatch.setenv("LLAMA_TEST_STARTED_AFTER", "1")  # read at start: the waiting worker did not see it
    (tmp_path / "b").mkdir()
    used = _run_reporting_pids(1, tmp_path / "b")
    assert stale.wait(timeout=60) == 0 and stale.pid not in used and len(used) == 1


def test_the_command_line_forks_its_workers_from_itself(tmp_path):
    """From a single-threaded process (what ``llama`` is when it starts) the workers are
    forked once Beam is imported: they run the stages, are named sdk_worker, and exit with
    the run."""
    script = f"""
import json, os, pathlib, sys
from pipelines import local_runner
from tests.test_scale import _run_reporting_pids
local_runner.prestart(2, fork=True)
forked = [w for w in local_runner._waiting if isinstance(w, local_runner._Forked)]
import time
deadline = time.time() + 30
while True:  # a child names itself as it starts
    names = [open(f"/proc/{{w.pid}}/comm").read().strip() for w in forked]
    if set(names) == {{"sdk_worker"}} or time.time() > deadline:
        break
    time.sleep(0.05)
used = _run_reporting_pids(2, pathlib.Path({str(tmp_path)!r}))
print(json.dumps([sorted(w.pid for w in forked), names, sorted(used), [w.wait() for w in forked]]))
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=str(paths.REPO))
    assert res.returncode == 0, res.stderr[-3000:]
    forked, names, used, codes = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(forked) == 2 and names == ["sdk_worker"] * 2
    assert used and set(used) <= set(forked) and codes == [0, 0]


def test_unsupported_runner_is_refused_with_the_reason(tmp_path):
    res = _llama("books", "--runner", "DaskRunner", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "loses sink rows silently" in res.stderr and "Traceback" not in res.stderr
    res = _llama("books", "--runner", "DataflowRunner", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "--project" in res.stderr and "--temp_location" in res.stderr


def test_two_worker_processes_give_the_one_worker_output(data, lm_dir, tmp_path):
    """Dataflow's execution model locally (separate worker processes) computes what one
    in-process worker computes; small shards exercise the size-derived shard count."""
    base = ["ccnet", str(data / "cc"), "--lm-dir", str(lm_dir), "--target-shard-mb", "0.01", "-q"]
    one = _llama(*base, "--out", str(tmp_path / "one"), "--direct_num_workers", "1",
                 "--direct_running_mode", "in_memory")
    two = _llama(*base, "--out", str(tmp_path / "two"), "--direct_num_workers=2",
                 "--direct_running_mode=multi_processing")
    assert one.returncode == 0 and two.returncode == 0, one.stderr[-2000:] + two.stderr[-2000:]
    docs = _docs(tmp_path / "one")
    assert len(docs) == 12 and docs == _docs(tmp_path / "two")
    s1, s2 = (json.loads((tmp_path / d / "stats.json").read_text()) for d in ("one", "two"))
    assert s1["counters"] == s2["counters"]
    buckets = {k.split("/")[0] for k in s2["shards"]}
    counts = {}
    for b in buckets:  # every bucket's shards are part-00000..n-1 of n, and some bucket has several
        names = sorted(k for k in s2["shards"] if k.startswith(b + "/"))
        counts[b] = n = len(names)
        assert names == [f"{b}/part-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    assert max(counts.values()) > 1
    assert not (tmp_path / "two" / "_tmp").exists()
    marker = json.loads((tmp_path / "two" / "_SUCCESS").read_text())
    assert marker["run_id"] == s2["run_id"]


@pytest.mark.parametrize("step,inputs", [("c4", "cc"), ("books", "books")])
def test_shuffle_dedups_with_two_worker_processes_equal_one(step, inputs, data, tmp_path):
    """C4's tfds line/URL dedup and the books' MinHash LSH, as shuffles across two worker
    processes, keep exactly what one in-process worker keeps."""
    runs = {}
    for name, flags in (("one", ["-q", "--direct_num_workers=1", "--direct_running_mode=in_memory"]),
                        ("two", ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])):
        res = _llama(step, str(data / inputs), "--out", str(tmp_path / name), *flags)
        assert res.returncode == 0, res.stderr[-2000:]
        runs[name] = _docs(tmp_path / name)
    assert runs["one"] and runs["one"] == runs["two"]
    # the workers `llama` forked as it started ran the stages: nothing the step imported since
    # changed the environment they were started with (NLTK's import did, for C4's sentences)
    assert "a worker started ahead was not used" not in res.stderr, res.stderr[-2000:]


def test_dry_run_job_graph_does_not_grow_with_a_100k_line_manifest(data, lm_dir, tmp_path):
    """Common Crawl's wet.paths.gz lists ~90k files: the launcher must not put them in the graph."""
    first = str(data / "cc" / "whirlwind_CC-MAIN-2024-22" / "whirlwind.warc.wet.gz")
    sizes = {}
    for n in (1, 100_000):
        manifest = tmp_path / f"wet{n}.paths.gz"
        lines = [first] + [f"crawl-data/CC-MAIN-2024-22/segments/{i:06d}/wet/CC-MAIN-{i:08d}.warc.wet.gz"
                           for i in range(n - 1)]
        with gzip.open(manifest, "wt") as f:
            f.write("\n".join(lines) + "\n")
        res = _llama("ccnet", str(manifest), "--lm-dir", str(lm_dir), "--out", str(tmp_path / "o"),
                     "--input-prefix", "gs://commoncrawl/", "--dry-run")
        assert res.returncode == 0, res.stderr[-2000:]
        sizes[n] = json.loads(res.stdout[:res.stdout.rindex("}") + 1])["graph_bytes"]
    assert sizes[100_000] - sizes[1] < 200 and sizes[100_000] < 100_000
    assert not (tmp_path / "o").exists()  # a dry run writes nothing


def test_dataflow_job_is_built_without_submitting(data, lm_dir, tmp_path):
    res = _llama("ccnet", str(data / "cc"), "--lm-dir", str(lm_dir), "--out", "gs://bucket/out/ccnet",
                 "--runner", "DataflowRunner", "--project", "llama-repro-test", "--region", "us-central1",
                 "--temp_location", "gs://bucket/tmp", "--dry-run")
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads(res.stdout[:res.stdout.rindex("}") + 1])
    assert info["runner"] == "DataflowRunner" and 0 < info["dataflow_job_bytes"] < 200_000


def test_manifest_lines_are_read_through_the_prefix(data, tmp_path):
    from pipelines.beam_utils import expand_spec

    manifest = tmp_path / "wet.paths"
    manifest.write_text("whirlwind_CC-MAIN-2024-22/whirlwind.warc.wet.gz\ncc_net_test_sample.warc.wet\n")
    got = list(expand_spec(str(manifest), prefix=str(data / "cc") + "/"))
    assert got == [str(data / "cc" / "whirlwind_CC-MAIN-2024-22" / "whirlwind.warc.wet.gz"),
                   str(data / "cc" / "cc_net_test_sample.warc.wet")]
    assert list(expand_spec(str(data / "cc" / "*" / "*.wet.gz"))) == [got[0]]


# ------------------------------------------------------------------ object stores

@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    with gcs_emulator(tmp_path_factory.mktemp("gcs")) as env, environ(env):
        yield env


def test_every_step_on_gcs_equals_the_local_run(gcs, data, tmp_path):
    """lm -> ccnet -> c4 -> wikipedia -> tokenizer -> tokenize with every input, model and
    output on gs:// (the emulator), against the same steps on local disk."""
    from pipelines import c4, ccnet, lm, tokenize, wikipedia
    from tokenizer.train import train_tokenizer

    enwiki = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    b = "gs://llama-test/e2e"
    upload_tree(data / "cc", f"{b}/data/cc")
    upload_tree(data / "wikipedia" / enwiki, f"{b}/data/wikipedia")
    upload_tree(paths.lid_model(), f"{b}/models")
    roots = {"gcs": (f"{b}/data", f"{b}/out", f"{b}/models/lid.176.ftz"),
             "local": (str(data), str(tmp_path / "out"), str(paths.lid_model()))}
    for where, (d, out, lid) in roots.items():
        lm.train_lm([f"{d}/wikipedia/{enwiki}"], f"{out}/lm", holdout=10)
        ccnet.run(ccnet.CCNetConfig([f"{d}/cc"], f"{out}/ccnet", f"{out}/lm", lid))
        c4.run([f"{d}/cc"], f"{out}/c4", lid, rejected=True)
        wikipedia.run([f"{d}/wikipedia/{enwiki}"], f"{out}/wikipedia")
        train_tokenizer([f"{out}/ccnet", f"{out}/c4", f"{out}/wikipedia"], f"{out}/tokenizer", vocab_size=2000)
        mixture = {k: v for k, v in tokenize.load_mixture().items()
                   if k in ("c4", "wikipedia")}
        tokenize.run(tokenize.source_dirs(out, mixture), f"{out}/tokenizer/tokenizer.model", f"{out}/tokens",
                     mixture, seq_len=128)
    gcs_out, local_out = roots["gcs"][1], roots["local"][1]
    from core import fs, output

    assert fs.read_bytes(f"{gcs_out}/lm/en.arpa.bin") == fs.read_bytes(f"{local_out}/lm/en.arpa.bin")
    for step in ("ccnet", "c4", "wikipedia"):
        assert output.is_complete(f"{gcs_out}/{step}")
        got = _docs(f"{gcs_out}/{step}")
        assert got and got == _docs(f"{local_out}/{step}"), step
    assert len(_docs(f"{gcs_out}/ccnet")) == 12
    assert output.read_stats(f"{gcs_out}/ccnet")["counters"]["read"]["files"] == 5
    toks = _tokens(f"{gcs_out}/tokens")
    assert toks and toks == _tokens(f"{local_out}/tokens")
    m = fs.read_json(f"{gcs_out}/tokens/manifest.json")   # the training shards and the held-out split (val/)
    assert m["tokens"] + m["val"]["tokens"] == sum(map(len, toks)) and m["val"]["tokens"] > 0
    assert not fs.list_files(f"{gcs_out}/ccnet", limit=50) == [] and not any(
        "/_tmp/" in f for f in fs.glob(f"{gcs_out}/**"))
    res = _llama("inspect", f"{gcs_out}/ccnet", "-n", "1")
    assert res.returncode == 0 and "12 documents" in res.stdout, res.stderr[-2000:]
    # the run report reads the same counters, manifest and rejected rows from gs:// and writes there
    import report

    on_gcs, on_disk = report.collect(gcs_out), report.collect(local_out)
    assert on_gcs.pop("out") == gcs_out and on_disk.pop("out") == local_out
    shown = ("tokens", "sequences", "seq_len", "vocab_size", "sources")   # what the report shows of the manifest
    tok_gcs, tok_disk = ({k: m[k] for k in shown} for m in (on_gcs.pop("tokens"), on_disk.pop("tokens")))
    assert tok_gcs == tok_disk and tok_gcs["tokens"] > 0
    # which few rejects a reason shows depends on the rows' order in their shards (the runner's
    # bundles): the same reasons and counts, and every example shown is a reject of that reason
    ex_gcs, ex_disk = (d["rejected"].pop("c4") for d in (on_gcs, on_disk))
    assert on_gcs == on_disk and ex_gcs["count"] == ex_disk["count"] > 0
    assert set(ex_gcs["examples"]) == set(ex_disk["examples"])
    rows = [r for f in output.shard_files(f"{local_out}/c4/_rejected")
            for r in output.read_shard(f, ["id", "metadata"]).to_pylist()]
    kept_aside = {(r["id"], "{rejected_step}/{rejected_reason}".format(**dict(r["metadata"]))) for r in rows}
    assert all((e["id"], reason) in kept_aside for reason, es in ex_gcs["examples"].items() for e in es)
    assert set(on_gcs["sources"]) == {"c4", "wikipedia"}   # common_crawl's last step (cc/) did not run here
    html = fs.read_text(report.write(gcs_out))
    assert html.count("<section") == len(report.SECTIONS) and "c4/_rejected/" in html


def test_missing_gcs_input_is_an_error_not_an_empty_success(gcs, lm_dir, tmp_path):
    res = _llama("ccnet", "gs://llama-test/nothing-here", "--lm-dir", str(lm_dir), "--out",
                 "gs://llama-test/out-missing")
    assert res.returncode == 2 and "gs://llama-test/nothing-here: no such file or directory" in res.stderr
    from core import output

    assert not output.is_complete("gs://llama-test/out-missing")


def test_models_are_staged_once_per_machine_concurrently(gcs, tmp_path):
    from core import fs

    upload_tree(paths.lid_model(), "gs://llama-test/stage")
    code = ("import sys; from core import fs; print(fs.stage('gs://llama-test/stage/lid.176.ftz'))")
    env = dict(os.environ, LLAMA_CACHE=str(tmp_path / "cache"))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(4)]
    outs = {p.communicate()[0].strip() for p in procs}
    assert len(outs) == 1
    staged = outs.pop()
    assert open(staged, "rb").read() == paths.lid_model().read_bytes()
    assert not [f for f in os.listdir(os.path.dirname(staged)) if f.startswith(".staging-")]
    assert fs.stage(str(paths.lid_model())) == str(paths.lid_model())  # local: used in place


def test_a_step_on_s3_equals_the_local_run(data, tmp_path):
    from pipelines import books

    files = ["pg42324_frankenstein_1831ed.with_pg_header.txt", "pg42324_frankenstein_1831ed.header_stripped.txt",
             "pg345_dracula.txt"]
    local_in = tmp_path / "books"
    local_in.mkdir()
    for f in files:
        (local_in / f).symlink_to(data / "books" / f)
    books.run([str(local_in)], str(tmp_path / "out"))
    with s3_server() as env, environ(env):
        upload_tree(local_in, "s3://llama-test/books")
        books.run(["s3://llama-test/books"], "s3://llama-test/out/books")
        got = _docs("s3://llama-test/out/books")
    assert len(got) == 2 and got == _docs(tmp_path / "out")


def test_dataflow_job_is_staged_on_gcs_without_submitting(gcs, data, tmp_path):
    """The code package (with its data files) and the pipeline reach the staging bucket as a
    Dataflow submission would put them there; no job is created (no Dataflow API here)."""
    import tarfile

    from core import fs

    upload_tree(data / "books" / "pg345_dracula.txt", "gs://llama-test/stage-books")
    res = _llama("books", "gs://llama-test/stage-books", "--out", "gs://llama-test/out/stage-books",
                 "--runner", "DataflowRunner", "--project", "llama-repro-test", "--region", "us-central1",
                 "--temp_location", "gs://llama-test/tmp", "--dry-run", "--stage")
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads(res.stdout[:res.stdout.rindex("}") + 1])
    names = {fs.basename(f) for f in info["staged"]}
    assert {"pipeline.pb", "workflow.tar.gz"} <= names
    pkg = tmp_path / "workflow.tar.gz"
    pkg.write_bytes(fs.read_bytes(next(f for f in info["staged"] if f.endswith("workflow.tar.gz"))))
    members = tarfile.open(pkg).getnames()
    for needed in ("core/fs.py", "pipelines/ccnet.py", "filters/data/"):
        assert any(needed in m for m in members), needed
    assert not fs.exists("gs://llama-test/out/stage-books/_SUCCESS")
