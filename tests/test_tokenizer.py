"""Tokenizer (LLaMA trainer spec, checked against LLaMA's real vocabulary) and token shards."""
import json
import math
import re

import pyarrow.parquet as pq
import pytest

from core.errors import InputError
from tokenizer import Tokenizer

LLAMA_JSON = "models/llama-tokenizer-hf/llama-test-tokenizer.json"


@pytest.fixture(scope="module")
def ours(tokenizer_model):
    return Tokenizer(tokenizer_model)


@pytest.fixture(scope="module")
def llama(data):
    from tokenizers import Tokenizer as HF

    return HF.from_file(str(data / LLAMA_JSON))


@pytest.fixture(scope="module")
def udhr(data):
    return [json.loads(line) for line in (data / "langid" / "udhr_paragraphs.jsonl").open(encoding="utf-8")]


def _docs(corpus, *source):
    """Every document a source pipeline wrote, in id order (its shards' row order depends on
    which worker wrote what)."""
    files = sorted((corpus.joinpath(*source)).glob("*.parquet"))
    return sorted((r for f in files for r in pq.read_table(f).to_pylist()), key=lambda d: d["id"])


def test_model_carries_llama_trainer_spec(tokenizer_model):
    from tokenizer.tokenizer import model_proto

    m = model_proto(tokenizer_model)
    t, n = m.trainer_spec, m.normalizer_spec
    assert t.DESCRIPTOR.fields_by_name["model_type"].enum_type.values_by_number[t.model_type].name == "BPE"
    assert t.vocab_size == 8000 and len(m.pieces) == 8000
    assert t.split_digits and t.byte_fallback and t.allow_whitespace_only_pieces
    assert (t.unk_id, t.bos_id, t.eos_id, t.pad_id) == (0, 1, 2, -1)
    assert abs(t.character_coverage - 0.99995) < 1e-7 and t.max_sentence_length == 4192
    assert n.name == "identity" and n.add_dummy_prefix and not n.remove_extra_whitespaces


def test_digits_are_single_pieces_like_llama(ours, llama, corpus):
    lines = (ln for d in _docs(corpus, "wikipedia", "en") for ln in d["text"].split("\n"))
    numeric = [ln for ln in lines if re.search(r"\d{3,}", ln)][:50]
    assert len(numeric) == 50
    for line in numeric:
        for pieces in (ours.pieces(line), llama.encode(line, add_special_tokens=False).tokens):
            for p in pieces:
                if p.startswith("<0x"):
                    continue  # a byte piece: its name holds hex digits, not text digits
                digits = sum(ch.isdigit() for ch in p)
                assert digits == 0 or (len(p.lstrip("▁")) == 1 and p.lstrip("▁").isdigit()), p


def test_byte_fallback_round_trips_any_utf8(ours, llama, udhr):
    samples = [r["text"] for r in udhr[::20]] + ["emoji 🦙 runes ᚠᛇᚻ and a NUL-free \u2047 char"]
    byte_pieces = 0
    for text in samples:
        ids = ours.encode(text, bos=True, eos=True)
        assert ours.decode(ids) == text
        assert ours.unk_id not in ids
        byte_pieces += sum(p.startswith("<0x") for p in ours.pieces(text))
        assert llama.decode(llama.encode(text, add_special_tokens=False).ids) == text
    assert byte_pieces > 0  # scripts outside the small vocab really went through bytes
    assert ours.pieces("🦙") == llama.encode("🦙", add_special_tokens=False).tokens  # same bytes


def test_whitespace_is_kept_like_llama(ours, llama, data):
    code = (data / "github" / "google__python-fire" / "fire" / "core.py").read_text()[:4000]
    assert ours.decode(ours.encode(code)) == code
    assert "▁▁▁" in "".join(ours.pieces(code))           # whitespace-only pieces exist
    for text in ("  leading", "a  b", "x"):
        assert ours.pieces(text)[0].startswith("▁") and ours.decode(ours.encode(text)) == text
        assert llama.decode(llama.encode(text, add_special_tokens=False).ids) == text
    assert ours.pieces("  leading") == llama.encode("  leading", add_special_tokens=False).tokens


def test_too_small_corpus_is_a_clear_error(corpus, tmp_path):
    from tokenizer.train import train_tokenizer

    with pytest.raises(InputError, match=r"too small for a vocabulary of 32000.*--vocab-size \d+"):
        train_tokenizer([str(corpus / "arxiv")], tmp_path / "tok", vocab_size=32000)


# ------------------------------------------------------------------ token shards

def _run(corpus, tokenizer_model, out, mixture, **kw):
    from pipelines import tokenize

    return tokenize.run(tokenize.source_dirs(corpus, mixture), str(tokenizer_model), str(out), mixture, **kw)


def _mixture(**weights_epochs):
    from pipelines.tokenize import load_mixture

    full = load_mixture()
    return {k: dict(full[k], **({"weight": v[0], "epochs": v[1]} if v else {})) for k, v in weights_epochs.items()}


def test_packing_loses_no_token_and_round_trips(corpus, tokenizer_model, ours, tmp_path):
    mix = _mixture(arxiv=(1.0, 1.0))  # one source, one epoch: every unit exactly once
    m = _run(corpus, tokenizer_model, tmp_path / "t", mix, seq_len=300, val_fraction=0)
    docs = _docs(corpus, "arxiv", "arxiv")
    expected = {d["id"]: ours.encode(d["text"], bos=True, eos=True) for d in docs}
    assert m["tokens"] == sum(len(v) for v in expected.values())
    rows = pq.read_table(tmp_path / "t" / "part-00000.parquet").to_pylist()
    assert all(r["length"] == 300 for r in rows[:-1]) and 0 < rows[-1]["length"] <= 300
    units = {}
    for r in rows:
        bounds = r["doc_starts"][1:] + [r["length"]]
        for d, a, b in zip(r["doc_ids"], r["doc_starts"], bounds):
            units.setdefault(d, []).extend(r["tokens"][a:b])
    for doc_id, ids in expected.items():
        got = [t for k in sorted((u for u in units if u.startswith(doc_id + "#")),
                                 key=lambda u: int(u.rsplit("#", 1)[1])) for t in units[k]]
        assert got == ids
        assert ours.decode(got) == next(d["text"] for d in docs if d["id"] == doc_id)


def test_held_out_documents_are_a_split_of_their_own(corpus, tokenizer_model, ours, tmp_path):
    """`llama tokenize --val-fraction`: whole documents held out into val/, never in a training
    shard; the loader trains on every row of the training shards and validates on val/ only."""
    from pipelines.tokenize import held_out
    from train.data import TokenLoader

    mix = _mixture(stackexchange=(1.0, 1.0))  # one source, one epoch: every training unit once
    m = _run(corpus, tokenizer_model, tmp_path / "t", mix, seq_len=128, val_fraction=0.1, shard_tokens=50_000)
    docs = _docs(corpus, "stackexchange", "stackexchange")

    def doc_ids(files):
        return {d.rsplit("#", 1)[0] for f in files for r in pq.read_table(f).to_pylist() for d in r["doc_ids"]}

    train_files = sorted((tmp_path / "t").glob("part-*.parquet"))
    val_files = sorted((tmp_path / "t" / "val").glob("part-*.parquet"))
    trained, val = doc_ids(train_files), doc_ids(val_files)
    want = {d["id"] for d in docs if held_out(0, "stackexchange", d["id"], 0.1)}
    assert val == want and 0.05 * len(docs) < len(val) < 0.15 * len(docs)
    assert trained.isdisjoint(val) and trained | val == {d["id"] for d in docs}
    val_tokens = sum(len(ours.encode(d["text"], bos=True, eos=True)) for d in docs if d["id"] in val)
    assert m["val"]["documents"] == len(val) and m["val"]["tokens"] == val_tokens
    assert m["tokens"] + val_tokens == sum(len(ours.encode(d["text"], bos=True, eos=True)) for d in docs)
    assert set(m["shards"]) == {f.name for f in train_files}
    loader = TokenLoader(tmp_path / "t", 128, 1, val_fraction=0.05, prefetch=False)
    assert loader.epoch_len == sum(pq.read_metadata(f).num_rows for f in train_files)   # nothing withheld
    assert loader.val_cum[-1] == m["val"]["sequences"] == sum(pq.read_metadata(f).num_rows for f in val_files)
    first_val = pq.read_table(val_files[0]).column("tokens").to_pylist()[0]
    x, y = next(loader.val_batches(1))
    assert x[0].tolist() == first_val[:-1] and y[0].tolist() == first_val[1:]


def test_mixture_matches_proportions_within_sampling_error(corpus, tokenizer_model, tmp_path):
    mix = _mixture(wikipedia=None, books=None, stackexchange=None, github=None)
    unit, total = 64, 150_000
    m = _run(corpus, tokenizer_model, tmp_path / "t", mix, seq_len=unit, total_tokens=total)
    weight = sum(v["weight"] for v in mix.values())
    for s, v in m["sources"].items():
        target = mix[s]["weight"] / weight * total
        frac = target / v["source_tokens"]
        n_units = v["source_tokens"] / unit
        sigma = math.sqrt(n_units * (frac % 1) * (1 - frac % 1)) * unit
        assert abs(v["tokens"] - target) <= 4 * sigma + 2 * unit, (s, v, target, sigma)
    assert abs(sum(v["tokens"] for v in m["sources"].values()) - total) < 0.05 * total


def test_same_seed_same_shards(corpus, tokenizer_model, tmp_path):
    mix = _mixture(stackexchange=None, books=None)
    kw = dict(seq_len=128, total_tokens=40_000, shard_tokens=10_000)
    a = _run(corpus, tokenizer_model, tmp_path / "a", mix, seed=7, **kw)
    b = _run(corpus, tokenizer_model, tmp_path / "b", mix, seed=7, **kw)
    _run(corpus, tokenizer_model, tmp_path / "c", mix, seed=8, **kw)
    assert len(a["shards"]) >= 3 and a["shards"] == b["shards"]
    for name in a["shards"]:
        assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(tmp_path / "b" / name))
    assert any(not pq.read_table(tmp_path / "a" / n).equals(pq.read_table(tmp_path / "c" / n))
               for n in a["shards"] if (tmp_path / "c" / n).exists())


def test_inspect_decodes_token_shards(corpus, tokenizer_model, tmp_path):
    import subprocess
    import sys

    _run(corpus, tokenizer_model, tmp_path / "t", _mixture(stackexchange=None), seq_len=256)
    res = subprocess.run([sys.executable, "-m", "cli", "inspect", str(tmp_path / "t"), "-n", "1"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "stackexchange=" in res.stdout and "(100.0%)" in res.stdout
    body = res.stdout.split("--- sequence 0:", 1)[1]
    assert re.search(r"\b(beer|beers|brew\w*|hops)\b", body, re.I)  # decoded text, not ids
