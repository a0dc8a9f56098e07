"""Which checkpoint to resume from: the newest one whose files are whole.

DeepSpeed writes a checkpoint as a directory of ``torch.save`` files (``<dir>/<tag>/``) and
then points ``<dir>/latest`` at the tag.  A run killed while writing, or a disk that filled
up, can leave the newest tag with a truncated file, and loading it fails deep inside torch
without naming the file.  ``resume_tag`` checks every file of a tag first -- a ``torch.save``
file is a zip archive whose directory sits at its end, so a truncated one has none -- and
falls back to the newest earlier tag that is whole, with a warning naming the bad file.
Every rank decides from the same files on the shared checkpoint directory, so all ranks
resume from the same tag (loading collectively).
"""
from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

from core.errors import InputError

log = logging.getLogger(__name__)
STEP_TAG = re.compile(r"^step(\d+)$")


def bad_file(tag_dir: Path) -> str | None:
    """The first file of a checkpoint tag that is not a whole ``torch.save`` archive, or None."""
    files = sorted(p for p in tag_dir.rglob("*") if p.is_file() and p.suffix in (".pt", ".pth", ".bin"))
    if not files:
        return f"{tag_dir}: no checkpoint files"
    for f in files:
        try:
            with zipfile.ZipFile(f) as z:
                z.infolist()
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            return f"{f}: {type(e).__name__}: {e}"
    return None


def step_tags(ckpt_dir: str | Path) -> list[str]:
    """The ``step<N>`` checkpoint tags in ``ckpt_dir``, oldest first."""
    found = []
    for p in Path(ckpt_dir).iterdir():
        m = STEP_TAG.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p.name))
    return [t for _, t in sorted(found)]


def resume_tag(ckpt_dir: str | Path) -> str | None:
    """The tag to resume from (None: no checkpoint, start from scratch).  A one-line error
    when checkpoints exist but none is whole."""
    ckpt_dir = Path(ckpt_dir)
    latest = ckpt_dir / "latest"
    if not latest.is_file():
        return None
    pointed = latest.read_text().strip()
    order = [pointed] + [t for t in reversed(step_tags(ckpt_dir)) if t != pointed]
    problems = []
    for tag in order:
        why = bad_file(ckpt_dir / tag)
        if why is None:
            if problems:
                log.warning("checkpoint %s is damaged (%s); resuming from %s instead",
                            problems[0][0], problems[0][1], tag)
            return tag
        problems.append((tag, why))
    raise InputError(f"{ckpt_dir}: no whole checkpoint to resume from ({'; '.join(w for _, w in problems)}); "
                     f"remove the directory to start over")
