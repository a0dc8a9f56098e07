"""Data commands: the source pipelines, the quality classifier, the perplexity LM, inspect."""
from __future__ import annotations

import json

from core import paths
from filters.c4 import LANG_IDS

from .common import MAX_RECORD_HELP, add_runner, cutoffs, dry, fraction, report


REJECTED_HELP = ("also keep the documents a filter dropped, with the step and reason, in <out>/_rejected/ "
                 "(llama inspect <out> --rejected [--reason R])")


def cmd_ccnet(a, beam_args):
    from pipelines.ccnet import CCNetConfig, run

    cfg = CCNetConfig(inputs=a.inputs or [str(paths.shared_data() / "cc")], out_dir=a.out,
                      lm_dir=a.lm_dir, lid_model=a.lid_model, languages=tuple(a.lang),
                      lang_threshold=a.lang_threshold, cutoffs={a.lang[0]: a.cutoffs},
                      target_shard_bytes=int(a.target_shard_mb * 2**20), runner=a.runner,
                      beam_args=beam_args, force=a.force, input_prefix=a.input_prefix, dry_run=dry(a),
                      dedup_group_files=a.dedup_group_files, max_record_mb=a.max_record_mb,
                      rejected=a.rejected)
    return report(run(cfg), a.out)




def _source_cmd(module, default_dir, **fixed):
    def cmd(a, beam_args):
        import importlib

        mod = importlib.import_module(f"pipelines.{module}")
        kwargs = {k: getattr(a, k) for k in fixed if getattr(a, k, None) is not None}
        if getattr(a, "input_prefix", None):
            kwargs["input_prefix"] = a.input_prefix
        stats = mod.run(a.inputs or [str(paths.shared_data() / default_dir)], a.out,
                        target_bytes=int(a.target_shard_mb * 2**20), runner=a.runner,
                        beam_args=beam_args, force=a.force, dry_run=dry(a), **kwargs)
        return report(stats, a.out)
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
                         dry_run=dry(a), reference=a.reference)
    code = report(stats, a.out)
    if stats and not stats.get("dry_run"):
        print(f"fetch them with: cat {a.out}/urls-*.txt | wget --timeout=5 -i - --warc-file=wiki_refs -O /dev/null")
    return code


def cmd_quality(a, beam_args):
    from pipelines import quality

    stats = quality.run(a.input, a.out, a.model, a.threshold, int(a.target_shard_mb * 2**20), a.runner,
                        beam_args, a.force, dry_run=dry(a), rejected=a.rejected)
    return report(stats, a.out)




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

    print(inspect(a.shard, rows=a.rows, width=a.width, as_json=a.json, rejected=a.rejected, reason=a.reason))
    return 0



def add_commands(sub) -> None:
    p = sub.add_parser("ccnet", help="CommonCrawl: WET/WARC -> dedup -> LID -> perplexity buckets")
    p.add_argument("inputs", nargs="*", help="WET/WARC/JSONL files or directories (default: bundled cc/)")
    p.add_argument("--out", default=str(paths.out_dir() / "ccnet"))
    p.add_argument("--lm-dir", default=str(paths.lm_dir()))
    p.add_argument("--lid-model", default=str(paths.lid_model()))
    p.add_argument("--lang", nargs="+", default=["en"], help="languages to keep (first one is bucketed)")
    p.add_argument("--lang-threshold", type=fraction, default=0.5)
    p.add_argument("--cutoffs", type=cutoffs, default=(340.0, 520.0), help="head,middle perplexity cutoffs")
    p.add_argument("--rejected", action="store_true", help=REJECTED_HELP)
    p.add_argument("--dedup-group-files", type=int, default=0, metavar="N",
                   help="dedup lines within groups of N consecutive input files, as cc_net's hash_in_mem "
                        "(default 0: across the whole run)")
    p.add_argument("--max-record-mb", type=float, default=None, help=MAX_RECORD_HELP)
    add_runner(p)
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
            p.add_argument("--lang-threshold", type=fraction, default=0.5, help="for --lang-id fasttext")
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
            p.add_argument("--threshold", type=fraction, default=0.9, help="near-duplicate Jaccard threshold")
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
        if name in ("c4", "github", "wikipedia"):  # the sources whose filters follow the contract (beam_utils.Rejects)
            p.add_argument("--rejected", action="store_true", default=None, help=REJECTED_HELP)
            fixed["rejected"] = None
        add_runner(p, inputs=name not in ("github", "arxiv"))
        p.set_defaults(fn=_source_cmd(module, default_dir, **fixed))

    p = sub.add_parser("extract-wiki-refs",
                       help="the URLs cited in Wikipedia <ref> elements (the quality classifier's positives)")
    p.add_argument("inputs", nargs="*", help="Wikipedia dumps (default: the bundled sample)")
    p.add_argument("--languages", nargs="*", default=["en"],
                   help="dump languages to read (default: en, as RedPajama; none given: every dump)")
    p.add_argument("--reference", action="store_true",
                   help="RedPajama's extract_urls.py exactly, its XML-entity bug included")
    p.add_argument("--out", default=str(out / "wikirefs"))
    add_runner(p)
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
    p.add_argument("--holdout", type=fraction, default=0.1, help="share held out to measure accuracy")
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
    p.add_argument("--threshold", type=fraction, default=0.25)
    p.add_argument("--out", default=str(out / "cc"))
    p.add_argument("--rejected", action="store_true", help=REJECTED_HELP)
    add_runner(p, inputs=False)
    p.set_defaults(fn=cmd_quality)


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
    p.add_argument("--rejected", action="store_true",
                   help="the documents the step's filters dropped (kept by running it with --rejected)")
    p.add_argument("--reason", help="only those dropped for this reason (implies --rejected)")
    p.set_defaults(fn=cmd_inspect)
