"""The CC quality classifier: keep the CCNet pages that look like pages Wikipedia cites.

LLaMA trains "a linear model to classify pages used as references in Wikipedia v.s.
randomly sampled pages, and discarded pages not classified as references".  This is built
as RedPajama built it (togethercomputer/RedPajama-Data@45b37c2: ``data_prep/cc/README.md``,
``classifier/create_corpus.py``, ``classifier/classify.py``, ``filter/cc_classifier.sh``):

* **Positives**: pages cited in Wikipedia ``<ref>`` elements (``llama extract-wiki-refs``)
  that went through the CCNet steps, from the head and middle buckets, with at least 1,000
  characters.  Two ways in, both CCNet outputs: ``--ref-pages`` the cited URLs fetched into
  a WARC and run through ``llama ccnet`` (RedPajama's way: ``wget -i urls --warc-file``),
  every page of it; and/or ``--refs`` the URL list joined with the crawled pages of
  ``--pages`` by ``filters.wikirefs.url_key`` (a CoGroupByKey: no URL set in memory).
* **Negatives**: random pages of the same CCNet output (head and middle, as
  ``create_corpus.py`` takes them), as many as there are positives when there are that many;
  with ``--refs``, never a page that is itself cited.
* **Text** as RedPajama feeds fastText: ``" ".join(raw_content.splitlines())`` to train,
  ``" ".join(raw_content.strip().splitlines())`` to classify, no lower-casing; the model is
  ``fasttext supervised`` with its defaults (lr 0.1, dim 100, 5 epochs, unigrams).
* **Score**: ``wiki_prob`` = the top label's probability, or 1 minus it when the top label
  is ``__label__cc`` (``classify.py``); a page is kept at ``wiki_prob >= 0.25``.

Where too few cited pages are found (``--min-positives``, default 1,000; the bundled sample
has none: none of its 19 crawled URLs is cited by its English dump), the positives fall back to
Wikipedia articles of at least 1,000 characters (the Wikipedia output, ``--wiki``), with a
warning, and ``stats.json`` says so (``positives_from``, ``fallback``).

Deliberate differences, each fixing or bounding something in the reference:

* ``create_corpus.py`` means to drop repeated positives by digest but writes
  ``unique["digest"] = 1``, so it never drops one; here repeated texts are kept once.
* It takes as many negatives as it *read* positive lines, counting the ones it then skipped as
  short; here as many as it *kept*.
* Its training file is all positives, then all negatives; fastText's learning rate decays
  along the file, so the last class is learnt last.  Here the rows are shuffled (seeded).
* A held-out ``--holdout`` share (default 10%; 0 trains on all, as RedPajama) measures the
  classifier's accuracy.
* fastText trains on ``TRAIN_THREADS`` (10) threads, never fewer: fastText initialises its input
  matrix in ten blocks, one per training thread (``DenseMatrix::uniform``), so with fewer
  threads part of it is never initialised -- in fasttext-numpy2, whose matrix memory is not
  zeroed, that part is heap garbage (valgrind: uninitialised values in ``dotRow``), and training
  on the sample ended in ``Encountered NaN`` in ~1 run in 6 at any learning rate.  With ten
  threads (the reference ran fastText's default, 12) every block is initialised; the price is
  Hogwild's run-to-run variation, as in the reference.
* At most ``--max-docs`` documents per class, drawn inside a Beam pipeline (a seeded sample:
  the launcher holds only the sample), each cut to its first 100,000 characters.
"""
from __future__ import annotations

import logging
import random

import apache_beam as beam
from apache_beam.metrics import Metrics

from core import fs, lock, output
from core.errors import InputError
from filters.wikirefs import url_key

from . import beam_utils

log = logging.getLogger(__name__)
POS, NEG = "__label__wiki", "__label__cc"
MIN_CHARS = 1000           # create_corpus.py: positives shorter than this are skipped
MAX_CHARS = 100_000        # per training document (bounds the launcher's memory)
MAX_DOCS = 200_000         # per class
MIN_POSITIVES = 1000       # fewer cited pages than this: fall back to Wikipedia articles
BUCKETS = ("head", "middle")
TRAIN_THREADS = 10  # fastText's number of init blocks: fewer threads leave weights uninitialised
FASTTEXT = {"lr": 0.1, "dim": 100, "ws": 5, "epoch": 5, "minCount": 1, "wordNgrams": 1, "loss": "softmax"}


def train_text(text: str) -> str:
    """create_corpus.py's training line (without its label), cut to ``MAX_CHARS``."""
    return " ".join(text.splitlines())[:MAX_CHARS]


def predict_text(text: str) -> str:
    """classify.py's input to the model."""
    return " ".join(text.strip().splitlines())


def _pages(p, label, out_dir, language):
    return (p | f"Read{label}" >> beam_utils.ReadShards([out_dir], ["url", "text", "language", "bucket"],
                                                        step=f"read_{label.lower()}")
              | f"HeadMiddle{label}" >> beam.Filter(
                  lambda r: r["bucket"] in BUCKETS and (language is None or r["language"] == language)))


class _Label(beam.DoFn):
    """One join key's (cited?, pages): cited pages of >= MIN_CHARS are positives, pages of
    keys nobody cites are candidate negatives."""

    def process(self, kv):
        _, grouped = kv
        cited = any(True for _ in grouped["refs"])
        for packed in grouped["pages"]:
            text = beam_utils.unpack(packed)
            if not cited:
                yield beam.pvalue.TaggedOutput("neg", text)
            elif len(text) >= MIN_CHARS:
                Metrics.counter("quality", "cited_pages").inc()
                yield text
            else:
                Metrics.counter("quality", "cited_pages_short").inc()


def _keyed_page(r):
    key = url_key(r["url"] or "")
    return (key if key is not None else f"\0{r['url']}"), beam_utils.pack(r["text"])


def training_sources(p, pages_dir, refs_dir=None, ref_pages_dir=None, wiki_dir=None, language="en") -> dict:
    """The training texts as PCollections: ``ref`` (cited pages, each text once; absent without
    refs/ref pages), ``neg`` (the candidate negatives) and ``wiki`` (articles, with ``wiki_dir``)."""
    pages = _pages(p, "Pages", pages_dir, language)
    found = {}
    if refs_dir:
        refs = (p | "Refs" >> beam_utils.ReadShards([refs_dir], ["id"], column="id", kind="URL", step="read_refs")
                  | "RefKey" >> beam.Map(lambda r: (r["id"], None)))
        keyed = pages | "PageKey" >> beam.Map(_keyed_page)
        joined = ({"refs": refs, "pages": keyed} | "Join" >> beam.CoGroupByKey()
                  | "Label" >> beam.ParDo(_Label()).with_outputs("neg", main="pos"))
        found["cited"], negatives = joined.pos, joined.neg
    else:
        negatives = pages | "PageText" >> beam.Map(lambda r: r["text"])
    if ref_pages_dir:
        found["fetched"] = (_pages(p, "Fetched", ref_pages_dir, language)
                            | "FetchedText" >> beam.Map(lambda r: r["text"])
                            | "FetchedLong" >> beam.Filter(lambda t: len(t) >= MIN_CHARS))
    out = {"neg": negatives | "NegText" >> beam.Map(train_text)}
    if found:
        out["ref"] = (tuple(found.values()) | "Positives" >> beam.Flatten()
                      | "RefText" >> beam.Map(train_text) | "OnceEach" >> beam.Distinct())
    if wiki_dir:
        out["wiki"] = (p | "Wiki" >> beam_utils.ReadShards([wiki_dir], ["text", "language"], step="read_wiki")
                         | "WikiLang" >> beam.Filter(lambda r: language is None or r["language"] == language)
                         | "WikiLong" >> beam.Filter(lambda r: len(r["text"]) >= MIN_CHARS)
                         | "WikiText" >> beam.Map(lambda r: train_text(r["text"]))
                         | "WikiOnce" >> beam.Distinct())
    return out


def train(pages_dir: str, out_dir: str, *, refs_dir: str | None = None, ref_pages_dir: str | None = None,
          wiki_dir: str | None = None, language: str = "en", min_positives: int = MIN_POSITIVES,
          holdout: float = 0.1, seed: int = 0, force: bool = False, max_docs: int = MAX_DOCS,
          epoch: int = FASTTEXT["epoch"], lr: float = FASTTEXT["lr"], runner: str = "DirectRunner",
          beam_args=None) -> dict:
    """Train the classifier (see the module docstring); returns its stats.json.  ``epoch`` and
    ``lr`` are fastText's (RedPajama's defaults: 5 and 0.1, made for ~600k training lines; one
    line is one update, so a sample of a few hundred needs more epochs to learn anything)."""
    out_dir = str(out_dir)
    beam_utils.check_runner(runner)
    output.require_complete(pages_dir, "the CCNet output", "llama ccnet")
    if refs_dir:
        output.require_complete(refs_dir, "the cited-URL list", "llama extract-wiki-refs")
    if ref_pages_dir:
        output.require_complete(ref_pages_dir, "the CCNet output of the fetched cited pages",
                                "llama ccnet <the fetched WARC>")
    if wiki_dir:
        output.require_complete(wiki_dir, "the Wikipedia output", "llama wikipedia")
    if not (refs_dir or ref_pages_dir or wiki_dir):
        raise InputError("no positives: give --refs (llama extract-wiki-refs), --ref-pages (a CCNet output "
                         "of the fetched cited pages) or --wiki (Wikipedia articles, the fallback)")
    settings = {"pages": str(pages_dir), "refs": refs_dir, "ref_pages": ref_pages_dir, "wiki": wiki_dir,
                "language": language, "min_positives": min_positives, "max_docs": max_docs,
                "holdout": holdout, "seed": seed, "fasttext": dict(FASTTEXT, epoch=epoch, lr=lr)}
    if output.is_complete(out_dir) and not force:
        if is_outdated(out_dir):
            raise InputError(f"{out_dir}: a quality classifier made by an older version of this step (trained "
                             f"on Wikipedia articles, not cited pages); pass --force to retrain it")
        output.check_same_run(out_dir, settings)
        return output.read_stats(out_dir)
    with lock.holding(out_dir, output.new_run_id()) as held:  # one writer per output
        output.prepare_output(out_dir, force=True)
        return _train(out_dir, settings, runner, beam_args, held)


def is_outdated(out_dir: str) -> bool:
    """A complete classifier made by the older version of this step (articles as positives):
    its stats.json has no ``positives_from``."""
    return output.is_complete(out_dir) and "positives_from" not in (output.read_stats(out_dir) or {})


def _train(out_dir: str, settings: dict, runner, beam_args, held) -> dict:
    """The training itself, from ``settings`` (``train``'s record of its arguments)."""
    pages_dir, refs_dir, ref_pages_dir, wiki_dir = (settings[k] for k in ("pages", "refs", "ref_pages", "wiki"))
    language, min_positives, seed = settings["language"], settings["min_positives"], settings["seed"]
    holdout = settings["holdout"]
    samples = beam_utils.draw_samples(
        lambda p: training_sources(p, pages_dir, refs_dir, ref_pages_dir, wiki_dir, language),
        settings["max_docs"], out_dir, runner, beam_args, seed)
    cited = samples.get("ref", [])
    stats = {"referenced_pages": len(cited)}
    if len(cited) >= min_positives:
        pos, stats["positives_from"] = cited, "referenced_pages"
    elif wiki_dir:
        pos, stats["positives_from"] = samples["wiki"], "wikipedia_articles"
        stats["fallback"] = (f"only {len(cited)} cited pages of >= {MIN_CHARS} characters were found "
                             f"(need {min_positives}): the positives are Wikipedia articles instead")
        log.warning("quality classifier: %s", stats["fallback"])
    elif cited:
        pos, stats["positives_from"] = cited, "referenced_pages"
        stats["warning"] = (f"only {len(cited)} cited pages of >= {MIN_CHARS} characters were found "
                            f"(fewer than {min_positives}) and there is no --wiki to fall back on")
        log.warning("quality classifier: %s", stats["warning"])
    else:
        raise InputError(f"no cited page of >= {MIN_CHARS} characters in {pages_dir}"
                         f"{' or ' + ref_pages_dir if ref_pages_dir else ''}; give --wiki to fall back to "
                         f"Wikipedia articles")
    neg = samples["neg"][:len(pos)]  # create_corpus.py: as many random pages as positives
    if len(pos) < 5 or len(neg) < 5:
        raise InputError(f"too little data to train the quality classifier: {len(pos)} positives "
                         f"({stats['positives_from']}, {language}), {len(neg)} CC pages of the head and middle "
                         f"buckets (need at least 5 of each)")
    rows = [(POS, t) for t in pos] + [(NEG, t) for t in neg]
    random.Random(seed).shuffle(rows)
    n_test = int(len(rows) * holdout)
    if holdout and n_test < 2:
        n_test = 2
    test, trainset = rows[:n_test], rows[n_test:]
    with fs.scratch_dir("llama-quality-") as work:
        train_file = fs.join(work, "train.txt")
        with open(train_file, "w", encoding="utf-8") as fh:
            fh.writelines(f"{label} {text}\n" for label, text in trainset)
        model = fit(train_file, seed, settings["fasttext"])
        model.save_model(fs.join(work, "model.bin"))
        stats.update({"positives": len(pos), "negatives": len(neg), "train": len(trainset), "test": len(test),
                      **settings})
        if test:
            correct = sum(model.predict(t)[0][0] == label for label, t in test)
            stats["heldout_accuracy"] = round(correct / len(test), 4)
        fs.upload_dir(work, out_dir, ["model.bin"])
        held.mark_complete(stats)
    return output.read_stats(out_dir)


def fit(train_file: str, seed: int, params: dict):
    """``fasttext supervised`` on ``train_file`` with ``params`` on ``TRAIN_THREADS`` threads."""
    import fasttext

    try:
        return fasttext.train_supervised(train_file, seed=seed, thread=TRAIN_THREADS, verbose=0, **params)
    except RuntimeError as e:
        if "NaN" not in str(e):
            raise
        with open(train_file, encoding="utf-8") as fh:
            lines = sum(1 for _ in fh)
        raise InputError(f"fastText diverged (NaN) training the quality classifier at lr {params['lr']} "
                         f"({lines} lines): use a lower --lr") from None


def wiki_probability(model, text: str) -> float:
    """classify.py's ``wiki_prob``."""
    labels, probs = model.predict(predict_text(text))
    if not labels:
        return 0.0
    return float(probs[0]) if labels[0] == POS else 1.0 - float(probs[0])


class Score(beam.DoFn):
    """The classifier's probability that a page is a Wikipedia reference, in the metadata
    (``wiki_ref_score``); ``below_threshold`` decides."""

    def __init__(self, model_path: str):
        self.model_path = model_path

    def setup(self):
        import fasttext

        fasttext.FastText.eprint = lambda *a, **k: None
        self.model = fasttext.load_model(fs.stage(self.model_path, "quality model"))

    def process(self, row):
        doc = dict(row, metadata=dict(row.get("metadata") or []))
        score = wiki_probability(self.model, doc["text"])
        doc["metadata"]["wiki_ref_score"] = f"{score:.4f}"
        doc["_score"] = score  # the unrounded score for the threshold (not a schema column: never written)
        yield doc


def below_threshold(threshold: float, doc) -> str | None:
    return None if doc["_score"] >= threshold else "below_threshold"


def build(p, in_dir, out_dir, model_path, threshold, target_bytes=256 << 20, rejected=False):
    import functools

    rejects = beam_utils.Rejects(out_dir, rejected, target_bytes)
    scored = (p | "Read" >> beam_utils.ReadShards([in_dir], step="read")
                | "Score" >> beam.ParDo(Score(model_path)))
    kept = rejects.keep_if(scored, "quality", functools.partial(below_threshold, threshold))
    rejects.write()
    return kept | "Shards" >> beam_utils.WriteShards(out_dir, lambda d: f"{d['language']}_{d['bucket']}",
                                                     target_bytes)


def run(in_dir, out_dir, model_path, threshold=0.25, target_bytes=256 << 20, runner="DirectRunner",
        beam_args=None, force=False, dry_run=False, rejected=False):
    output.require_complete(in_dir, "the CCNet output", "llama ccnet")
    model_dir = fs.dirname(model_path)
    if not fs.isfile(model_path):
        raise InputError(f"{model_path}: quality model not found (run `llama train-quality-classifier`)")
    output.require_complete(model_dir, "the quality classifier", "llama train-quality-classifier")
    return beam_utils.run_step(lambda p: build(p, in_dir, out_dir, model_path, threshold, target_bytes, rejected),
                               out_dir, runner, beam_args, force, dry_run=dry_run,
                               extra={"input": in_dir, "threshold": threshold, "model": model_path,
                                      "model_run_id": model_run_id(model_path)})


def model_run_id(model_path: str) -> str | None:
    """The run that trained the classifier at ``model_path`` (a retrained model is a new input)."""
    return output.success_info(fs.dirname(model_path)).get("run_id")
