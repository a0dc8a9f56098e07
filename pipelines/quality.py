"""The CC quality classifier: keep "Wikipedia-reference-like" CCNet pages.

LLaMA trains "a linear model to classify pages used as references in Wikipedia v.s.
randomly sampled pages".  Pages cited by Wikipedia are not in the bundled data, so the
positives here are Wikipedia article texts (from the Wikipedia pipeline's shards, one
language) and the negatives random Common Crawl pages (every page the CC reader gets
from the raw inputs, before any filtering) -- the same set-up as RedPajama's
``cc_classifier``.  The model is a fastText supervised linear classifier on lower-cased
unigrams+bigrams; a held-out split measures its accuracy.

``llama quality`` scores each CCNet document with P(wikipedia), stores it as the
``wiki_ref_score`` metadata field, and keeps documents at or above the threshold
(RedPajama: 0.25).
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from filters.errors import InputError

from . import beam_utils
from .schema import shard_files

log = logging.getLogger(__name__)
POS, NEG = "__label__wiki", "__label__cc"


def _prep(text: str, max_chars: int = 20000) -> str:
    return re.sub(r"\s+", " ", text[:max_chars].lower()).strip()


def _read_shard_texts(shard_dir: str, language: str | None) -> list[str]:
    texts = []
    for f in shard_files([shard_dir], hint=" (run the Wikipedia pipeline first)"):
        t = pq.read_table(f, columns=["text", "language"]).to_pydict()
        texts += [x for x, lang in zip(t["text"], t["language"]) if language is None or lang == language]
    return texts


def train(wiki_dir: str, cc_inputs: list[str], out_dir: str, language: str = "en", holdout: float = 0.2,
          seed: int = 0, epoch: int = 20, force: bool = False) -> dict:
    out = Path(out_dir)
    if beam_utils.is_complete(out) and not force:
        return json.loads((out / "stats.json").read_text())
    beam_utils.prepare_output(out, force=True)
    from .ccnet import expand_inputs, read_cc_file

    pos = _read_shard_texts(wiki_dir, language)
    neg = [d["text"] for f in expand_inputs(cc_inputs) for d in read_cc_file(f, lambda *a: None)]
    if len(pos) < 5 or len(neg) < 5:
        raise InputError(f"too little data to train the quality classifier: {len(pos)} Wikipedia "
                         f"articles ({language}), {len(neg)} CC pages (need at least 5 of each)")
    rows = [(POS, t) for t in pos] + [(NEG, t) for t in neg]
    rng = random.Random(seed)
    rng.shuffle(rows)
    n_test = max(2, int(len(rows) * holdout))
    test, trainset = rows[:n_test], rows[n_test:]
    train_file = out / "train.txt"
    with open(train_file, "w", encoding="utf-8") as f:
        for label, text in trainset:
            f.write(f"{label} {_prep(text)}\n")
    import fasttext

    model = fasttext.train_supervised(str(train_file), epoch=epoch, lr=0.5, wordNgrams=2, dim=64,
                                      minCount=1, seed=seed, thread=1, verbose=0)
    model.save_model(str(out / "model.bin"))
    train_file.unlink()
    correct = sum(model.predict(_prep(t))[0][0] == label for label, t in test)
    stats = {"positives": len(pos), "negatives": len(neg), "train": len(trainset), "test": len(test),
             "heldout_accuracy": round(correct / len(test), 4), "language": language}
    beam_utils.mark_complete(out, stats)
    return stats


def wiki_probability(model, text: str) -> float:
    labels, probs = model.predict(_prep(text), k=2)
    return float(dict(zip(labels, probs)).get(POS, 0.0))


class Score(beam.DoFn):
    def __init__(self, model_path: str, threshold: float):
        self.model_path, self.threshold = model_path, threshold

    def setup(self):
        import fasttext

        fasttext.FastText.eprint = lambda *a, **k: None
        self.model = fasttext.load_model(beam_utils.localize(self.model_path))

    def process(self, row):
        doc = dict(row, metadata=dict(row.get("metadata") or []))
        score = wiki_probability(self.model, doc["text"])
        doc["metadata"]["wiki_ref_score"] = f"{score:.4f}"
        if score < self.threshold:
            Metrics.counter("quality", "dropped").inc()
            return
        Metrics.counter("quality", "documents").inc()
        yield doc


def build(p, in_dir, out_dir, model_path, threshold, target_bytes=256 << 20):
    pattern = os.path.join(in_dir, "*", "*.parquet")
    return (p | "Read" >> beam.io.ReadFromParquet(pattern)
              | "Score" >> beam.ParDo(Score(model_path, threshold))
              | "Shards" >> beam_utils.WriteShards(out_dir, lambda d: f"{d['language']}_{d['bucket']}",
                                                   target_bytes))


def run(in_dir, out_dir, model_path, threshold=0.25, target_bytes=256 << 20, runner="DirectRunner",
        beam_args=None, force=False):
    if not beam_utils.is_complete(in_dir):
        raise InputError(f"{in_dir}: not a complete CCNet output (no {beam_utils.SUCCESS}); run `llama ccnet`")
    if not Path(model_path).is_file():
        raise InputError(f"{model_path}: quality model not found (run `llama train-quality-classifier`)")
    return beam_utils.run_step(lambda p: build(p, in_dir, out_dir, model_path, threshold, target_bytes),
                               out_dir, runner, beam_args, force,
                               extra={"input": in_dir, "threshold": threshold, "model": model_path})
