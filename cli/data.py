"""Data commands: the source pipelines, the quality classifier, the perplexity LM, inspect."""
from __future__ import annotations

import json

from core import paths
from core.options import MAX_RECORD_HELP, REJECTED_HELP, fraction
from pipelines import registry

from .common import add_options, add_runner, cutoffs, dry, options_from, report


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




def _source_cmd(src):
    def cmd(a, beam_args):
        inputs = a.inputs or [str(paths.shared_data() / src.input)]
        stats = src.run(inputs, a.out, options_from(a, src.options()), input_prefix=getattr(a, "input_prefix", None),
                        target_bytes=int(a.target_shard_mb * 2**20), runner=a.runner, beam_args=beam_args,
                        force=a.force, dry_run=dry(a))
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


def cmd_report(a, _):
    import report

    from core import fs
    from core.errors import InputError

    if not fs.isdir(a.out):
        raise InputError(f"{a.out}: no such output directory (run the steps, or make demo, first)")
    print(f"report: {report.write(a.out, a.html)}")
    return 0


def cmd_inspect(a, _):
    from pipelines.inspect_shards import inspect

    print(inspect(a.shard, rows=a.rows, width=a.width, as_json=a.json, rejected=a.rejected, reason=a.reason))
    return 0



def add_commands(sub, command: str | None = None) -> None:
    """``command``: the one the user runs (only its flags are built); None: all of them."""
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
    for src in registry.pipelines():  # one command per registered source, its flags from its Options
        p = sub.add_parser(src.name, help=src.help)
        p.add_argument("inputs", nargs="*", help=f"inputs (default: bundled {src.input}/)")
        p.add_argument("--out", default=str(out / src.out_dir))
        if command in (None, src.name):  # the source's module (and Beam) imported only when it is the command
            add_options(p, src.options())
            add_runner(p, inputs=src.takes_input_prefix())
        p.set_defaults(fn=_source_cmd(src))

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

    p = sub.add_parser("report", help="the run report as one HTML file: funnels, drops, languages, perplexity, "
                                      "token mixture, loss, rejected examples")
    p.add_argument("out", nargs="?", default=str(paths.out_dir()), help="the run's output root (default: out/)")
    p.add_argument("--html", default=None, help="where to write it (default: <out>/report.html)")
    p.set_defaults(fn=cmd_report)
