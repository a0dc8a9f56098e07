"""A step's options declared once, as a dataclass: each field's default, its help text and how a
command line parses it.  The CLI turns the fields into flags (``cli.common.add_options``), the DAG
fills them from its params, and the step's ``run()`` takes them as keyword arguments of the same
names -- so a new option is one field, not four edits.

    @dataclass
    class Options:
        threshold: float = option(0.9, "near-duplicate Jaccard threshold", type=fraction)
        rejected: bool = option(False, REJECTED_HELP)
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import field

REJECTED_HELP = ("also keep the documents a filter dropped, with the step and reason, in <out>/_rejected/ "
                 "(llama inspect <out> --rejected [--reason R])")

MAX_RECORD_HELP = ("skip (and count) a WARC record, inflated HTTP payload or JSON line larger than this "
                   "(default 64; Common Crawl stores payloads of at most 1 MB)")


def option(default, help: str, *, type=None, choices=None, nargs=None, data: str | None = None):
    """A dataclass field with what a command line needs.  ``type`` parses a flag's text (default:
    the type of ``default``; a ``bool`` is an on/off flag); ``nargs="+"`` takes a list;
    ``data``: a path under the bundled-data root the DAG passes (the CLI leaves ``default``)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("option(): give a tuple, not a mutable default")
    return field(default=default, metadata={"help": help, "type": type, "choices": choices, "nargs": nargs,
                                            "data": data})


def fields_of(cls) -> list[dataclasses.Field]:
    return list(dataclasses.fields(cls))


def as_kwargs(opts) -> dict:
    """The options as ``run()``'s keyword arguments."""
    return {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)}


def fraction(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text}")
    return v
