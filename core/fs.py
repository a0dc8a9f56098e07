"""Storage through Beam's ``FileSystems``: every user path (input, output, marker, model)
may be local or ``gs://`` / ``s3://`` (any filesystem Beam has).

Local paths keep two local behaviours on purpose: directories are walked following
symlinks (Beam's local listing does not), and whole-file writes are made atomic with a
temporary file and ``os.replace`` (an object-store write is atomic by itself).
Models are *staged*: ``stage(path)`` gives a local copy in a per-machine cache, made
once, atomically and under a lock, so that several worker processes of one machine can
ask at once.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import tempfile
from typing import BinaryIO, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from .errors import InputError

if getattr(FileSystems, "_pipeline_options", None) is None:
    # Object stores need options (s3's client is built from them); a pipeline sets its own later,
    # but commands that run none (inspect, train-tokenizer, the launcher's checks) need these.
    from apache_beam.options.pipeline_options import PipelineOptions

    FileSystems.set_options(PipelineOptions([]))

_GLOB = set("*?[")
REJECTED = "_rejected"  # <out>/_rejected/: the documents a step's filters dropped (beam_utils.Rejects)
SKIP_DIRS = ("_tmp", ".git", REJECTED)


def is_remote(path: str) -> bool:
    return "://" in str(path)


def join(base: str, *parts: str) -> str:
    base = str(base)
    if not parts:
        return base
    if is_remote(base):
        return FileSystems.join(base.rstrip("/"), *[p.strip("/") for p in parts])
    return os.path.join(base, *parts)


def basename(path: str) -> str:
    return str(path).rstrip("/").rsplit("/", 1)[-1]


def dirname(path: str) -> str:
    return str(path).rstrip("/").rsplit("/", 1)[0]


def relpath(path: str, root: str) -> str:
    path, root = str(path), str(root).rstrip("/")
    return path[len(root) + 1:] if path.startswith(root + "/") else basename(path)


def has_glob(path: str) -> bool:
    return bool(_GLOB & set(str(path)))


def exists(path: str) -> bool:
    try:
        return FileSystems.exists(str(path))
    except Exception:  # a remote store that cannot be reached answers like a missing file
        return False


def isdir(path: str) -> bool:
    """A local directory, or a remote prefix with at least one object under it."""
    path = str(path)
    if not is_remote(path):
        return os.path.isdir(path)
    return bool(_match(path.rstrip("/") + "/**", limit=1))


def isfile(path: str) -> bool:
    path = str(path)
    if not is_remote(path):
        return os.path.isfile(path)
    return not path.endswith("/") and exists(path)


def size(path: str) -> int:
    if not is_remote(path):
        return os.path.getsize(path)  # FileNotFoundError for a missing file or a dangling link
    found = _match(str(path), limit=1)
    if not found:
        raise FileNotFoundError(f"no such file: {path}")
    return found[0].size_in_bytes


def _match(pattern: str, limit: int | None = None):
    try:
        result = FileSystems.match([pattern], [limit] if limit else None)[0]
    except Exception:
        return []
    return result.metadata_list


def list_files(root: str, suffixes: tuple[str, ...] | None = None, name: str | None = None,
               skip_dirs: tuple[str, ...] = SKIP_DIRS, limit: int | None = None, where=None) -> list[str]:
    """Files under ``root`` (sorted), optionally those ending in ``suffixes``, named ``name``
    (case-insensitive) or for which ``where(file name)`` holds.  Local directories are walked
    following symlinks."""
    root = str(root)
    out: list[str] = []

    def wanted(fname):
        return ((suffixes is None or fname.endswith(suffixes))
                and (name is None or fname.lower() == name.lower()) and (where is None or where(fname)))

    if not is_remote(root):
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
            for f in sorted(filenames):
                if wanted(f):
                    out.append(os.path.join(dirpath, f))
                    if limit and len(out) >= limit:
                        return sorted(out)
        return sorted(out)
    prefix = root.rstrip("/") + "/"
    for m in _match(prefix + "**"):
        rel = m.path[len(prefix):]
        if any(part in skip_dirs for part in rel.split("/")[:-1]) or not wanted(basename(m.path)):
            continue
        out.append(m.path)
        if limit and len(out) >= limit:
            break
    return sorted(out)


def glob(pattern: str) -> list[str]:
    """Files matching a glob (``*`` within a path segment, ``**`` across segments)."""
    if not is_remote(pattern):
        import glob as _glob

        return sorted(p for p in _glob.glob(pattern, recursive=True) if os.path.isfile(p))
    return sorted(m.path for m in _match(pattern))


def open_read(path: str) -> BinaryIO:
    """The raw bytes of a file (never decompressed by Beam; readers detect compression)."""
    return FileSystems.open(str(path), compression_type=CompressionTypes.UNCOMPRESSED)


def open_write(path: str) -> BinaryIO:
    path = str(path)
    if not is_remote(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


class _Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read (to sniff the format) and are replayed."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self.head, self.rest = head, rest

    def readable(self):
        return True

    def readinto(self, b):
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self):
        self.rest.close()
        super().close()


def open_decompressed(path: str) -> BinaryIO:
    """The bytes of a file, decompressed when it starts with a gzip or bz2 signature."""
    raw = open_read(path)
    head = raw.read(3)
    stream: BinaryIO = io.BufferedReader(_Prefixed(head, raw), buffer_size=1 << 20)
    if head[:2] == b"\x1f\x8b":
        import gzip

        return gzip.GzipFile(fileobj=stream)  # multi-member aware, streaming
    if head == b"BZh":
        import bz2

        return bz2.BZ2File(stream)  # multi-stream aware
    return stream


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def read_json(path: str):
    return json.loads(read_bytes(path))


def write_bytes(path: str, data: bytes) -> None:
    """Whole-file write; readers see the old file or the new one, never a part."""
    path = str(path)
    if is_remote(path):
        with open_write(path) as f:  # an object appears only when its upload completes
            f.write(data)
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


def copy_file(src: str, dst: str) -> None:
    """Stream one file to another place (local or remote, either side)."""
    if not is_remote(src) and not is_remote(dst):
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        tmp = dst + ".tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        return
    with open_read(src) as fin, open_write(dst) as fout:
        shutil.copyfileobj(fin, fout, 8 << 20)


def delete(path: str) -> None:
    """Delete a file or a whole directory (prefix) if present."""
    path = str(path)
    if not is_remote(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
        return
    if _match(path.rstrip("/") + "/**", limit=1):
        FileSystems.delete([path.rstrip("/") + "/"])
    elif exists(path):
        FileSystems.delete([path])


def mkdirs(path: str) -> None:
    if not is_remote(path):
        os.makedirs(str(path), exist_ok=True)


# ---------------------------------------------------------------- staging models locally

def cache_dir() -> str:
    return os.environ.get("LLAMA_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "llama"))


def stage(path: str, what: str = "model") -> str:
    """A local path for ``path``: itself when local, else a copy in the machine's cache.

    The copy is keyed by the full path, size and modification time (two models with one
    file name never collide; a replaced model is fetched again), made under a file lock
    and renamed into place, so concurrent worker processes download it once and never
    see a partial file."""
    path = str(path)
    if not is_remote(path):
        if not os.path.isfile(path):
            raise InputError(f"{path}: {what} not found")
        return path
    found = _match(path, limit=1)
    if not found or found[0].path != path:
        raise InputError(f"{path}: {what} not found")
    meta = found[0]
    key = hashlib.sha1(f"{path}\0{meta.size_in_bytes}\0{meta.last_updated_in_seconds}".encode()).hexdigest()[:16]
    d = os.path.join(cache_dir(), "staged")
    os.makedirs(d, exist_ok=True)
    local = os.path.join(d, f"{key}-{basename(path)}")
    if os.path.isfile(local):
        return local
    with open(local + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isfile(local):  # another process may have staged it meanwhile
            fd, tmp = tempfile.mkstemp(dir=d, prefix=".staging-")
            try:
                with os.fdopen(fd, "wb") as out, open_read(path) as src:
                    shutil.copyfileobj(src, out, 8 << 20)
                os.replace(tmp, local)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    return local


@contextlib.contextmanager
def scratch_dir(prefix: str = "llama-"):
    """A private local scratch directory for tools that need local files (KenLM, SentencePiece,
    fastText training), removed afterwards; results are then copied to the real output."""
    d = tempfile.mkdtemp(prefix=prefix)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def upload_dir(local_dir: str, dest: str, names: list[str]) -> None:
    """Copy ``names`` from a local directory to ``dest`` (local or remote), in that order."""
    for n in names:
        copy_file(os.path.join(local_dir, n), join(dest, n))


def iter_lines(path: str) -> Iterator[str]:
    """Text lines of a (possibly compressed) file, streamed."""
    with open_decompressed(path) as f:
        for line in io.TextIOWrapper(f, encoding="utf-8", errors="replace"):
            yield line.rstrip("\r\n")


def bounded_line(f: BinaryIO, cap: int) -> tuple[bytes | None, int]:
    """The next line of a binary stream (b"" at the end), or None if it is longer than ``cap``
    bytes -- read past in 1 MB pieces, never held -- and the bytes consumed."""
    line = f.readline(cap + 1)
    if len(line) <= cap or line.endswith(b"\n"):
        return line, len(line)
    n = len(line)
    while True:
        piece = f.readline(1 << 20)
        n += len(piece)
        if not piece or piece.endswith(b"\n"):
            return None, n


def bounded_lines(f: BinaryIO, cap: int) -> Iterator[bytes | None]:
    """Every line of a binary stream; None in place of each line longer than ``cap`` bytes
    (memory: one line of at most ``cap`` bytes)."""
    while True:
        line, _ = bounded_line(f, cap)
        if line == b"":
            return
        yield line
