"""The ``llama`` command line.  User mistakes end in one ``llama: error: ...`` line, exit 2."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys

from filters import paths
from filters.c4 import LANG_IDS
from filters.errors import InputError


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
MAX_RECORD_HELP = ("skip (and count) a WARC record, inflated HTTP payload or JSON line larger than this "
                   "(default 64; Common Crawl stores payloads of at most 1 MB)")


def _setup_logging(verbose: bool) -> None:
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


def _cutoffs(text: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers like 340,520, got {text!r}")
    if not 0 < a < b:
        raise argparse.ArgumentTypeError(f"cutoffs must satisfy 0 < head < middle, got {text!r}")
    return a, b


def _fraction(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text}")
    return v


def _add_runner(p: argparse.ArgumentParser, inputs: bool = True) -> None:
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



def cmd_ccnet(a, beam_args):
    from pipelines.ccnet import CCNetConfig, run

    cfg = CCNetConfig(inputs=a.inputs or [str(paths.shared_data() / "cc")], out_dir=a.out,
                      lm_dir=a.lm_dir, lid_model=a.lid_model, languages=tuple(a.lang),
                      lang_threshold=a.lang_threshold, cutoffs={a.lang[0]: a.cutoffs},
                      target_shard_bytes=int(a.target_shard_mb * 2**20), runner=a.runner,
                      beam_args=beam_args, force=a.force, input_prefix=a.input_prefix, dry_run=_dry(a),
                      dedup_group_files=a.dedup_group_files, max_record_mb=a.max_record_mb)
    return _report(run(cfg), a.out)


def _dry(a):
    if a.stage and not a.dry_run:
        raise InputError("--stage goes with --dry-run (it stages a Dataflow job without submitting it)")
    return "stage" if a.stage else a.dry_run


def _report(stats, out):
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


def _source_cmd(module, default_dir, **fixed):
    def cmd(a, beam_args):
        import importlib

        mod = importlib.import_module(f"pipelines.{module}")
        kwargs = {k: getattr(a, k) for k in fixed if getattr(a, k, None) is not None}
        if getattr(a, "input_prefix", None):
            kwargs["input_prefix"] = a.input_prefix
        stats = mod.run(a.inputs or [str(paths.shared_data() / default_dir)], a.out,
                        target_bytes=int(a.target_shard_mb * 2**20), runner=a.runner,
                        beam_args=beam_args, force=a.force, dry_run=_dry(a), **kwargs)
        return _report(stats, a.out)
    return cmd


def cmd_train_quality(a, beam_args):
    from pipelines import quality

    stats = quality.train(a.pages, a.out, refs_dir=a.refs, ref_pages_dir=a.ref_pages, wiki_dir=a.wiki,
                          language=a.lang, min_positives=a.min_positives, holdout=a.holdout, force=a.force,
                          max_docs=a.max_docs, epoch=a.epoch, lr=a.lr, runner=a.runner, beam_args=beam_args)
    print(json.dumps(stats, indent=1))
    print(f"model: {a.out}/model.bin ({stats['positives']} {stats['positives_from'].replace('_', ' ')} vs "
          f"{stats['negatives']} CC pages)")
    return 0


def cmd_extract_wiki_refs(a, beam_args):
    from pipelines import wikirefs

    stats = wikirefs.run(a.inputs or [str(paths.shared_data() / "wikipedia")], a.out,
                         languages=a.languages or None, target_bytes=int(a.target_shard_mb * 2**20),
                         runner=a.runner, beam_args=beam_args, force=a.force, input_prefix=a.input_prefix,
                         dry_run=_dry(a), reference=a.reference)
    code = _report(stats, a.out)
    if stats and not stats.get("dry_run"):
        print(f"fetch them with: cat {a.out}/urls-*.txt | wget --timeout=5 -i - --warc-file=wiki_refs -O /dev/null")
    return code


def cmd_quality(a, beam_args):
    from pipelines import quality

    stats = quality.run(a.input, a.out, a.model, a.threshold, int(a.target_shard_mb * 2**20), a.runner,
                        beam_args, a.force, dry_run=_dry(a))
    return _report(stats, a.out)


def cmd_train_tokenizer(a, extra):
    from pipelines.tokenize import train_tokenizer_sampled

    inputs = a.inputs or [str(paths.out_dir() / d) for d in
                          ("cc", "c4", "github", "wikipedia", "books", "arxiv", "stackexchange")]
    model = train_tokenizer_sampled(inputs, a.out, vocab_size=a.vocab_size, sample_lines=a.sample_lines,
                                    force=a.force, runner=a.runner, beam_args=extra)
    from tokenizer import Tokenizer

    tok = Tokenizer(model)
    print(f"tokenizer: {model} ({tok.vocab_size} pieces)")
    print("  'In 1984, 2,500 people' ->", tok.pieces("In 1984, 2,500 people"))
    return 0


def cmd_tokenize(a, beam_args):
    from pipelines import tokenize

    mixture = tokenize.load_mixture(a.mixture)
    if a.only:
        unknown = set(a.only) - set(mixture)
        if unknown:
            raise InputError(f"--only: unknown source(s) {sorted(unknown)}; known: {sorted(mixture)}")
        mixture = {k: v for k, v in mixture.items() if k in a.only}
    sources = tokenize.source_dirs(a.root, mixture)
    m = tokenize.run(sources, a.tokenizer, a.out, mixture, seq_len=a.seq_len, seed=a.seed,
                     total_tokens=a.total_tokens, shard_tokens=a.shard_tokens, runner=a.runner,
                     beam_args=beam_args, force=a.force, dry_run=_dry(a), val_fraction=a.val_fraction)
    if m is None or m.get("dry_run"):
        return _report(m, a.out)
    print(f"{m['sequences']} sequences, {m['tokens']:,} tokens in {len(m['shards'])} shard(s) under {a.out}")
    print(f"  {'source':<14} {'target':>7} {'achieved':>9} {'epochs':>7} {'tokens':>9}")
    for s, v in m["sources"].items():
        print(f"  {s:<14} {v['weight_target']:>7.3f} {v['weight_achieved']:>9.3f} "
              f"{v['epochs_achieved']:>7.3f} {v['tokens']:>9,}")
    v = m.get("val", {})
    print(f"  held out: {v.get('documents', 0):,} documents, {v.get('sequences', 0)} sequences, "
          f"{v.get('tokens', 0):,} tokens in {a.out}/val/ (validation only)")
    print(f"inspect with: llama inspect {a.out}")
    return 0


def cmd_train(a, extra):
    from train.launch import launch

    return launch(a.config, nproc=a.nproc, hostfile=a.hostfile, n_nodes=a.num_nodes, gpus=a.num_gpus,
                  extra=extra, launcher=a.launcher)


def cmd_train_7b(a, extra):
    from train.launch import train_7b

    return train_7b(a.config, a.hostfile, a.num_nodes, a.num_gpus, extra, launcher=a.launcher)


def cmd_export_hf(a, _):
    from train.export import export_hf

    files = export_hf(a.checkpoint, a.out, tokenizer=a.tokenizer, dtype=a.dtype)
    print(f"export-hf: {a.out}: {', '.join(files)}")
    print(f"load with: transformers.AutoModelForCausalLM.from_pretrained({a.out!r})")
    return 0


def cmd_import_meta(a, _):
    from train.export import import_meta

    files = import_meta(a.checkpoint, a.out, tokenizer=a.tokenizer)
    print(f"import-meta: {a.out}: {', '.join(files)} (llama export-hf / eval read it; init_from in a training "
          f"config starts a run from it)")
    return 0


def cmd_eval(a, _):
    from train.evaluate import evaluate

    res = evaluate(a.checkpoint, a.out, [t for t in (a.tasks or "").split(",") if t], text=a.text, limit=a.limit,
                   batch_size=a.batch_size, device=a.device, tokenizer=a.tokenizer)
    print(res["table"])
    print(f"eval: results in {a.out}/results.json")
    return 0


def cmd_lm(a, _):
    from pipelines.lm import train_lm

    from core import fs

    dumps = a.dumps or fs.glob(str(paths.shared_data() / "wikipedia" / "enwiki-*"))
    p = train_lm(dumps, a.out, lang=a.lang, vocab_size=a.vocab_size, holdout=a.holdout, force=a.force,
                 max_articles=a.max_articles)
    print(f"perplexity model: {p.sp_model} + {p.kenlm_model}")
    return 0


def cmd_inspect(a, _):
    from pipelines.inspect_shards import inspect

    print(inspect(a.shard, rows=a.rows, width=a.width, as_json=a.json))
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="only warnings and errors")
    ap = argparse.ArgumentParser(prog="llama", description="LLaMA-1 pretraining system reproduction",
                                 parents=[common])
    sub = ap.add_subparsers(dest="cmd", required=True)
    _sub = sub.add_parser
    sub.add_parser = lambda *a, **k: _sub(*a, parents=[common], **k)

    p = sub.add_parser("ccnet", help="CommonCrawl: WET/WARC -> dedup -> LID -> perplexity buckets")
    p.add_argument("inputs", nargs="*", help="WET/WARC/JSONL files or directories (default: bundled cc/)")
    p.add_argument("--out", default=str(paths.out_dir() / "ccnet"))
    p.add_argument("--lm-dir", default=str(paths.lm_dir()))
    p.add_argument("--lid-model", default=str(paths.lid_model()))
    p.add_argument("--lang", nargs="+", default=["en"], help="languages to keep (first one is bucketed)")
    p.add_argument("--lang-threshold", type=_fraction, default=0.5)
    p.add_argument("--cutoffs", type=_cutoffs, default=(340.0, 520.0), help="head,middle perplexity cutoffs")
    p.add_argument("--dedup-group-files", type=int, default=0, metavar="N",
                   help="dedup lines within groups of N consecutive input files, as cc_net's hash_in_mem "
                        "(default 0: across the whole run)")
    p.add_argument("--max-record-mb", type=float, default=None, help=MAX_RECORD_HELP)
    _add_runner(p)
    p.set_defaults(fn=cmd_ccnet)

    out = paths.out_dir()
    sources = [
        ("c4", "c4", "cc", "C4: tfds clean_page rules, bad words, line dedup, English LID"),
        ("github", "github", "github", "GitHub: permissive licences, RedPajama file filters, exact dedup"),
        ("wikipedia", "wikipedia", "wikipedia", "Wikipedia: 20 languages, ns 0, markup stripped"),
        ("books", "books", "books", "Books: Gutenberg boilerplate removed, MinHash near-dedup"),
        ("arxiv", "arxiv", "arxiv", "ArXiv: LaTeX cleaned, macros expanded, bibliography removed"),
        ("stackexchange", "stackexchange", "stackexchange", "StackExchange: Q/A with answers by score"),
    ]
    for name, module, default_dir, help_text in sources:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("inputs", nargs="*", help=f"inputs (default: bundled {default_dir}/)")
        p.add_argument("--out", default=str(out / name))
        fixed = {}
        if name == "c4":
            p.add_argument("--lid-model", default=str(paths.lid_model()))
            p.add_argument("--lang-threshold", type=_fraction, default=0.5, help="for --lang-id fasttext")
            p.add_argument("--lang-id", choices=LANG_IDS, default=LANG_IDS[0],
                           help="tfds: langdetect, en at >= 0.99, as the public C4 LLaMA used (default); "
                                "fasttext: lid.176 at --lang-threshold, as CCNet")
            p.add_argument("--sentences", choices=("punkt", "rule"), default=None,
                           help="sentence counter: NLTK punkt as tfds (default when installed) or a "
                                "punctuation rule (the default without it, with a warning)")
            p.add_argument("--max-record-mb", type=float, default=None, help=MAX_RECORD_HELP)
            fixed = {"lid_model": None, "lang_threshold": None, "lang_id": None, "sentences": None,
                     "max_record_mb": None}
        elif name == "github":
            p.add_argument("--tokenizer", default=str(paths.llama_tokenizer()),
                           help="tokenizer for RedPajama's alpha-per-token rule: a HuggingFace tokenizer.json "
                                "(default: the LLaMA vocabulary) or a SentencePiece .model; local or gs://")
            p.add_argument("--max-line-mb", type=float, default=None,
                           help="skip (and count) a JSON line larger than this (default 64)")
            fixed = {"tokenizer": None, "max_line_mb": None}
        elif name == "arxiv":
            p.add_argument("--reference", action="store_true", default=None,
                           help="RedPajama's arxiv_cleaner.py exactly, bugs included (drops appendices, "
                                "argument macros unexpanded, \\input files lost, ...; see filters/latex.py)")
            p.add_argument("--max-paper-mb", type=float, default=None,
                           help="skip (and count) a paper whose archive inflates past this (default 2048)")
            p.add_argument("--max-tex-mb", type=float, default=None,
                           help="skip (and count) a paper with more .tex than this (default 64)")
            p.add_argument("--max-macro-growth", type=int, default=None,
                           help="skip (and count) a paper whose macros expand its text past this factor "
                                "(default 20; or 4 MB)")
            fixed = {"reference": None, "max_paper_mb": None, "max_tex_mb": None, "max_macro_growth": None}
        elif name == "books":
            p.add_argument("--threshold", type=_fraction, default=0.9, help="near-duplicate Jaccard threshold")
            p.add_argument("--max-book-mb", type=float, default=None,
                           help="skip (and count) a book file larger than this (default 64)")
            fixed = {"threshold": None, "max_book_mb": None}
        elif name == "wikipedia":
            p.add_argument("--languages", nargs="+", default=None, help="dbname languages to keep (default: LLaMA's 20)")
            p.add_argument("--max-page-mb", type=float, default=None,
                           help="skip (and count) a page larger than this, unparsed (default 64)")
            fixed = {"languages": None, "max_page_mb": None}
        elif name == "stackexchange":
            p.add_argument("--sites", nargs="+", default=None,
                           help="sites to keep; 'paper' = LLaMA's 28 largest (default: all non-meta)")
            p.add_argument("--reference", action="store_true", default=None,
                           help="RedPajama's post_processing.py exactly: scores sorted as strings, <br> "
                                "glues words, an empty '*' line before ordered lists")
            p.add_argument("--max-post-mb", type=float, default=None,
                           help="skip (and count) a Posts.xml row larger than this (default 16)")
            fixed = {"sites": None, "reference": None, "max_post_mb": None}
        _add_runner(p, inputs=name not in ("github", "arxiv"))
        p.set_defaults(fn=_source_cmd(module, default_dir, **fixed))

    p = sub.add_parser("extract-wiki-refs",
                       help="the URLs cited in Wikipedia <ref> elements (the quality classifier's positives)")
    p.add_argument("inputs", nargs="*", help="Wikipedia dumps (default: the bundled sample)")
    p.add_argument("--languages", nargs="*", default=["en"],
                   help="dump languages to read (default: en, as RedPajama; none given: every dump)")
    p.add_argument("--reference", action="store_true",
                   help="RedPajama's extract_urls.py exactly, its XML-entity bug included")
    p.add_argument("--out", default=str(out / "wikirefs"))
    _add_runner(p)
    p.set_defaults(fn=cmd_extract_wiki_refs)

    p = sub.add_parser("train-quality-classifier",
                       help="fastText cited-by-Wikipedia vs random-CC classifier for the CCNet output")
    p.add_argument("--pages", default=str(out / "ccnet"),
                   help="CCNet output: the negatives, and the crawled pages joined with --refs")
    p.add_argument("--refs", default=None, help="llama extract-wiki-refs output: positives = the cited pages "
                                                "among --pages")
    p.add_argument("--ref-pages", default=None,
                   help="CCNet output of the cited URLs fetched into a WARC: all its pages are positives")
    p.add_argument("--wiki", default=None,
                   help="Wikipedia output: articles are the positives when fewer than --min-positives "
                        "cited pages are found (with a warning)")
    p.add_argument("--min-positives", type=int, default=1000)
    p.add_argument("--lang", default="en")
    p.add_argument("--holdout", type=_fraction, default=0.1, help="share held out to measure accuracy")
    p.add_argument("--epoch", type=int, default=5, help="fastText epochs (RedPajama: the default, 5)")
    p.add_argument("--lr", type=float, default=0.1, help="fastText learning rate (RedPajama: the default, 0.1)")
    p.add_argument("--max-docs", type=int, default=200_000,
                   help="sample size per class, drawn inside a Beam pipeline (bounded memory)")
    p.add_argument("--out", default=str(out / "quality"))
    p.add_argument("--force", action="store_true")
    p.add_argument("--runner", default="DirectRunner", help="Beam runner of the sampling pipeline")
    p.set_defaults(fn=cmd_train_quality)

    p = sub.add_parser("quality", help="score CCNet output with the quality classifier, keep >= threshold")
    p.add_argument("--input", default=str(out / "ccnet"))
    p.add_argument("--model", default=str(out / "quality" / "model.bin"))
    p.add_argument("--threshold", type=_fraction, default=0.25)
    p.add_argument("--out", default=str(out / "cc"))
    _add_runner(p, inputs=False)
    p.set_defaults(fn=cmd_quality)

    p = sub.add_parser("train-tokenizer", help="SentencePiece BPE with LLaMA's trainer spec")
    p.add_argument("inputs", nargs="*", help="document shard dirs (default: every source under out/)")
    p.add_argument("--out", default=str(out / "tokenizer"))
    p.add_argument("--vocab-size", type=int, default=32000)
    p.add_argument("--sample-lines", type=int, default=2_000_000,
                   help="lines sampled (inside a Beam pipeline) for SentencePiece: input_sentence_size")
    p.add_argument("--force", action="store_true")
    p.add_argument("--runner", default="DirectRunner", help="Beam runner of the sampling pipeline")
    p.set_defaults(fn=cmd_train_tokenizer)

    p = sub.add_parser("tokenize", help="token shards with the paper's mixture, packed to --seq-len")
    p.add_argument("--root", default=str(out), help="where the source outputs are")
    p.add_argument("--mixture", default=str(paths.REPO / "configs" / "mixture.json"))
    p.add_argument("--only", nargs="+", help="use only these sources of the mixture")
    p.add_argument("--tokenizer", default=str(out / "tokenizer" / "tokenizer.model"))
    p.add_argument("--out", default=str(out / "tokens"))
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-tokens", type=int, default=None, help="cap on the mixture's total tokens")
    p.add_argument("--shard-tokens", type=int, default=1 << 24, help="tokens per shard (target)")
    p.add_argument("--val-fraction", type=_fraction, default=0.01,
                   help="documents held out for validation into <out>/val/ (never trained on)")
    _add_runner(p, inputs=False)
    p.set_defaults(fn=cmd_tokenize)

    p = sub.add_parser("train", help="train a model (torchrun on CPU, deepspeed launcher on GPUs)")
    p.add_argument("--config", default=str(paths.REPO / "configs" / "train_tiny.json"))
    p.add_argument("--nproc", type=int, default=2, help="processes on CPU")
    p.add_argument("--hostfile")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--num-gpus", type=int, default=None)
    p.add_argument("--launcher", choices=("auto", "slurm"), default="auto",
                   help="slurm: sbatch from a login node, srun inside an allocation (shared filesystem needed)")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("train-7b", help="the paper's 7B run; without GPUs: print the plan and exit")
    p.add_argument("--config", default=str(paths.REPO / "configs" / "train_7b.json"))
    p.add_argument("--hostfile")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--num-gpus", type=int, default=8, help="GPUs per node")
    p.add_argument("--launcher", choices=("auto", "slurm"), default="auto",
                   help="slurm: print the plan, then submit with sbatch (shared filesystem needed)")
    p.set_defaults(fn=cmd_train_7b)

    p = sub.add_parser("export-hf", help="a checkpoint (any ZeRO stage) as a HuggingFace LLaMA directory")
    p.add_argument("checkpoint", help="a run directory, its checkpoints/ or checkpoints/step<N>, a Meta "
                                      "checkpoint or an imported model")
    p.add_argument("out")
    p.add_argument("--tokenizer", help="SentencePiece model (default: the one the run's token shards name)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.set_defaults(fn=cmd_export_hf)

    p = sub.add_parser("import-meta", help="Meta's consolidated.*.pth (+ params.json) as this project's weights")
    p.add_argument("checkpoint", help="directory with params.json and consolidated.NN.pth")
    p.add_argument("out")
    p.add_argument("--tokenizer", help="Meta's tokenizer.model (default: beside the checkpoint or one level up)")
    p.set_defaults(fn=cmd_import_meta)

    p = sub.add_parser("eval", help="lm-evaluation-harness on a checkpoint (pip install -e .[eval])")
    p.add_argument("checkpoint", help="as for export-hf, or a HuggingFace directory")
    p.add_argument("--tasks", default="", help="lm-eval task names, comma-separated (e.g. hellaswag,arc_easy)")
    p.add_argument("--text", help="also the perplexity of these documents (Parquet shards, e.g. out/wikipedia/en)")
    p.add_argument("--limit", type=int, help="at most this many examples per task")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tokenizer")
    p.add_argument("--out", default=str(paths.out_dir() / "eval"))
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("lm", help="train the SentencePiece + KenLM perplexity model on Wikipedia")
    p.add_argument("dumps", nargs="*", help="MediaWiki XML dumps (default: bundled enwiki sample)")
    p.add_argument("--out", default=str(paths.lm_dir()))
    p.add_argument("--lang", default="en")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--holdout", type=int, default=10, help="articles kept out of training")
    p.add_argument("--max-articles", type=int, default=1_000_000,
                   help="articles sampled (inside a Beam pipeline) to train on")
    p.add_argument("--force", action="store_true")
    p.set_defaults(fn=cmd_lm)

    p = sub.add_parser("inspect", help="summary and sample rows of a document or token shard")
    p.add_argument("shard", help="a .parquet shard or a directory of shards")
    p.add_argument("-n", "--rows", type=int, default=3)
    p.add_argument("--width", type=int, default=300, help="characters of text shown per row")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_inspect)
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = join_beam_flags(list(sys.argv[1:] if argv is None else argv), own_flags(parser))
    args, extra = parser.parse_known_args(argv)
    bad = [x for x in extra if not x.startswith("--")]
    if bad or (extra and args.cmd not in BEAM_COMMANDS):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _setup_logging(not getattr(args, "quiet", False))
    signal.signal(signal.SIGINT, _interrupted)
    try:
        if hasattr(args, "runner"):
            from pipelines.beam_utils import check_runner

            check_runner(args.runner)
        code = args.fn(args, extra)
    except InputError as e:
        print(f"llama: error: {e}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        _stop_children()
        print("llama: interrupted (the output is left incomplete: no _SUCCESS)", file=sys.stderr)
        code = 130
    _drop_worker_log()  # kept only when the command ends in a traceback
    return code


def _drop_worker_log() -> None:
    path = os.environ.get(WORKER_LOG_ENV)
    if path and os.path.isfile(path):
        os.unlink(path)


def _interrupted(signum, frame):
    """Ctrl-C: the runner's threads will see their workers end -- quietly; then the usual
    KeyboardInterrupt in the main thread."""
    import threading

    threading.excepthook = lambda args: None
    logging.getLogger("apache_beam").setLevel(logging.CRITICAL)  # its shutdown complaints, too
    raise KeyboardInterrupt


def _stop_children() -> None:
    """After Ctrl-C: stop the children this process still has (the local runner's SDK workers
    end on Ctrl-C themselves; whatever else a command started, a DeepSpeed launcher say, is
    stopped here rather than left behind)."""
    me = str(os.getpid())
    for stat in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not stat.isdigit():
            continue
        try:
            with open(f"/proc/{stat}/stat") as fh:
                ppid = fh.read().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if ppid == me:
            try:
                os.kill(int(stat), signal.SIGTERM)
            except OSError:
                pass


BEAM_COMMANDS = {"ccnet", "c4", "github", "wikipedia", "books", "arxiv", "stackexchange", "quality", "tokenize",
                 "extract-wiki-refs", "train-quality-classifier", "train-tokenizer",
                 "train", "train-7b"}  # the last two pass extra --flags to the trainer

if __name__ == "__main__":
    sys.exit(main())
