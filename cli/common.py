"""What every command group shares: logging, Beam's flags, argument types, the step report."""
from __future__ import annotations

import argparse
import json
import logging
import os

from core.errors import InputError

_NOISE = ("apitools not found", "No semi_persistent_directory found", "Discarding unparseable args")


class _DropNoise(logging.Filter):
    def __init__(self, quiet: bool = False):
        super().__init__()
        self.quiet = quiet

    def filter(self, record):
        msg = record.getMessage()
        if any(s in msg for s in _NOISE):
            return False
        # -q: a failing worker's forwarded traceback; the run's own one-line error says what failed
        return not (self.quiet and record.name.startswith("apache_beam")
                    and (record.exc_info or "Traceback" in msg))


WORKER_LOG_ENV = "LLAMA_WORKER_LOG"  # read by pipelines/sdk_worker.py

def setup_logging(verbose: bool) -> None:
    if not verbose:  # local SDK workers log to a file (pipelines/sdk_worker.py), not the terminal
        import tempfile

        os.environ.setdefault(WORKER_LOG_ENV, os.path.join(tempfile.gettempdir(), f"llama-workers-{os.getpid()}.log"))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for h in logging.getLogger().handlers:
        h.addFilter(_DropNoise(quiet=not verbose))
    for name in ("pipelines", "filters", "tokenizer", "train", "model", "dags"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("apache_beam").setLevel(logging.WARNING)


def cutoffs(text: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers like 340,520, got {text!r}")
    if not 0 < a < b:
        raise argparse.ArgumentTypeError(f"cutoffs must satisfy 0 < head < middle, got {text!r}")
    return a, b


def add_options(p: argparse.ArgumentParser, cls) -> None:
    """A flag per field of an Options dataclass (``core.options.option``): ``--max-book-mb`` for
    ``max_book_mb``; a bool is an on/off flag.  Unset flags stay None, so the dataclass's default wins."""
    from core.options import fields_of

    for f in fields_of(cls):
        m = f.metadata
        flag = "--" + f.name.replace("_", "-")
        default_text = "" if f.default in (None, False) or "default" in m["help"] else f" (default: {f.default})"
        if isinstance(f.default, bool):
            p.add_argument(flag, dest=f.name, action="store_true", default=None, help=m["help"])
            continue
        p.add_argument(flag, dest=f.name, default=None, type=m["type"] or type(f.default), choices=m["choices"],
                       nargs=m["nargs"], help=m["help"] + default_text)


def options_from(args: argparse.Namespace, cls):
    """The dataclass with the flags the user gave (the others at their defaults)."""
    from core.options import fields_of

    return cls(**{f.name: getattr(args, f.name) for f in fields_of(cls) if getattr(args, f.name, None) is not None})


def add_runner(p: argparse.ArgumentParser, inputs: bool = True) -> None:
    p.add_argument("--runner", default="DirectRunner",
                   help="Beam runner: DirectRunner (local: Beam's portable runner, one worker process per "
                        "core) or DataflowRunner. Beam's own flags (--direct_num_workers 2, --project, "
                        "--region, --temp_location, ...) pass through and win over the defaults.")
    p.add_argument("--force", action="store_true", help="redo the step even if its output is complete")
    p.add_argument("--target-shard-mb", type=float, default=256.0, help="shard size target (text MB)")
    p.add_argument("--dry-run", action="store_true",
                   help="build the pipeline, report the size of its job graph, run nothing")
    p.add_argument("--stage", action="store_true",
                   help="with --dry-run and DataflowRunner: also upload the code package and the pipeline "
                        "to the staging location, as a submission would, without submitting the job")
    if inputs:
        p.add_argument("--input-prefix", default=None,
                       help="prefix for the relative lines of a paths manifest (*.paths[.gz]), e.g. "
                            "s3://commoncrawl/ for Common Crawl's wet.paths.gz (default: the manifest's dir)")


def beam_value_flags() -> set[str]:
    """Beam's own options that take a value (so ``--flag value`` can be joined to ``--flag=value``)."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    seen = {}
    for cls in PipelineOptions.__subclasses__():
        seen.setdefault(str(cls), cls)
    for cls in seen.values():
        try:
            cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's own registry of options
        except argparse.ArgumentError:
            pass
    return {s for a in parser._actions if a.nargs != 0 for s in a.option_strings}


def own_flags(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``llama`` and its subcommands."""
    found = set()
    for action in parser._actions:  # noqa: SLF001 - argparse keeps no public list
        found |= set(action.option_strings)
        choices = getattr(action, "choices", None)
        for sub in (choices.values() if isinstance(choices, dict) else ()):
            if isinstance(sub, argparse.ArgumentParser):
                found |= own_flags(sub)
    return found


def join_beam_flags(argv: list[str], own: set[str] = frozenset()) -> list[str]:
    """``--direct_num_workers 2`` -> ``--direct_num_workers=2`` for Beam's value options that are
    not also ``llama``'s own (``own``), so the value is not taken for an input path."""
    flags, out, i = None, [], 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and "=" not in a and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            flags = flags if flags is not None else beam_value_flags()
            if a in flags and a not in own:
                out.append(f"{a}={argv[i + 1]}")
                i += 2
                continue
        out.append(a)
        i += 1
    return out




def dry(a):
    if a.stage and not a.dry_run:
        raise InputError("--stage goes with --dry-run (it stages a Dataflow job without submitting it)")
    return "stage" if a.stage else a.dry_run


def report(stats, out):
    if stats is None:
        print(f"{out}: already complete (delete it or pass --force to redo)")
        return 0
    if stats.get("dry_run"):
        print(json.dumps(stats, indent=1))
        print(f"dry run: job graph of {stats['transforms']} transforms, {stats['graph_bytes']:,} bytes; "
              f"nothing was run or written")
        return 0
    c = stats["counters"]
    print(json.dumps(c, indent=1))
    print(f"{sum(stats['shards'].values())} documents in {len(stats['shards'])} shard(s) under {out} "
          f"in {stats['seconds']:.1f}s; inspect with: llama inspect {out}")
    return 0

