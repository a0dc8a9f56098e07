"""Regenerate ``redpajama_stackexchange_expected.json``: RedPajama's StackExchange steps run once
on the shared site.

    git clone https://github.com/togethercomputer/RedPajama-Data /tmp/rpj
    git -C /tmp/rpj checkout 45b37c2a1d1e495b0f48549ef3ce03ff029f7881   # branch rp_v1
    pip install --target /tmp/rp_se beautifulsoup4==4.15.0 lxml==6.1.3 tqdm
    .venv/bin/python -m tests.reference.generate_redpajama_stackexchange --redpajama /tmp/rpj --deps /tmp/rp_se

``data_prep/stack_exchange/filter.py`` (Posts -> Q/A pairs; it counts the site's rows with
``count.py`` first) and ``post_processing.py`` (answers by score, ``cleanhtml``) run as they
are, as their own processes, in a working directory laid out as they expect: the site's
``Posts.xml`` as ``data/<site>.xml``, ``lid.176.bin`` (the shared ``lid.176.ftz``) in
``data/``; ``filter.py`` imports ``src.stack_exchange.count``, a path the repository does not
have (its file is ``data_prep/stack_exchange/count.py``), so that file is put there.  Per
question the record holds the SHA-1 and length of the text ``post_processing.py`` writes.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "redpajama_stackexchange_expected.json"
REDPAJAMA_COMMIT = "45b37c2a1d1e495b0f48549ef3ce03ff029f7881"
SCRIPTS = "data_prep/stack_exchange"
SITE = "beer.stackexchange.com"


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redpajama", required=True, help=f"a checkout of RedPajama-Data at {REDPAJAMA_COMMIT[:7]}")
    ap.add_argument("--deps", required=True, help="a directory with beautifulsoup4, lxml and tqdm (pip --target)")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    a = ap.parse_args(argv)
    data, scripts = Path(a.data), Path(a.redpajama) / SCRIPTS
    env = dict(os.environ, PYTHONPATH=a.deps, LEMMA_DATA_DIR_SE="./data/", LEMMA_DATA_DIR_SE_OUT="./out/")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "data").mkdir()
        shutil.copy(data / "stackexchange" / SITE / "Posts.xml", tmp / "data" / f"{SITE}.xml")
        (tmp / "data" / "lid.176.bin").symlink_to(data / "models" / "fasttext-lid.176" / "lid.176.ftz")
        (tmp / "src" / "stack_exchange").mkdir(parents=True)
        (tmp / "src" / "__init__.py").touch()
        (tmp / "src" / "stack_exchange" / "__init__.py").touch()
        shutil.copy(scripts / "count.py", tmp / "src" / "stack_exchange" / "count.py")
        for script in ("filter.py", "post_processing.py"):
            subprocess.run([sys.executable, str(scripts / script)], cwd=tmp, env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        records = [json.loads(line) for line in (tmp / "out" / f"{SITE}.jsonl").read_text("utf-8").splitlines()]
    questions = {r["meta"]["url"].rsplit("/", 1)[1]: {"sha1": sha1(r["text"]), "chars": len(r["text"])}
                 for r in records}
    EXPECTED.write_text(json.dumps({"reference": f"togethercomputer/RedPajama-Data@{REDPAJAMA_COMMIT}:{SCRIPTS}",
                                    "site": SITE, "questions": questions}, indent=1) + "\n")
    print(f"{SITE}: {len(questions)} questions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
