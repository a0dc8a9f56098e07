"""Regenerate ``redpajama_arxiv_expected.json``: RedPajama's ArXiv cleaner run once on the
shared arXiv sample.

    git clone https://github.com/togethercomputer/RedPajama-Data /tmp/rpj
    git -C /tmp/rpj checkout 45b37c2a1d1e495b0f48549ef3ce03ff029f7881   # branch rp_v1
    .venv/bin/python -m tests.reference.generate_redpajama_arxiv --redpajama /tmp/rpj

The cleaner runs as it is, as its own process: ``ArxivCleaner(data_dir, work_dir,
target_dir).run()`` over a bulk archive laid out as arXiv's (``arXiv_src_<yymm>.tar`` holding
``<yymm>/<paper>.gz`` files), made here from the shared papers: each paper a ``.tar.gz`` of
its ``.tex`` files in sorted path order (the sample is unpacked sources; a real arXiv tar's
member order is the submitter's).  Its language step needs ``models/lid.176.bin`` in the
working directory: the shared ``lid.176.ftz`` is linked there.  Per paper the record holds
the SHA-1 and length of the text it writes, the number of lines, its language, and the
files in the order the cleaner saw them.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "redpajama_arxiv_expected.json"
REDPAJAMA_COMMIT = "45b37c2a1d1e495b0f48549ef3ce03ff029f7881"
SCRIPT_DIR = "data_prep/arxiv"
YYMM = "0000"


def sample_papers(data: Path) -> list[Path]:
    return sorted(p for p in (data / "arxiv").iterdir() if p.is_dir())


def tex_files(paper: Path) -> list[str]:
    """The paper's .tex files in the order the archive holds them (sorted paths)."""
    return sorted(str(f.relative_to(paper)) for f in paper.rglob("*.tex"))


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _paper_gz(paper: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel in tex_files(paper):
            tar.add(paper / rel, arcname=rel)
    return buf.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redpajama", required=True, help=f"a checkout of RedPajama-Data at {REDPAJAMA_COMMIT[:7]}")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    a = ap.parse_args(argv)
    data = Path(a.data)
    papers = sample_papers(data)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        with tarfile.open(tmp / "in" / f"arXiv_src_{YYMM}.tar", "w") as bulk:
            for paper in papers:
                blob = _paper_gz(paper)
                info = tarfile.TarInfo(f"{YYMM}/{paper.name}.gz")
                info.size = len(blob)
                bulk.addfile(info, io.BytesIO(blob))
        (tmp / "models").mkdir()
        (tmp / "models" / "lid.176.bin").symlink_to(data / "models" / "fasttext-lid.176" / "lid.176.ftz")
        code = ("import pathlib, sys; sys.path.insert(0, sys.argv[1]); from arxiv_cleaner import ArxivCleaner; "
                "ArxivCleaner(pathlib.Path('in'), pathlib.Path('work'), pathlib.Path('out')).run()")
        subprocess.run([sys.executable, "-c", code, str(Path(a.redpajama) / SCRIPT_DIR)], cwd=tmp, check=True)
        records = {json.loads(line)["meta"]["arxiv_id"]: json.loads(line)
                   for line in (tmp / "out" / "arxiv.jsonl").read_text("utf-8").splitlines()}
    out = []
    for paper in papers:
        rec = records.get(paper.name)
        entry = {"paper": paper.name, "files": tex_files(paper)}
        if rec is None:
            entry["dropped"] = True
        else:
            text = rec["text"]
            entry.update(sha1=sha1(text), chars=len(text), lines=text.count("\n") + 1,
                         language=rec["meta"]["language"])
        out.append(entry)
        print(f"{paper.name}: {entry.get('chars', 'dropped')}", file=sys.stderr)
    EXPECTED.write_text(json.dumps({"reference": f"togethercomputer/RedPajama-Data@{REDPAJAMA_COMMIT}:"
                                                 f"{SCRIPT_DIR}/arxiv_cleaner.py", "papers": out}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
