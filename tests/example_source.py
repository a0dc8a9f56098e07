"""The README's example of a new source: the UDHR's paragraphs (JSON lines), short ones dropped.
Registered and run by tests/test_registry.py; a real one lives in pipelines/ with a line in
pipelines/registry.py."""
import json
from dataclasses import dataclass

import apache_beam as beam

from core.options import REJECTED_HELP, option
from core.schema import make_doc
from pipelines import beam_utils


def to_doc(line: str) -> dict:
    r = json.loads(line)
    return make_doc(r["id"], "udhr", r["text"], language=r["lang"])


@dataclass
class Options:
    min_chars: int = option(100, "drop paragraphs shorter than this")
    rejected: bool = option(False, REJECTED_HELP)


def run(inputs, out_dir, min_chars=100, rejected=False, target_bytes=256 << 20, **step):
    def build(p):
        rejects = beam_utils.Rejects(out_dir, rejected, target_bytes)  # the filter contract
        docs = p | beam_utils.ExpandInputs(inputs, (".jsonl",)) | beam.io.ReadAllFromText() | beam.Map(to_doc)
        kept = rejects.keep_if(docs, "length", lambda d: "too_short" if len(d["text"]) < min_chars else None)
        rejects.write()
        return kept | beam_utils.WriteShards(out_dir, lambda d: "udhr", target_bytes)
    return beam_utils.run_step(build, out_dir, **step)  # runner, beam_args, force, dry_run
