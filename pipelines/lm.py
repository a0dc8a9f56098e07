"""`llama lm`: train cc_net's perplexity model (SentencePiece + KenLM 5-gram) on Wikipedia.

The articles of the language's dump(s) are cleaned, normalised line by line
(cc_net's ``normalize``), a SentencePiece model is trained on them, the text is
tokenised and ``lmplz -o 5`` estimates the 5-gram, which ``build_binary`` turns
into the binary KenLM file that the CCNet pipeline loads.  The last
``holdout`` articles are kept out of training (written to ``heldout.txt``) so that
tests and reports can score unseen Wikipedia text.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

from filters.errors import InputError
from filters.perplexity import LMPaths
from filters.text import normalize
from filters.wikipedia import DumpInfo, iter_articles

log = logging.getLogger(__name__)


def find_tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise InputError(f"{name}: KenLM estimation binary not found (run `make setup`)")
    return found


def train_lm(dumps: list[str], out_dir: str | Path, lang: str = "en", vocab_size: int = 8000,
             order: int = 5, holdout: int = 10, force: bool = False) -> LMPaths:
    out = Path(out_dir)
    paths = LMPaths.in_dir(out, lang)
    if not force and paths.sp_model.is_file() and paths.kenlm_model.is_file():
        log.info("LM already built in %s (use --force to rebuild)", out)
        return paths
    out.mkdir(parents=True, exist_ok=True)
    articles = []
    for dump in dumps:
        info = DumpInfo()
        for page in tqdm(iter_articles(dump, info), desc=f"wiki {Path(dump).name[:28]}", unit="art"):
            if info.lang != lang:
                log.warning("%s: dump language %r is not %r; skipped", dump, info.lang, lang)
                break
            articles.append(page.text)
    if len(articles) <= holdout:
        raise InputError(f"only {len(articles)} {lang} articles in {dumps}: too few to train an LM")
    train, held = articles[:-holdout], articles[-holdout:]
    (out / "heldout.txt").write_text("\n\n".join(held), encoding="utf-8")
    norm_path = out / f"{lang}.train.norm.txt"
    with open(norm_path, "w", encoding="utf-8") as f:
        for art in train:
            for line in art.split("\n"):
                line = normalize(line)
                if line:
                    f.write(line + "\n")

    import sentencepiece as spm

    sp_prefix = out / f"{lang}.sp"
    spm.SentencePieceTrainer.train(
        input=str(norm_path), model_prefix=str(sp_prefix), vocab_size=vocab_size,
        model_type="unigram", character_coverage=0.9999, hard_vocab_limit=False,
        input_sentence_size=2_000_000, shuffle_input_sentence=True, num_threads=os.cpu_count() or 1,
        minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(sp_prefix) + ".model")
    tok_path = out / f"{lang}.train.tok.txt"
    with open(norm_path, encoding="utf-8") as fin, open(tok_path, "w", encoding="utf-8") as fout:
        for line in tqdm(fin, desc="sentencepiece", unit="line"):
            fout.write(" ".join(sp.encode(line.rstrip("\n"), out_type=str)) + "\n")
    arpa = out / f"{lang}.arpa"
    with open(tok_path, "rb") as fin, open(arpa, "wb") as fout:
        proc = subprocess.run([find_tool("lmplz"), "-o", str(order), "--discount_fallback",
                               "-S", "20%", "-T", str(out)], stdin=fin, stdout=fout,
                              stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise InputError(f"lmplz failed: {proc.stderr.decode(errors='replace').strip()[-400:]}")
    tmp_bin = str(paths.kenlm_model) + ".tmp"
    proc = subprocess.run([find_tool("build_binary"), str(arpa), tmp_bin], capture_output=True)
    if proc.returncode != 0:
        raise InputError(f"build_binary failed: {proc.stderr.decode(errors='replace').strip()[-400:]}")
    os.replace(tmp_bin, paths.kenlm_model)  # written last: its presence means "complete"
    for p in (arpa, tok_path, norm_path):
        p.unlink(missing_ok=True)
    log.info("LM written to %s", out)
    return paths
