"""`make bench`: throughput of the data pipelines and the filters on the bundled data (not a test)."""
from __future__ import annotations

import json
import tempfile
import time

from filters import paths


def timed(label, fn, n, unit):
    t = time.perf_counter()
    fn()
    dt = time.perf_counter() - t
    print(f"  {label:<42} {n:>8,} {unit} in {dt:6.2f}s = {n / dt:>10,.0f} {unit}/s")


def main() -> int:
    from filters.langid import LanguageIdentifier
    from filters.perplexity import LMPaths, PerplexityScorer
    from filters.text import line_hash
    from pipelines import ccnet, lm

    d = paths.shared_data()
    lm.train_lm([str(p) for p in sorted((d / "wikipedia").glob("enwiki-*"))], paths.lm_dir())
    docs = [json.loads(x)["text"] for x in (d / "langid" / "udhr_paragraphs.jsonl").open()]
    lines = [ln for t in docs for ln in t.split("\n")]
    print("filters (one thread):")
    lid = LanguageIdentifier(paths.lid_model())
    timed("fastText LID, UDHR paragraphs", lambda: [lid.predict(t) for t in docs], len(docs), "docs")
    timed("cc_net line hash", lambda: [line_hash(x) for x in lines], len(lines), "lines")
    pp = PerplexityScorer(LMPaths.in_dir(paths.lm_dir()))
    held = (paths.lm_dir() / "heldout.txt").read_text(encoding="utf-8").split("\n\n")
    timed("SentencePiece+KenLM perplexity, held-out wiki", lambda: [pp.score(t) for t in held],
          sum(map(len, held)), "chars")
    print("pipelines (DirectRunner, bundled data):")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ccnet.CCNetConfig([str(d / "cc")], f"{tmp}/ccnet", str(paths.lm_dir()), str(paths.lid_model()))
        t = time.perf_counter()
        stats = ccnet.run(cfg)
        dt = time.perf_counter() - t
        n = stats["counters"]["read"]["documents"]
        print(f"  {'CCNet, end to end incl. start-up':<42} {n:>8,} docs in {dt:6.2f}s = {n / dt:>10,.1f} docs/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
