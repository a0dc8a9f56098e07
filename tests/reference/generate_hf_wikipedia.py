"""Regenerate ``hf_wikipedia_expected.json``: the HuggingFace ``wikipedia`` builder's own Beam
pipeline run once on every dump of the shared Wikipedia sample.

    git clone https://github.com/huggingface/datasets /tmp/hf-datasets
    git -C /tmp/hf-datasets show 9af57f27596614cc76bb815823707126585b1d46:datasets/wikipedia/wikipedia.py \\
        > /tmp/hf_wikipedia.py     # the builder's last version in that repository (v2.0.0, 2022-03-16)
    .venv/bin/python -m tests.reference.generate_hf_wikipedia --builder /tmp/hf_wikipedia.py

``Wikipedia._build_pcollection`` runs as it is (page selection, ``_parse_and_clean_wikicode``
with the language's namespace aliases, the empty-text filter) with mwparserfromhell as
installed here (its version is recorded: the parser decides what is markup).  Stubbed: the
``datasets`` library (only its base classes and logger are used at import) and
``xml.etree.cElementTree`` (removed in Python 3.9; an alias of ``xml.etree.ElementTree``).
The builder reads downloads, which have no file extension, so each dump is given to it
under a name without one (else Beam's FileSystems would decompress it before the
builder's own ``bz2.BZ2File`` does).  Per page the record holds the dump, page id, title,
the SHA-1 and length of the cleaned text; a dump the builder cannot read holds its error.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import sys
import tempfile
import types
import xml.etree.ElementTree
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "hf_wikipedia_expected.json"
BUILDER_COMMIT = "9af57f27596614cc76bb815823707126585b1d46"


def sample_dumps(data: Path) -> list[Path]:
    return sorted((data / "wikipedia").glob("*wiki-*.bz2"))


def language_of(dump: Path) -> str:
    return dump.name.split("wiki-", 1)[0]


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def load_builder(path: Path):
    class _Config:
        def __init__(self, *args, **kwargs):
            pass

    ds = types.ModuleType("datasets")
    ds.BuilderConfig, ds.BeamBasedBuilder = _Config, object
    ds.Version = lambda *a, **k: None
    ds.logging = types.SimpleNamespace(get_logger=lambda name: __import__("logging").getLogger(name))
    sys.modules.setdefault("datasets", ds)
    sys.modules.setdefault("xml.etree.cElementTree", xml.etree.ElementTree)
    spec = importlib.util.spec_from_file_location("hf_wikipedia_builder", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_builder(hf, dump: Path, lang: str) -> list[dict]:
    import apache_beam as beam

    with tempfile.TemporaryDirectory() as tmp:
        download = Path(tmp) / "download"  # as HF's download manager names files: no extension
        shutil.copyfile(dump, download)
        with beam.Pipeline(runner="DirectRunner") as p:
            _ = (hf.Wikipedia._build_pcollection(None, p, [str(download)], lang)
                 | beam.Map(lambda kv: json.dumps(kv[1], ensure_ascii=False))
                 | beam.io.WriteToText(str(Path(tmp) / "examples"), shard_name_template=""))
        return [json.loads(line) for line in (Path(tmp) / "examples").read_text("utf-8").splitlines()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--builder", required=True, help=f"datasets/wikipedia/wikipedia.py at {BUILDER_COMMIT[:7]}")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    a = ap.parse_args(argv)
    import mwparserfromhell

    hf = load_builder(Path(a.builder))
    dumps = []
    for dump in sample_dumps(Path(a.data)):
        lang = language_of(dump)
        try:
            pages = run_builder(hf, dump, lang)
        except Exception as e:  # the builder reads UTF-8 only
            dumps.append({"dump": dump.name, "language": lang, "error": f"{e.__class__.__name__}: {e}"[:300]})
            continue
        pages = sorted(({"id": ex["id"], "title": ex["title"], "sha1": sha1(ex["text"]), "chars": len(ex["text"])}
                        for ex in pages), key=lambda r: int(r["id"]))
        dumps.append({"dump": dump.name, "language": lang, "pages": pages})
        print(f"{dump.name}: {len(pages)} pages", file=sys.stderr)
    EXPECTED.write_text(json.dumps({
        "reference": f"huggingface/datasets@{BUILDER_COMMIT}:datasets/wikipedia/wikipedia.py",
        "mwparserfromhell": mwparserfromhell.__version__,
        "dumps": dumps}, ensure_ascii=False, indent=1) + "\n")
    print(f"-> {EXPECTED}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
