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
from pathlib import Path

from tqdm import tqdm

from filters.errors import InputError
from pipelines.schema import open_shard, shard_files

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


def iter_lines(files: list[Path], max_bytes: int):
    for f in tqdm(files, desc="tokenizer corpus", unit="shard"):
        pf = open_shard(f, "text", "document")
        for batch in pf.iter_batches(columns=["text"], batch_size=256):
            for text in batch.column(0).to_pylist():
                for line in (text or "").split("\n"):
                    if line.strip() and len(line.encode("utf-8")) <= max_bytes:
                        yield line


def train_tokenizer(inputs: list[str], out_dir: str | Path, vocab_size: int = 32000,
                    input_sentence_size: int = 2_000_000, seed: int = 0, force: bool = False,
                    **overrides) -> Path:
    import sentencepiece as spm

    out = Path(out_dir)
    model = out / "tokenizer.model"
    files = shard_files(inputs)  # bad input is an error even when a model exists
    if model.is_file() and not force:
        log.info("%s exists (use --force to retrain)", model)
        return model
    out.mkdir(parents=True, exist_ok=True)
    spec = dict(LLAMA_TRAINER_SPEC, vocab_size=vocab_size, input_sentence_size=input_sentence_size,
                num_threads=os.cpu_count() or 1, **overrides)
    prefix = out / "tokenizer.tmp"
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter_lines(files, spec["max_sentence_length"]),
            model_prefix=str(prefix), minloglevel=2, **spec)
    except RuntimeError as e:
        m = re.search(r"Vocabulary size (?:is )?too high \((\d+)\).*?<= (\d+)", str(e))
        if m:
            raise InputError(f"the corpus is too small for a vocabulary of {m.group(1)}: this sample "
                             f"supports at most {m.group(2)} pieces; use --vocab-size {m.group(2)} "
                             f"or less, or more data") from None
        raise InputError(f"sentencepiece failed: {e}") from None
    os.replace(f"{prefix}.vocab", out / "tokenizer.vocab")
    os.replace(f"{prefix}.model", model)  # last: its presence means "complete"
    return model
