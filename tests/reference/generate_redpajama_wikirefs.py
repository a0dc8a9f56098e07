"""Regenerate ``redpajama_wikirefs_expected.json``: RedPajama's ``extract_urls.py`` run once on
every dump of the shared Wikipedia sample.

    git clone https://github.com/togethercomputer/RedPajama-Data /tmp/rpj
    git -C /tmp/rpj checkout 45b37c2a1d1e495b0f48549ef3ce03ff029f7881   # branch rp_v1
    .venv/bin/python -m tests.reference.generate_redpajama_wikirefs --redpajama /tmp/rpj

The script runs as it is, as its own process (``--data <dump.xml> --output <urls.txt>``), on
each dump decompressed (it reads uncompressed XML); the UTF-16 dump is left out (the script
opens files as UTF-8 and finds nothing in it).  Per dump the record holds the number of URLs
it writes, the SHA-1 of its output (one URL a line, in its order) and how many of its URLs
end in an XML entity fragment (``&amp``, ``&lt``, ...): the bug ``filters/wikirefs.py`` fixes.
"""
from __future__ import annotations

import argparse
import bz2
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "redpajama_wikirefs_expected.json"
REDPAJAMA_COMMIT = "45b37c2a1d1e495b0f48549ef3ce03ff029f7881"
SCRIPT = "data_prep/cc/classifier/extract_urls.py"
ENTITY_TAIL = re.compile(r"&(?:amp|lt|gt|quot)$")


def sample_dumps(data: Path) -> list[Path]:
    return sorted(p for p in (data / "wikipedia").glob("*wiki-*.bz2") if "UTF-16" not in p.name)


def digest(urls: list[str]) -> str:
    return hashlib.sha1("\n".join(urls).encode("utf-8")).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redpajama", required=True, help=f"a checkout of RedPajama-Data at {REDPAJAMA_COMMIT[:7]}")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    a = ap.parse_args(argv)
    dumps = []
    with tempfile.TemporaryDirectory() as tmp:
        for dump in sample_dumps(Path(a.data)):
            xml, out = Path(tmp) / "dump.xml", Path(tmp) / "urls.txt"
            xml.write_bytes(bz2.decompress(dump.read_bytes()))
            subprocess.run([sys.executable, str(Path(a.redpajama) / SCRIPT), "--data", str(xml), "--output", str(out)],
                           check=True)
            urls = out.read_text("utf-8").splitlines()
            dumps.append({"dump": dump.name, "urls": len(urls), "sha1": digest(urls),
                          "entity_tails": sum(bool(ENTITY_TAIL.search(u)) for u in urls)})
            print(f"{dump.name}: {len(urls)} URLs", file=sys.stderr)
    EXPECTED.write_text(json.dumps({"reference": f"togethercomputer/RedPajama-Data@{REDPAJAMA_COMMIT}:{SCRIPT}",
                                    "dumps": dumps}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
