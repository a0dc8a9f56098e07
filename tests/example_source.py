"""The README's example of a new source: the UDHR's paragraphs (JSON lines), short ones dropped."""
import json
from dataclasses import dataclass

import apache_beam as beam

from core.options import REJECTED_HELP, option
from core.schema import make_doc
from pipelines import beam_utils


@dataclass
class Options:
    min_chars: int = option(100, "drop paragraphs shorter than this")
    rejected: bool = option(False, REJECTED_HELP)


def to_doc(line: str) -> dict:
    r = json.loads(line)
    return make_doc(r["id"], "udhr", r["text"], language=r["lang"])


def build(p, inputs, out_dir, min_chars, rejected, target_bytes):
    rejects = beam_utils.Rejects(out_dir, rejected, target_bytes)  # the filter contract
    docs = p | beam_utils.ExpandInputs(inputs, (".jsonl",)) | beam.io.ReadAllFromText() | beam.Map(to_doc)
    kept = rejects.keep_if(docs, "length", lambda d: "too_short" if len(d["text"]) < min_chars else None)
    rejects.write()
    return kept | beam_utils.WriteShards(out_dir, lambda d: "udhr", target_bytes)


def run(inputs, out_dir, min_chars=100, rejected=False, target_bytes=256 << 20, runner="DirectRunner",
        beam_args=None, force=False, dry_run=False):
    return beam_utils.run_step(lambda p: build(p, inputs, out_dir, min_chars, rejected, target_bytes), out_dir,
                               runner, beam_args, force, dry=dry_run)
