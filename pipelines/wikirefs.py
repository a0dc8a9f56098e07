"""``llama extract-wiki-refs``: the URLs Wikipedia cites in ``<ref>`` elements, the positives'
source of LLaMA's CC quality classifier ("pages used as references in Wikipedia").

RedPajama (togethercomputer/RedPajama-Data@45b37c2:data_prep/cc/README.md) extracts them
from the English dump with ``classifier/extract_urls.py`` (one process over the whole XML),
fetches them with ``wget -i urls --warc-file``, runs cc_net on that WARC and labels its
head/middle pages positive (``create_corpus.py``).  Here the extraction is a Beam step: dumps
-> work units (multistream dumps in parallel) -> every page, every namespace as the script
reads every line -> ``filters.wikirefs.ref_urls`` (the script's expressions; its
XML-entity bug fixed, see there) -> one row per distinct join key (``url_key``: scheme,
``www.``, host case, default port, fragment and trailing ``/`` do not matter), counted with
a combiner, never a list in one process.

The output holds ``urls/part-*.parquet`` (``id`` = the join key, ``url`` = the URL as cited
-- the smallest spelling when several map to one key --, ``citations``) for
``llama train-quality-classifier --refs``, and the same URLs as plain text,
``urls-SSSSS-of-NNNNN.txt``, one per line, for fetching::

    cat out/wikirefs/urls-*.txt | wget --timeout=5 -i - --warc-file=wiki_refs -O /dev/null
    llama ccnet wiki_refs.warc.gz --out out/ccnet_refs
    llama train-quality-classifier --ref-pages out/ccnet_refs ...
"""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from core import fs
from filters.wikipedia import UNIT_BYTES, DumpInfo, iter_pages
from filters.wikirefs import ref_urls, url_key

from . import beam_utils
from .wikipedia import ReadDumps, check_inputs

URL_SCHEMA = pa.schema([("id", pa.string()), ("url", pa.string()), ("citations", pa.int64())])


def make_reader(languages, reference: bool = False):
    languages = set(languages) if languages else None

    def read(item, counter):
        path, unit = item
        info = DumpInfo()
        for page in iter_pages(path, info, unit, skipped=lambda: counter("oversized_pages")):
            if languages is not None and info.lang not in languages:
                counter(f"rejected_{info.lang or 'unknown'}")
                continue
            counter("pages")
            for url in ref_urls(page.text, reference=reference):
                key = url_key(url)
                if key is None:
                    counter("not_a_url")
                    continue
                counter("citations")
                yield key, url

    return read


class FirstAndCount(beam.CombineFn):
    """(smallest spelling, count) of the URLs of one key: constant size per key."""

    def create_accumulator(self):
        return None, 0

    def add_input(self, acc, url):
        return (url if acc[0] is None or url < acc[0] else acc[0]), acc[1] + 1

    def merge_accumulators(self, accs):
        urls = [a[0] for a in accs if a[0] is not None]
        return (min(urls) if urls else None), sum(a[1] for a in accs)

    def extract_output(self, acc):
        return acc


def build(p, inputs, out_dir, languages=("en",), input_prefix=None, unit_bytes=UNIT_BYTES,
          target_bytes=256 << 20, reference=False):
    rows = (p | "Citations" >> ReadDumps(inputs, make_reader(languages, reference), input_prefix, unit_bytes,
                                          documents=False)
              | "PerKey" >> beam.CombinePerKey(FirstAndCount())
              | "Row" >> beam.MapTuple(lambda key, acc: {"id": key, "url": acc[0], "citations": acc[1]}))
    rows | "Urls" >> beam.Map(lambda r: r["url"]) | "Text" >> beam.io.WriteToText(
        fs.join(out_dir, "urls"), file_name_suffix=".txt", shard_name_template="-SSSSS-of-NNNNN")
    return rows | "Shards" >> beam_utils.WriteShards(out_dir, lambda r: "urls", target_bytes, schema=URL_SCHEMA)


def run(inputs, out_dir, languages=("en",), target_bytes=256 << 20, runner="DirectRunner", beam_args=None,
        force=False, input_prefix=None, dry_run=False, unit_bytes=UNIT_BYTES, reference=False):
    check_inputs(inputs, input_prefix)
    languages = list(languages) if languages else None
    return beam_utils.run_step(
        lambda p: build(p, inputs, out_dir, languages, input_prefix, unit_bytes, target_bytes, reference),
        out_dir, runner, beam_args, force, dry_run=dry_run,
        extra={"inputs": list(inputs), "languages": languages, "reference": reference})
