"""Where the bundled data, models and outputs live (all overridable by env vars)."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def shared_data() -> Path:
    return Path(os.environ.get("LLAMA_SHARED_DATA", REPO.parent / "shared" / "data"))


def out_dir() -> Path:
    return Path(os.environ.get("LLAMA_OUT", REPO / "out"))


def lid_model() -> Path:
    return Path(os.environ.get("LLAMA_LID_MODEL",
                               shared_data() / "models" / "fasttext-lid.176" / "lid.176.ftz"))


def lm_dir() -> Path:
    return Path(os.environ.get("LLAMA_LM_DIR", out_dir() / "lm"))


def walk_files(root: str | Path, suffixes: tuple[str, ...] | None = None, name: str | None = None,
               skip_dirs: tuple[str, ...] = ("_tmp", ".git")) -> list[Path]:
    """Files under ``root`` in sorted order, following symlinked directories (``Path.rglob``
    does not on Python < 3.13), optionally filtered by suffix or exact (case-insensitive) name."""
    import os

    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        for f in filenames:
            if suffixes is not None and not f.endswith(suffixes):
                continue
            if name is not None and f.lower() != name.lower():
                continue
            out.append(Path(dirpath) / f)
    return sorted(out)


def expand_paths(inputs: list[str], what: str, suffixes: tuple[str, ...] | None = None,
                 name: str | None = None) -> list[str]:
    """The files named in ``inputs`` plus the matching files under the directories named
    (``walk_files``); remote paths (``scheme://...``) pass through unchecked.  A missing path,
    or a directory with no match, is an ``InputError`` naming it and ``what`` was expected."""
    from .errors import InputError

    files: list[str] = []
    for item in inputs:
        p = Path(item)
        if "://" in str(item):
            files.append(str(item))
        elif p.is_dir():
            found = walk_files(p, suffixes, name)
            if not found:
                raise InputError(f"{item}: no {what} under this directory")
            files += [str(f) for f in found]
        elif p.is_file():
            files.append(str(p))
        else:
            raise InputError(f"{item}: no such file or directory")
    return files
