"""Deterministic, resumable, rank-sharded loader over token shards, O(1) per sample.

**The sample index** (as Megatron's and gpt-neox's ``.bin``/``.idx``): each Parquet shard of
``llama tokenize`` is laid out once as a memory-mapped array, ``<data>/index-seq<L>/``
``part-NNNNN.npy`` (rows x ``seq_len`` token ids: uint16 when the vocabulary fits, else
int32) and ``part-NNNNN.len.npy`` (each row's length), built shard by shard in bounded
memory and renamed into place when whole, then stamped (``part-NNNNN.src``: the shard's
name, size and time) -- a killed build leaves no half entry, a remade shard is laid out
again, and the next run redoes only what is missing.  Reading a sample is a slice of a memory map: no shard
is held in memory, the page cache does the rest.  In a distributed run rank 0 builds it
before the others open it (``build_index``; the token directory must be on a filesystem
every node sees).

**The stream.**  An epoch is a permutation of all training rows of all shards, computed
per sample by a keyed bijection on ``[0, N)`` (a 4-round Feistel network with cycle
walking, keyed by (seed, epoch)): O(1) time and no memory, where a stored permutation of
the paper's 680M sequences would take 5.5 GB per rank.  A global index is located in its
shard by a binary search of the cumulative row counts.  Micro-batch ``i`` of the job is
stream positions ``[i*B*W, (i+1)*B*W)``, of which rank ``r`` takes ``[r*B, (r+1)*B)`` (B
micro-batch size, W world size).  The position (epoch, offset) counts samples of the
global stream, so a checkpoint resumes exactly where it left off -- also on another number
of ranks (a stream remainder smaller than one global micro-batch is skipped at the epoch
end).  The next micro-batch is read ahead in a background thread.

Validation reads the held-out split ``llama tokenize`` made (``<data>/val/``: documents never
trained on), laid out the same way; training then reads every row of the training shards.
Shards made without that split fall back to holding out the last ``val_fraction`` of each
shard's rows, with a warning.  Every rank gets the same number of validation batches
(ZeRO-3 gathers parameters collectively, so ranks with uneven batch counts would wait on
each other forever).  Inputs are ``tokens[:-1]``, targets ``tokens[1:]``; a short row is
padded (pad id 0, targets -100, ignored by the loss).
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.output import open_shard
from core.errors import InputError

PERM_CHUNK = 4096  # stream positions permuted at once


@dataclass
class Position:
    epoch: int = 0
    offset: int = 0

    def to_dict(self):
        return {"epoch": self.epoch, "offset": self.offset}


def shard_files(path: str | Path, complete: bool = True) -> list[Path]:
    """The token shards directly in ``path`` (not its ``val/`` split); ``complete=False``: the
    directory is part of an output already checked (the split itself)."""
    from core import output

    p = Path(path)
    if p.is_dir() and complete:  # the same completion check as every other consumer
        output.require_complete(str(p), "the token shards", "llama tokenize")
    files = [p] if p.is_file() else sorted(f for f in p.glob("*.parquet"))
    if not files:
        raise InputError(f"{path}: no token shards (part-*.parquet); run `llama tokenize` first")
    return files


# ------------------------------------------------------------------ the sample index

def _token_dir(path: str | Path) -> Path:
    p = Path(path)
    return p if p.is_dir() else p.parent


def token_manifest(data: str | Path) -> dict:
    """``llama tokenize``'s manifest.json beside the token shards: the vocabulary and sequence
    length they were made with -- never guessed."""
    manifest = _token_dir(data) / "manifest.json"
    try:
        m = json.loads(manifest.read_text())
        m["vocab_size"], m["seq_len"] = int(m["vocab_size"]), int(m.get("seq_len") or 0)
        return m
    except FileNotFoundError:
        raise InputError(f"{data}: no manifest.json beside the token shards (it records the vocabulary "
                         f"they were made with); make them with `llama tokenize`") from None
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{manifest}: unreadable token manifest ({type(e).__name__}: {e}); "
                         f"remake the shards with `llama tokenize`") from None


def index_dir(path: str | Path, seq_len: int) -> Path:
    return _token_dir(path) / f"index-seq{seq_len}"


VAL = "val"  # llama tokenize's held-out split, a subdirectory of the token shards


def val_dir(path: str | Path) -> Path | None:
    d = _token_dir(path) / VAL
    return d if d.is_dir() and any(d.glob("*.parquet")) else None


def _vocab_dtype(path: str | Path):
    """uint16 when the manifest's vocabulary fits (LLaMA's 32000 does), else int32 (also for
    shards without a manifest, which the trainer refuses but a benchmark may read)."""
    try:
        vocab = token_manifest(path)["vocab_size"]
    except InputError:
        return np.int32
    return np.uint16 if vocab <= np.iinfo(np.uint16).max else np.int32


def _fingerprint(shard: Path) -> str:
    st = shard.stat()
    return f"{shard.name} {st.st_size} {st.st_mtime_ns}"


def _current(stamp: Path, shard: Path) -> bool:
    """The shard's index entry is whole and was made from this very file (a shard remade or
    replaced since -- another size or time -- is laid out again)."""
    try:
        return stamp.read_text() == _fingerprint(shard)
    except OSError:
        return False


def _build_shard(src: Path, tokens_out: Path, lengths_out: Path, seq_len: int, dtype) -> None:
    pf = open_shard(str(src), "tokens", "token")
    n = pf.metadata.num_rows
    tmp = f".{uuid.uuid4().hex}.tmp.npy"
    tok_tmp, len_tmp = tokens_out.with_name(tokens_out.name + tmp), lengths_out.with_name(lengths_out.name + tmp)
    try:
        arr = np.lib.format.open_memmap(tok_tmp, mode="w+", dtype=dtype, shape=(n, seq_len))
        lens = np.lib.format.open_memmap(len_tmp, mode="w+", dtype=np.int32, shape=(n,))
        row = 0
        for batch in pf.iter_batches(batch_size=1024, columns=["tokens"], use_threads=False):
            col = batch.column(0)
            offsets = col.offsets.to_numpy()
            values = col.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]]
            if len(values) and (values.min() < 0 or values.max() > np.iinfo(dtype).max):
                raise InputError(f"{src}: token id {int(values.max())} does not fit the vocabulary of "
                                 f"manifest.json; remake the shards with `llama tokenize`")
            k, sizes = len(col), np.diff(offsets)
            if (sizes == seq_len).all():  # the common case: whole rows, one copy
                arr[row:row + k] = values.reshape(k, seq_len)
                lens[row:row + k] = seq_len
            else:
                for i in range(k):
                    ids = values[offsets[i] - offsets[0]:offsets[i + 1] - offsets[0]][:seq_len]
                    arr[row + i, :len(ids)] = ids
                    arr[row + i, len(ids):] = 0
                    lens[row + i] = len(ids)
            row += k
        arr.flush()
        lens.flush()
        del arr, lens
        os.replace(len_tmp, lengths_out)
        os.replace(tok_tmp, tokens_out)
        stamp = tokens_out.with_suffix(".src")
        stamp_tmp = stamp.with_name(stamp.name + tmp)
        stamp_tmp.write_text(_fingerprint(src))
        os.replace(stamp_tmp, stamp)   # last: an index entry is whole when its .src names its shard
    finally:
        for t in (tok_tmp, len_tmp):
            if t.exists():
                t.unlink()


def build_index(path: str | Path, seq_len: int, progress: bool = False) -> Path:
    """Lay out every shard that has no index yet (see the module docstring), and those of the
    held-out split; returns the index directory.  Idempotent; safe to run twice at once (each
    writes its own temporary files and renames them into place)."""
    dtype = _vocab_dtype(path)  # the manifest beside the training shards holds for val/ too
    held = val_dir(path)
    if held is not None:
        _build_dir(held, shard_files(held, complete=False), seq_len, dtype, progress)
    return _build_dir(path, shard_files(path), seq_len, dtype, progress)


def _build_dir(path, files, seq_len: int, dtype, progress: bool) -> Path:
    out = index_dir(path, seq_len)
    out.mkdir(exist_ok=True)
    todo = [f for f in files if not _current(out / f"{f.stem}.src", f)]
    for k, f in enumerate(todo):
        if progress:
            print(f"indexing token shards: {k + 1}/{len(todo)} {f.name}", flush=True)
        _build_shard(f, out / f"{f.stem}.npy", out / f"{f.stem}.len.npy", seq_len, dtype)
    return out


def _open(idx: Path, files: list[Path]):
    return ([np.load(idx / f"{f.stem}.npy", mmap_mode="r") for f in files],
            [np.load(idx / f"{f.stem}.len.npy", mmap_mode="r") for f in files])


# ------------------------------------------------------------------ the permutation

def _mix(x, key: int):
    """A 64-bit mixing function (splitmix64's finaliser) of ``x ^ key``; numpy uint64 arrays."""
    x = (x ^ np.uint64(key)) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class Permutation:
    """A keyed bijection of ``[0, n)``: a balanced Feistel network on the smallest even
    number of bits covering ``n``, walked again while the value falls outside (at most a
    few times: the domain is < 4n).  ``perm(indices)`` maps a numpy array of indices."""

    def __init__(self, n: int, seed: int, epoch: int):
        self.n = int(n)
        bits = max(2, (self.n - 1).bit_length())
        self.half = (bits + 1) // 2
        self.mask = np.uint64((1 << self.half) - 1)
        rng = np.random.default_rng([int(seed), int(epoch), 0x5EED])
        self.keys = [int(k) for k in rng.integers(0, 1 << 63, size=4, dtype=np.int64)]

    def _round_trip(self, x):
        left, right = x >> np.uint64(self.half), x & self.mask
        for key in self.keys:
            left, right = right, left ^ (_mix(right, key) & self.mask)
        return (left << np.uint64(self.half)) | right

    def __call__(self, idx) -> np.ndarray:
        x = np.asarray(idx, dtype=np.uint64)
        out = self._round_trip(x)
        outside = out >= np.uint64(self.n)
        while outside.any():  # cycle walking: stays a bijection of [0, n)
            out[outside] = self._round_trip(out[outside])
            outside = out >= np.uint64(self.n)
        return out.astype(np.int64)


# ------------------------------------------------------------------ the loader

class TokenLoader:
    def __init__(self, path, seq_len: int, micro_batch: int, rank: int = 0, world: int = 1, seed: int = 0,
                 val_fraction: float = 0.0, prefetch: bool = True, build: bool = True):
        """``build=False``: the index is known to be current (the trainer's rank 0 built it
        before every rank opens it), so its stamps are not read again on every rank."""
        self.files = shard_files(path)
        self.seq_len, self.micro_batch, self.rank, self.world, self.seed = seq_len, micro_batch, rank, world, seed
        idx = build_index(path, seq_len) if build else index_dir(path, seq_len)
        self.tokens, self.lengths = _open(idx, self.files)
        rows = np.array([len(t) for t in self.tokens], np.int64)
        held = val_dir(path)
        if held is not None:  # llama tokenize's held-out documents: training keeps every row
            self.val_tokens, self.val_lengths = _open(index_dir(held, seq_len), shard_files(held, complete=False))
            val_rows, self.val_first = np.zeros_like(rows), None
            held_rows = np.array([len(t) for t in self.val_tokens], np.int64)
        else:
            if val_fraction > 0:
                import warnings

                warnings.warn(f"{path}: the token shards have no held-out split (val/); holding out the last "
                              f"{val_fraction:.0%} of every shard's rows instead. Remake them with `llama tokenize` "
                              f"for documents never trained on", stacklevel=2)
            val_rows = np.ceil(rows * val_fraction).astype(np.int64) if val_fraction > 0 else np.zeros_like(rows)
            self.val_tokens, self.val_lengths = self.tokens, self.lengths
            held_rows, self.val_first = val_rows, rows - val_rows
        self.train_rows = rows - val_rows
        self.cum = np.concatenate([[0], np.cumsum(self.train_rows)]).astype(np.int64)
        self.val_cum = np.concatenate([[0], np.cumsum(held_rows)]).astype(np.int64) if val_fraction > 0 \
            else np.zeros(1, np.int64)
        self.epoch_len = int(self.cum[-1])
        self.global_batch = micro_batch * world
        if self.epoch_len < self.global_batch:
            raise InputError(f"{path}: {self.epoch_len} training sequences, fewer than one global micro-batch "
                             f"({micro_batch} x {world} ranks)")
        self.pos = Position()
        self._perm: tuple | None = None
        self._prefetch = concurrent.futures.ThreadPoolExecutor(1) if prefetch else None
        self._ahead = None  # (position it was read at, future of the batch)

    # -- reading rows
    def _rows(self, cum, global_rows, first_rows=None, val: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) of the rows at ``global_rows`` of the index space ``cum``
        (cumulative rows per shard; ``first_rows``: each shard's first row of that space, 0
        when None) of the training shards, or of the validation shards (``val``)."""
        tokens, lengths = (self.val_tokens, self.val_lengths) if val else (self.tokens, self.lengths)
        shards = np.searchsorted(cum, global_rows, side="right") - 1
        local = global_rows - cum[shards] + (0 if first_rows is None else first_rows[shards])
        rows = np.empty((len(global_rows), self.seq_len), dtype=np.int64)
        lens = np.empty(len(global_rows), dtype=np.int64)
        for s in np.unique(shards).tolist():  # one gather per shard touched
            m = shards == s
            rows[m] = tokens[s][local[m]]
            lens[m] = lengths[s][local[m]]
        t = torch.from_numpy(rows)
        x, y = t[:, :-1].clone(), t[:, 1:].clone()
        pad = torch.arange(self.seq_len - 1)[None, :] >= torch.from_numpy(lens - 1)[:, None]
        x[pad], y[pad] = 0, -100
        return x, y

    def _read(self, pos: Position):
        start = pos.offset + self.rank * self.micro_batch
        return self._rows(self.cum, self._stream(pos.epoch, start, start + self.micro_batch))

    def _stream(self, epoch: int, start: int, stop: int) -> np.ndarray:
        """Stream positions ``[start, stop)`` of ``epoch`` -> global row indices, computed
        ``PERM_CHUNK`` positions at a time (numpy's per-call cost amortised)."""
        cached = self._perm  # (epoch, chunk, rows): one reference, also read by the prefetch thread
        c0, c1 = start // PERM_CHUNK, (stop - 1) // PERM_CHUNK
        if cached is None or cached[:2] != (epoch, c0) or c1 != c0:
            perm = Permutation(self.epoch_len, self.seed, epoch)
            lo, hi = c0 * PERM_CHUNK, min((c1 + 1) * PERM_CHUNK, self.epoch_len)
            cached = self._perm = (epoch, c0, perm(np.arange(lo, hi)))
        return cached[2][start - c0 * PERM_CHUNK:stop - c0 * PERM_CHUNK]

    def _valid(self, pos: Position) -> Position:
        if pos.offset + self.global_batch > self.epoch_len:
            return Position(pos.epoch + 1, 0)
        return pos

    def next_batch(self):
        """This rank's next micro-batch (inputs, targets); advances the shared position."""
        pos = self._valid(self.pos)
        if self._ahead is not None and self._ahead[0] == pos:
            batch = self._ahead[1].result()
        else:
            batch = self._read(pos)
        self.pos = Position(pos.epoch, pos.offset + self.global_batch)
        if self._prefetch is not None:
            nxt = self._valid(self.pos)
            self._ahead = (nxt, self._prefetch.submit(self._read, nxt))
        return batch

    def state_dict(self) -> dict:
        return self.pos.to_dict()

    def load_state_dict(self, state: dict) -> None:
        self.pos = Position(int(state["epoch"]), int(state["offset"]))
        self._ahead = None

    # -- validation rows
    def val_batches(self, max_batches: int | None = None):
        """Every rank's share of the held-out rows, the same number of batches on every rank
        (the rows that would make them uneven are left out)."""
        total = int(self.val_cum[-1])
        n_batches = total // (self.micro_batch * self.world)
        if max_batches is not None:
            n_batches = min(n_batches, max_batches)
        for b in range(n_batches):
            start = (b * self.world + self.rank) * self.micro_batch
            yield self._rows(self.val_cum, np.arange(start, start + self.micro_batch), self.val_first, val=True)
