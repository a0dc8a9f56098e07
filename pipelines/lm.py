"""`llama lm`: train cc_net's perplexity model (SentencePiece + KenLM 5-gram) on Wikipedia.

The articles of the language's dump(s) are cleaned, normalised line by line
(cc_net's ``normalize``), a SentencePiece model is trained on them, the text is
tokenised and ``lmplz -o 5`` estimates the 5-gram, which ``build_binary`` turns
into the binary KenLM file that the CCNet pipeline loads.  The last
``holdout`` articles are kept out of training (written to ``heldout.txt``) so that
tests and reports can score unseen Wikipedia text.

Dumps and the output directory may be local or remote (``gs://``): the model is built in
a local scratch directory and then copied to the output with the completion protocol
(``core.output``: files, ``stats.json``, ``_SUCCESS`` last).
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys

import apache_beam as beam
from tqdm import tqdm

from core import fs, lock, output
from core.errors import InputError
from filters.perplexity import LMPaths
from filters.text import normalize
from filters.wikipedia import DumpInfo, clean_wikitext, dump_units, is_index, iter_pages

log = logging.getLogger(__name__)


def find_tool(name: str) -> str:
    here = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(here):
        return here
    found = shutil.which(name)
    if not found:
        raise InputError(f"{name}: KenLM estimation binary not found (run `make setup`)")
    return found


MAX_ARTICLES = 1_000_000


def articles_of(item, lang: str):
    """One dump (or one unit of a multistream dump) -> the cleaned texts of its articles in
    ``lang`` (a dump of another language yields nothing, counted)."""
    from apache_beam.metrics import Metrics

    path, unit = item
    info = DumpInfo()
    skipped = Metrics.counter("lm", "oversized_pages").inc
    for page in iter_pages(path, info, unit, skipped=skipped):
        if info.lang != lang:
            Metrics.counter("lm", f"skipped_dump_{info.lang or 'unknown'}").inc()
            return
        if page.ns != 0 or page.redirect:
            continue
        text = clean_wikitext(page.text, info)
        if text:
            Metrics.counter("lm", "articles").inc()
            yield text


def sample_articles(dumps: list[str], lang: str, n: int, out_dir: str, runner: str = "DirectRunner",
                    beam_args=None, seed: int = 0) -> list[str]:
    """A seeded sample of at most ``n`` cleaned articles, drawn by a Beam pipeline (dumps read
    in parallel units, cleaned in the workers)."""
    from pipelines import beam_utils

    def build(p):
        arts = (p | "Dumps" >> beam_utils.ExpandInputs(list(dumps), where=lambda f: not is_index(f))
                  | "Units" >> beam.FlatMap(dump_units)
                  | "Spread" >> beam.Reshuffle()
                  | "Articles" >> beam.FlatMap(articles_of, lang))
        return {"articles": arts}

    return beam_utils.draw_samples(build, n, out_dir, runner, beam_args, seed)["articles"]


def train_lm(dumps: list[str], out_dir: str, lang: str = "en", vocab_size: int = 8000,
             order: int = 5, holdout: int = 10, force: bool = False, max_articles: int = MAX_ARTICLES,
             runner: str = "DirectRunner", beam_args=None) -> LMPaths:
    """``max_articles`` cleaned articles, a seeded sample drawn by a Beam pipeline, are the
    training text; the last ``holdout`` of the sample are kept out (``heldout.txt``)."""
    out_dir = str(out_dir)
    paths = LMPaths.in_dir(out_dir, lang)
    if output.is_complete(out_dir) and not force:
        log.info("LM already built in %s (use --force to rebuild)", out_dir)
        return paths
    for d in dumps:
        if not fs.isfile(d):
            raise InputError(f"{d}: no such Wikipedia dump")
    with fs.scratch_dir("llama-lm-") as work, lock.holding(out_dir, output.new_run_id()) as held:  # one writer
        output.prepare_output(out_dir, force=True)
        articles = sample_articles(dumps, lang, max_articles, out_dir, runner, beam_args)
        _train(articles, dumps, work, lang, vocab_size, order, holdout)
        names = ["heldout.txt", f"{lang}.sp.model", f"{lang}.sp.vocab", f"{lang}.arpa.bin"]
        fs.upload_dir(work, out_dir, names)
        held.mark_complete({"dumps": list(dumps), "lang": lang, "vocab_size": vocab_size, "order": order,
                            "holdout": holdout, "articles": len(articles), "max_articles": max_articles})
    log.info("LM written to %s", out_dir)
    return paths


def _train(articles, dumps, work, lang, vocab_size, order, holdout):
    if len(articles) <= holdout:
        raise InputError(f"only {len(articles)} {lang} articles in {dumps}: too few to train an LM")
    train, held = articles[:-holdout], articles[-holdout:]
    local = lambda name: os.path.join(work, name)  # noqa: E731
    with open(local("heldout.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(held))
    norm_path = local(f"{lang}.train.norm.txt")
    with open(norm_path, "w", encoding="utf-8") as f:
        for art in train:
            for line in art.split("\n"):
                line = normalize(line)
                if line:
                    f.write(line + "\n")

    import sentencepiece as spm

    sp_prefix = local(f"{lang}.sp")
    spm.SentencePieceTrainer.train(
        input=norm_path, model_prefix=sp_prefix, vocab_size=vocab_size,
        model_type="unigram", character_coverage=0.9999, hard_vocab_limit=False,
        input_sentence_size=2_000_000, shuffle_input_sentence=True, num_threads=os.cpu_count() or 1,
        minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=sp_prefix + ".model")
    tok_path = local(f"{lang}.train.tok.txt")
    with open(norm_path, encoding="utf-8") as fin, open(tok_path, "w", encoding="utf-8") as fout:
        for line in tqdm(fin, desc="sentencepiece", unit="line"):
            fout.write(" ".join(sp.encode(line.rstrip("\n"), out_type=str)) + "\n")
    arpa = local(f"{lang}.arpa")
    with open(tok_path, "rb") as fin, open(arpa, "wb") as fout:
        proc = subprocess.run([find_tool("lmplz"), "-o", str(order), "--discount_fallback",
                               "-S", "20%", "-T", work], stdin=fin, stdout=fout, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise InputError(f"lmplz failed: {proc.stderr.decode(errors='replace').strip()[-400:]}")
    proc = subprocess.run([find_tool("build_binary"), arpa, local(f"{lang}.arpa.bin")], capture_output=True)
    if proc.returncode != 0:
        raise InputError(f"build_binary failed: {proc.stderr.decode(errors='replace').strip()[-400:]}")
