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

import logging
import random
import re

import apache_beam as beam
from apache_beam.metrics import Metrics

from core import fs, output
from filters.errors import InputError

from . import beam_utils

log = logging.getLogger(__name__)
POS, NEG = "__label__wiki", "__label__cc"


def _prep(text: str, max_chars: int = 20000) -> str:
    return re.sub(r"\s+", " ", text[:max_chars].lower()).strip()


MAX_DOCS = 200_000  # per class; at most 20,000 characters each (``_prep``)


def train(wiki_dir: str, cc_inputs: list[str], out_dir: str, language: str = "en", holdout: float = 0.2,
          seed: int = 0, epoch: int = 20, force: bool = False, max_docs: int = MAX_DOCS,
          runner: str = "DirectRunner", beam_args=None) -> dict:
    """Train on a bounded sample: at most ``max_docs`` Wikipedia articles and as many CC pages,
    drawn inside a Beam pipeline (``beam_utils.SeededSample``), so the launcher holds only
    the sample, never the corpus."""
    out_dir = str(out_dir)
    output.require_complete(wiki_dir, "the Wikipedia output", "llama wikipedia")
    if output.is_complete(out_dir) and not force:
        return output.read_stats(out_dir)
    from .ccnet import check_inputs, read_cc_inputs

    check_inputs(cc_inputs)
    output.prepare_output(out_dir, force=True)

    def sources(p):
        wiki = (p | "Wiki" >> beam.io.ReadFromParquet(fs.join(wiki_dir, "*", "*.parquet"),
                                                       columns=["text", "language"])
                  | "Lang" >> beam.Filter(lambda r: language is None or r["language"] == language)
                  | "WikiText" >> beam.Map(lambda r: _prep(r["text"])))
        cc = read_cc_inputs(p, list(cc_inputs), "common_crawl") | "CCText" >> beam.Map(lambda d: _prep(d["text"]))
        return {"wiki": wiki, "cc": cc}

    samples = beam_utils.draw_samples(sources, max_docs, out_dir, runner, beam_args, seed)
    pos, neg = samples["wiki"], samples["cc"]
    if len(pos) < 5 or len(neg) < 5:
        raise InputError(f"too little data to train the quality classifier: {len(pos)} Wikipedia "
                         f"articles ({language}), {len(neg)} CC pages (need at least 5 of each)")
    rows = [(POS, t) for t in pos] + [(NEG, t) for t in neg]
    rng = random.Random(seed)
    rng.shuffle(rows)
    n_test = max(2, int(len(rows) * holdout))
    test, trainset = rows[:n_test], rows[n_test:]
    with fs.scratch_dir("llama-quality-") as work:
        train_file = fs.join(work, "train.txt")
        fs.write_text(train_file, "".join(f"{label} {text}\n" for label, text in trainset))
        import fasttext

        model = fasttext.train_supervised(train_file, epoch=epoch, lr=0.5, wordNgrams=2, dim=64,
                                          minCount=1, seed=seed, thread=1, verbose=0)
        model.save_model(fs.join(work, "model.bin"))
        correct = sum(model.predict(t)[0][0] == label for label, t in test)
        stats = {"positives": len(pos), "negatives": len(neg), "train": len(trainset), "test": len(test),
                 "heldout_accuracy": round(correct / len(test), 4), "language": language,
                 "max_docs": max_docs}
        fs.upload_dir(work, out_dir, ["model.bin"])
        output.mark_complete(out_dir, stats)
    return output.read_stats(out_dir)


def wiki_probability(model, text: str) -> float:
    labels, probs = model.predict(_prep(text), k=2)
    return float(dict(zip(labels, probs)).get(POS, 0.0))


class Score(beam.DoFn):
    def __init__(self, model_path: str, threshold: float):
        self.model_path, self.threshold = model_path, threshold

    def setup(self):
        import fasttext

        fasttext.FastText.eprint = lambda *a, **k: None
        self.model = fasttext.load_model(fs.stage(self.model_path, "quality model"))

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
    pattern = fs.join(in_dir, "*", "*.parquet")
    return (p | "Read" >> beam.io.ReadFromParquet(pattern)
              | "Score" >> beam.ParDo(Score(model_path, threshold))
              | "Shards" >> beam_utils.WriteShards(out_dir, lambda d: f"{d['language']}_{d['bucket']}",
                                                   target_bytes))


def run(in_dir, out_dir, model_path, threshold=0.25, target_bytes=256 << 20, runner="DirectRunner",
        beam_args=None, force=False, dry_run=False):
    output.require_complete(in_dir, "the CCNet output", "llama ccnet")
    model_dir = fs.dirname(model_path)
    if not fs.isfile(model_path):
        raise InputError(f"{model_path}: quality model not found (run `llama train-quality-classifier`)")
    output.require_complete(model_dir, "the quality classifier", "llama train-quality-classifier")
    return beam_utils.run_step(lambda p: build(p, in_dir, out_dir, model_path, threshold, target_bytes),
                               out_dir, runner, beam_args, force, dry=dry_run,
                               extra={"input": in_dir, "threshold": threshold, "model": model_path})
