"""Regenerate ``ccnet_expected.json``: cc_net's own code run once on the shared CC sample.

    git clone https://github.com/facebookresearch/cc_net /tmp/cc_net
    git -C /tmp/cc_net checkout bda555bd1cf1ee2e0b925363e62a61cd46c8b60d
    make lm    # the test perplexity model (out/lm), built from the shared Wikipedia sample
    .venv/bin/python -m tests.reference.generate_ccnet --cc-net /tmp/cc_net

For every document of the shared CC sample (read by ``pipelines.ccnet.read_cc_file``) and of
cc_net's own output sample, it records what cc_net's mining chain (``cc_net/mine.py``)
computes from the text:

* ``split_by_lang.Classifier(top=1)`` with ``lid.176.ftz``: the label and the score rounded
  as cc_net rounds it (``scores.round(2)``);
* ``perplexity.MultiSentencePiece(normalize=True)`` then ``perplexity.DocLM(normalize=False)``
  with the test model (every document scored as English, so every text is a test vector):
  the perplexity, and the SHA-1 of the normalised text and of the pieces, so a mismatch says
  which of the two steps differs.

cc_net needs pandas and func_argparse only for its command line and the bucket CSV; they
are stubbed when absent.  The models' MD5s are recorded (the LM is built deterministically from the shared Wikipedia
sample: ``make lm`` on another machine gives the same files); the test checks them first.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "ccnet_expected.json"
CC_NET_COMMIT = "bda555bd1cf1ee2e0b925363e62a61cd46c8b60d"


def sample_documents(data: Path) -> list[dict]:
    """(id, text) of every document of the shared CC sample and of cc_net's output sample."""
    from core import fs
    from pipelines.ccnet import read_cc_file

    docs = [{"id": d["id"], "text": d["text"]} for f in fs.list_files(str(data / "cc"))
            if not f.endswith(".wat.gz") and "ccnet_output" not in f
            for d in read_cc_file(f, lambda *a: None)]
    with gzip.open(data / "cc" / "ccnet_output" / "cc_en_head-0174.jsonl.gz", "rt") as f:
        docs += [{"id": f"ccnet_output/{i}", "text": json.loads(line)["text"]} for i, line in enumerate(f)]
    return docs


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def sha1(s: str) -> str:
    return hashlib.sha1(s.encode("utf-8")).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cc-net", required=True, help=f"a checkout of facebookresearch/cc_net at {CC_NET_COMMIT[:7]}")
    a = ap.parse_args(argv)
    from core import paths

    data, lm = paths.shared_data(), paths.lm_dir()
    docs = sample_documents(data)  # (Beam imported before pandas is stubbed: Beam probes pandas)
    for name in ("pandas", "func_argparse"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    sys.path.insert(0, a.cc_net)
    from cc_net import perplexity, split_by_lang, text_normalizer

    lid_model = paths.lid_model()
    sp_model, lm_model = lm / "en.sp.model", lm / "en.arpa.bin"
    lid = split_by_lang.Classifier(model=lid_model, field="raw_content", out_field="language", top=1)
    sp = perplexity.MultiSentencePiece({"en": sp_model}, field="raw_content", output_field="tokenized",
                                       normalize=True)
    doclm = perplexity.DocLM({"en": lm_model}, field="tokenized", output_field="perplexity", normalize=False)
    rows = [{"id": d["id"], "raw_content": d["text"]} for d in docs]
    rows = [dict(r) for r in lid.map(dict(r) for r in rows)]
    out = []
    for d, r in zip(docs, rows):
        scored = next(doclm.map(sp.map([{"raw_content": d["text"], "language": "en"}])))
        out.append({"id": d["id"], "language": r["language"], "language_score": float(r["language_score"]),
                    "normalized_sha1": sha1(text_normalizer.normalize(d["text"])),
                    "tokenized_sha1": sha1(scored.get("tokenized", "")),
                    "perplexity": scored.get("perplexity")})
    EXPECTED.write_text(json.dumps({
        "reference": f"facebookresearch/cc_net@{CC_NET_COMMIT}",
        # the .sp.model file embeds its training input's temporary path; its vocabulary does not
        "models": {"lid.176.ftz": md5(lid_model), "en.sp.vocab": md5(lm / "en.sp.vocab"),
                   "en.arpa.bin": md5(lm_model)},
        "documents": out}, indent=1) + "\n")
    print(f"{len(out)} documents -> {EXPECTED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
