"""`llama train-tokenizer`: SentencePiece BPE with LLaMA's trainer spec.

The defaults are the trainer_spec / normalizer_spec stored in LLaMA's tokenizer.model:
BPE, vocab 32000, split_digits, byte_fallback, identity normalisation,
add_dummy_prefix, no removal of extra white space, whitespace-only pieces allowed,
character_coverage 0.99995, max_sentence_length 4192, max piece length 16,
unk 0 / bos 1 / eos 2 / no pad.  The text is the lines of the curated document shards,
streamed to SentencePiece, which keeps a uniform sample of ``input_sentence_size``
lines (reservoir sampling) and shuffles it, so memory is bounded by the sample size,
not by the corpus.
"""
from __future__ import annotations

import logging
import os
import re

from tqdm import tqdm

from core import fs, lock, output
from core.output import open_shard
from core.errors import InputError

log = logging.getLogger(__name__)

LLAMA_TRAINER_SPEC = dict(
    model_type="bpe", vocab_size=32000, split_digits=True, byte_fallback=True,
    normalization_rule_name="identity", add_dummy_prefix=True, remove_extra_whitespaces=False,
    allow_whitespace_only_pieces=True, character_coverage=0.99995, max_sentence_length=4192,
    max_sentencepiece_length=16, split_by_unicode_script=True, split_by_whitespace=True,
    split_by_number=True, treat_whitespace_as_suffix=False, vocabulary_output_piece_score=True,
    hard_vocab_limit=True, shuffle_input_sentence=True, seed_sentencepiece_size=1_000_000,
    unk_id=0, bos_id=1, eos_id=2, pad_id=-1, unk_surface=" \u2047 ",
)


def document_shards(inputs: list[str]) -> list[str]:
    """The document shards of complete step outputs (or shard files named directly); an
    incomplete output, a missing path or a directory without shards is a one-line error."""
    files = []
    for item in inputs:
        if fs.isfile(item):
            files.append(item)
            continue
        if not fs.isdir(item):
            raise InputError(f"{item}: no such file or directory")
        output.require_complete(item, "this step output", "the step that makes it")
        found = output.shard_files(item)
        if not found:
            raise InputError(f"{item}: no document shards (.parquet) here")
        files += found
    return files


def shard_texts(path: str):
    """The ``text`` column of one document shard, streamed in batches."""
    pf = open_shard(path, "text", "document")
    for batch in pf.iter_batches(columns=["text"], batch_size=256, use_threads=False):
        yield from batch.column(0).to_pylist()


def text_lines(text: str | None, max_bytes: int):
    """The lines a tokenizer learns from: non-blank, at most ``max_bytes`` UTF-8 bytes
    (SentencePiece's ``max_sentence_length``)."""
    for line in (text or "").split("\n"):
        if line.strip() and len(line.encode("utf-8")) <= max_bytes:
            yield line


def iter_lines(files: list[str], max_bytes: int):
    for f in tqdm(files, desc="tokenizer corpus", unit="shard"):
        for text in shard_texts(f):
            yield from text_lines(text, max_bytes)


def train_tokenizer(inputs: list[str], out_dir: str, vocab_size: int = 32000,
                    input_sentence_size: int = 2_000_000, seed: int = 0, force: bool = False,
                    sample=None, **overrides) -> str:
    """Train and write ``out_dir/tokenizer.model`` (+ ``.vocab``) with the completion protocol
    (``core.output``); inputs and output may be local or remote.  Returns the model's path.

    ``sample(files, max_bytes)``, when given, returns the training lines (e.g. a bounded
    sample drawn by a Beam pipeline: ``pipelines.tokenize.train_tokenizer_sampled``);
    otherwise the shards' lines are streamed here and SentencePiece keeps a uniform
    ``input_sentence_size`` reservoir of them."""
    import sentencepiece as spm

    out_dir = str(out_dir)
    model = fs.join(out_dir, "tokenizer.model")
    files = document_shards([str(i) for i in inputs])  # bad input is an error even when a model exists
    if output.is_complete(out_dir) and not force:
        log.info("%s exists (use --force to retrain)", model)
        return model
    spec = dict(LLAMA_TRAINER_SPEC, vocab_size=vocab_size, input_sentence_size=input_sentence_size,
                num_threads=os.cpu_count() or 1, **overrides)
    with fs.scratch_dir("llama-tokenizer-") as work, lock.holding(out_dir, output.new_run_id()) as held:
        spm.set_random_generator_seed(seed)
        try:
            lines = (sample(files, spec["max_sentence_length"]) if sample is not None
                     else iter_lines(files, spec["max_sentence_length"]))
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines),
                model_prefix=fs.join(work, "tokenizer"), minloglevel=2, **spec)
        except RuntimeError as e:
            m = re.search(r"Vocabulary size (?:is )?too high \((\d+)\).*?<= (\d+)", str(e))
            if m:
                raise InputError(f"the corpus is too small for a vocabulary of {m.group(1)}: this sample "
                                 f"supports at most {m.group(2)} pieces; use --vocab-size {m.group(2)} "
                                 f"or less, or more data") from None
            raise InputError(f"sentencepiece failed: {e}") from None
        output.prepare_output(out_dir, force=True)
        fs.upload_dir(work, out_dir, ["tokenizer.vocab", "tokenizer.model"])
        held.mark_complete({"inputs": list(map(str, inputs)), "vocab_size": vocab_size,
                            "input_sentence_size": input_sentence_size, "seed": seed})
    return model
