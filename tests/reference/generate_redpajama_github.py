"""Regenerate ``redpajama_github_expected.json``: RedPajama-1T's GitHub code run once on every
file of the shared GitHub sample (all repositories, whatever their licence).

    git clone https://github.com/togethercomputer/RedPajama-Data /tmp/rpj
    git -C /tmp/rpj checkout 45b37c2a1d1e495b0f48549ef3ce03ff029f7881   # branch rp_v1; data_prep/github as in f54b86f
    .venv/bin/python -m tests.reference.generate_redpajama_github --redpajama /tmp/rpj

Per file it records what ``github_clean_dedup_local.py`` computes (skipped as a certificate
or the top-level LICENSE; the MD5 of the raw content; ``clean_copyright_comments`` -- its
SHA-1; ``get_filecontent_stats``) and ``github_run_filter.discard_record``'s decision.
``discard_record`` counts tokens with ``transformers.AutoTokenizer.from_pretrained(
"EleutherAI/pythia-6.9b-deduped")``; here that name is given the LLaMA vocabulary
(``core.paths.llama_tokenizer()``, through HuggingFace ``tokenizers``), the deliberate
deviation ``filters/github.py`` documents -- so the record also says, per file, the
alphabetic characters per token.  The scripts' command lines are given empty arguments.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "redpajama_github_expected.json"
REDPAJAMA_COMMIT = "45b37c2a1d1e495b0f48549ef3ce03ff029f7881"


def sample_files(data: Path) -> list[tuple[str, str, str]]:
    """(repo, path in the repo, content) of every file of the shared GitHub sample, as the
    pipeline reads them (UTF-8, undecodable bytes replaced)."""
    out = []
    for repo in sorted(p for p in (data / "github").iterdir() if p.is_dir()):
        for f in sorted(p for p in repo.rglob("*") if p.is_file()):
            out.append((repo.name, f.relative_to(repo).as_posix(), f.read_bytes().decode("utf-8", "replace")))
    return out


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redpajama", required=True, help=f"a checkout of RedPajama-Data at {REDPAJAMA_COMMIT[:7]}")
    a = ap.parse_args(argv)
    from tokenizers import Tokenizer

    from core import paths

    llama = Tokenizer.from_file(str(paths.llama_tokenizer()))

    class _AutoTokenizer:  # what github_run_filter asks transformers for
        @staticmethod
        def from_pretrained(name):
            assert name == "EleutherAI/pythia-6.9b-deduped", name
            return types.SimpleNamespace(tokenize=lambda text: llama.encode(text, add_special_tokens=False).tokens)

    sys.modules["transformers"] = types.SimpleNamespace(AutoTokenizer=_AutoTokenizer)
    gh = Path(a.redpajama) / "data_prep" / "github"
    saved, sys.argv = sys.argv, [sys.argv[0]]
    try:
        clean = _load(gh / "github_clean_dedup_local.py", "rp_github_clean")
        run_filter = _load(gh / "github_run_filter.py", "rp_github_filter")
    finally:
        sys.argv = saved

    rows = []
    for repo, path, content in sample_files(paths.shared_data()):
        row = {"repo": repo, "path": path}
        if path.endswith(".crt") or path == "LICENSE":  # preprocess_source's two skips
            row["skipped"] = True
            rows.append(row)
            continue
        text = clean.clean_copyright_comments(content)
        stats = clean.get_filecontent_stats(text)
        record = {"text": text, "meta": {"path": path, **stats}}
        tokens = run_filter.get_token_count(text) if text else 0
        row.update(skipped=False, md5=hashlib.md5(content.encode("utf8")).hexdigest(),
                   cleaned_sha1=hashlib.sha1(text.encode("utf-8")).hexdigest(), stats=stats,
                   alpha_per_token=(sum(c.isalpha() for c in text) / tokens) if tokens else None,
                   discard=bool(run_filter.discard_record(record)))
        rows.append(row)
    EXPECTED.write_text(json.dumps({"reference": f"togethercomputer/RedPajama-Data@{REDPAJAMA_COMMIT}",
                                    "tokenizer": "LLaMA vocabulary (core.paths.llama_tokenizer) for Pythia's",
                                    "files": rows}, indent=1) + "\n")
    print(f"{len(rows)} files -> {EXPECTED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
