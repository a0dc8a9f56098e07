"""Every data source, declared once.

The ``llama`` subcommands, the DAG's tasks, the Makefile's source list, the token mixture (its
validation and defaults: LLaMA's Table 1) and the per-source tests are generated from ``SOURCES``.
A source other than Common Crawl is one module in ``pipelines/`` with

* ``Options``: a dataclass of its options (``core.options.option``: default, help, CLI type), and
* ``run(inputs, out_dir, *, target_bytes, runner, beam_args, force, dry_run[, input_prefix], **options)``
  that builds its Beam pipeline with ``beam_utils.run_step`` and returns the step's stats,

plus one line below.  Common Crawl is the one source of several steps (the perplexity LM, CCNet,
the Wikipedia-reference classifier and its filter): its commands are written out in
``cli/data.py`` and its tasks in ``dags/steps.py``; it is here for the mixture and the report.

This module imports nothing heavy: ``llama --help`` and the Makefile read it without Beam.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    name: str            # the mixture's key, the DAG task, the CLI command
    module: str | None   # "pipelines.books": its Options and run(); None for Common Crawl's steps
    input: str           # default input, under the bundled-data root
    weight: float        # LLaMA Table 1: sampling proportion
    epochs: float        # LLaMA Table 1: epochs on 1.4T tokens
    help: str
    out: str = ""        # output directory under the output root (default: name)

    @property
    def out_dir(self) -> str:
        return self.out or self.name

    def load(self):
        return importlib.import_module(self.module)

    def options(self):
        """The source's Options dataclass."""
        return self.load().Options

    def keeps_rejects(self) -> bool:
        """Whether its filters follow the contract (an Options field ``rejected``)."""
        from core.options import fields_of

        return any(f.name == "rejected" for f in fields_of(self.options()))

    def takes_input_prefix(self) -> bool:
        return "input_prefix" in inspect.signature(self.load().run).parameters

    def run(self, inputs, out_dir, options=None, *, input_prefix=None, **common):
        """Run the source's pipeline with its options (a dataclass instance; default: the defaults).
        ``common``: target_bytes, runner, beam_args, force, dry_run."""
        from core.options import as_kwargs

        mod = self.load()
        opts = options if options is not None else mod.Options()
        if input_prefix:
            common["input_prefix"] = input_prefix
        return mod.run(list(inputs), out_dir, **common, **as_kwargs(opts))


SOURCES: tuple[Source, ...] = (
    Source("common_crawl", None, "cc", 0.670, 1.10,
           "CommonCrawl: CCNet (line dedup, LID, perplexity) + the Wikipedia-reference classifier", out="cc"),
    Source("c4", "pipelines.c4", "cc", 0.150, 1.06, "C4: tfds clean_page rules, bad words, line dedup, English LID"),
    Source("github", "pipelines.github", "github", 0.045, 0.64,
           "GitHub: permissive licences, RedPajama file filters, exact dedup"),
    Source("wikipedia", "pipelines.wikipedia", "wikipedia", 0.045, 2.45,
           "Wikipedia: 20 languages, ns 0, markup stripped"),
    Source("books", "pipelines.books", "books", 0.045, 2.23,
           "Books: Gutenberg boilerplate removed, MinHash near-dedup"),
    Source("arxiv", "pipelines.arxiv", "arxiv", 0.025, 1.06,
           "ArXiv: LaTeX cleaned, macros expanded, bibliography removed"),
    Source("stackexchange", "pipelines.stackexchange", "stackexchange", 0.020, 1.03,
           "StackExchange: Q/A with answers by score"),
)

BY_NAME = {s.name: s for s in SOURCES}


def names() -> list[str]:
    return [s.name for s in SOURCES]


def pipelines() -> list[Source]:
    """The sources that are one pipeline each (a CLI command and a DAG task of their own)."""
    return [s for s in SOURCES if s.module]


def get(name: str) -> Source:
    from core.errors import InputError

    try:
        return BY_NAME[name]
    except KeyError:
        raise InputError(f"unknown source {name!r}; choose from {', '.join(names())}") from None


def default_mixture() -> dict:
    """LLaMA's Table 1 as the tokenizer step takes it: {name: {weight, epochs, dir}}."""
    return {s.name: {"weight": s.weight, "epochs": s.epochs, "dir": s.out_dir} for s in SOURCES}


def main(argv=None) -> None:
    """``python -m pipelines.registry dirs``: the output directories (the tokenizer's inputs);
    ``python -m pipelines.registry commands OUT``: a ``llama`` argument line per source pipeline,
    its output under OUT, ``--rejected`` where its filters keep rejects (the Makefile runs them)."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["dirs"]:
        print(" ".join(s.out_dir for s in SOURCES))
    elif argv[:1] == ["commands"] and len(argv) == 2:
        for s in pipelines():
            print(f"-q {s.name} --out {argv[1]}/{s.out_dir}" + (" --rejected" if s.keeps_rejects() else ""))
    else:
        raise SystemExit("usage: python -m pipelines.registry dirs | commands OUT")


if __name__ == "__main__":
    main()
