"""The project's SentencePiece model as a HuggingFace tokenizer (``tokenizer.json``), the way
``transformers``' ``LlamaConverter`` turns Meta's ``tokenizer.model`` into one: BPE over the
same pieces with byte fallback, merges ranked by the merged piece's score, a "▁" prepended
and spaces replaced by "▁" (SentencePiece's dummy prefix and whitespace), ``<s>`` added in
front.  Built from the SentencePiece processor's own API, not from its protobuf (the
``sentencepiece_model_pb2`` shipped with sentencepiece needs protobuf 7; Beam pins < 7).
The original ``tokenizer.model`` is copied beside it for Meta-style loaders.  The config names
``PreTrainedTokenizerFast``, which loads ``tokenizer.json`` as written: transformers 5's
``LlamaTokenizer`` replaces the normaliser with its own Metaspace and drops a leading space
(" leading" -> "▁leading", where SentencePiece gives "▁▁", "le", ...)."""
from __future__ import annotations

import json
from pathlib import Path

from core import fs


def hf_tokenizer(model_path: str):
    """A ``tokenizers.Tokenizer`` that encodes as the SentencePiece model at ``model_path``."""
    from tokenizers import Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE

    from .tokenizer import Tokenizer as SentencePiece

    sp = SentencePiece(model_path).sp  # staged when remote; a one-line error when not a model
    n = sp.vocab_size()
    vocab = {sp.id_to_piece(i): i for i in range(n)}
    score = {sp.id_to_piece(i): sp.get_score(i) for i in range(n)}
    mergeable = [i for i in range(n) if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i))]
    merges = []
    for i in mergeable:  # every split of a piece into two pieces is a merge, ranked by the piece's score
        piece = sp.id_to_piece(i)
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab:
                merges.append((score[piece], vocab[left], vocab[right], left, right))
    merges.sort(key=lambda m: (-m[0], m[1], m[2]))
    tok = Tokenizer(BPE(vocab, [(m[3], m[4]) for m in merges], unk_token=sp.id_to_piece(sp.unk_id()),
                        fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    bos = sp.id_to_piece(sp.bos_id())
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                       special_tokens=[(bos, sp.bos_id())])
    return tok, sp


def write_hf_tokenizer(model_path: str, out_dir: str | Path, max_length: int = 2048) -> list[str]:
    """``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json`` and the
    ``tokenizer.model`` itself in ``out_dir``; returns the file names."""
    from tokenizers import AddedToken

    tok, sp = hf_tokenizer(model_path)
    specials = {"bos_token": sp.id_to_piece(sp.bos_id()), "eos_token": sp.id_to_piece(sp.eos_id()),
                "unk_token": sp.id_to_piece(sp.unk_id())}
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials.values()])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", **specials, "add_bos_token": True, "add_eos_token": False,
         "legacy": True, "model_max_length": max_length, "clean_up_tokenization_spaces": False,
         "pad_token": None}, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    fs.copy_file(str(model_path), str(out / "tokenizer.model"))
    return ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"]
