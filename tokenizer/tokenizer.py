"""The one Tokenizer class of the project (SentencePiece, LLaMA's special-token layout)."""
from __future__ import annotations

from pathlib import Path

from core.errors import InputError


class Tokenizer:
    def __init__(self, model_path: str | Path):
        import sentencepiece as spm

        from core import fs

        path = str(model_path)
        if not fs.isfile(path):
            raise InputError(f"{path}: tokenizer model not found (run `make tokenizer`)")
        try:
            self.sp = spm.SentencePieceProcessor(model_file=fs.stage(path, "tokenizer model"))
        except (RuntimeError, OSError) as e:
            raise InputError(f"{path}: not a SentencePiece model ({e})") from None
        self.path = path
        self.vocab_size = self.sp.vocab_size()
        self.bos_id, self.eos_id = self.sp.bos_id(), self.sp.eos_id()
        self.pad_id, self.unk_id = self.sp.pad_id(), self.sp.unk_id()

    def encode(self, text: str, bos: bool = True, eos: bool = False) -> list[int]:
        ids = self.sp.encode(text)
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def encode_batch(self, texts: list[str], bos: bool = True, eos: bool = False) -> list[list[int]]:
        out = self.sp.encode(texts)
        return [([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else []) for ids in out]

    def decode(self, ids) -> str:
        specials = {self.bos_id, self.eos_id, self.pad_id}
        return self.sp.decode([int(i) for i in ids if int(i) not in specials])

    def pieces(self, text: str) -> list[str]:
        return self.sp.encode(text, out_type=str)

    def __getstate__(self):  # picklable for Beam: reload from the path
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])


def model_proto(path: str | Path):
    """The parsed ``ModelProto`` (trainer_spec, normalizer_spec, pieces) of a SentencePiece model.

    sentencepiece's own ``sentencepiece_model_pb2`` refuses to load under protobuf < 7,
    which apache-beam requires; the descriptor it embeds is loaded into a private pool
    instead, which works with either runtime."""
    import ast
    import importlib.util
    import re

    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    spec = importlib.util.find_spec("sentencepiece.sentencepiece_model_pb2")
    src = Path(spec.origin).read_text()
    blob = ast.literal_eval(re.search(r"AddSerializedFile\((b'.*?')\)", src, re.S).group(1))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(blob))
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("sentencepiece.ModelProto"))
    from core import fs

    return cls.FromString(fs.read_bytes(str(path)))
