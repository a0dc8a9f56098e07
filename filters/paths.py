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
