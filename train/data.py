"""Deterministic, resumable, rank-sharded loader over token Parquet shards.

One epoch is a stream of sequences: the shards in a seeded random order, and the rows of
each shard in a seeded random order (so a rank reads one shard at a time: memory is one
shard).  Micro-batch ``i`` of the whole job is stream positions
``[i*B*W, (i+1)*B*W)``, of which rank ``r`` takes ``[r*B, (r+1)*B)`` (B micro-batch size,
W world size).  The position (epoch, offset) is all the state there is: saved in the
checkpoint, it makes a resumed run see exactly the batches that come next.  A stream
remainder smaller than one global micro-batch is skipped at the epoch end.

The last ``val_fraction`` of each shard's rows are held out for validation.  Inputs are
``tokens[:-1]``, targets ``tokens[1:]``; a short last row of a shard is padded (pad id 0,
targets -100, ignored by the loss).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from filters.errors import InputError
from core.output import open_shard


@dataclass
class Position:
    epoch: int = 0
    offset: int = 0

    def to_dict(self):
        return {"epoch": self.epoch, "offset": self.offset}


def shard_files(path: str | Path) -> list[Path]:
    from core import output

    p = Path(path)
    if p.is_dir():  # the same completion check as every other consumer
        output.require_complete(str(p), "the token shards", "llama tokenize")
    files = [p] if p.is_file() else sorted(f for f in p.glob("*.parquet"))
    if not files:
        raise InputError(f"{path}: no token shards (part-*.parquet); run `llama tokenize` first")
    return files


class TokenLoader:
    def __init__(self, path, seq_len: int, micro_batch: int, rank: int = 0, world: int = 1, seed: int = 0,
                 val_fraction: float = 0.0):
        self.files = shard_files(path)
        self.seq_len, self.micro_batch, self.rank, self.world, self.seed = seq_len, micro_batch, rank, world, seed
        rows = []
        for f in self.files:
            rows.append(open_shard(f, "tokens", "token").metadata.num_rows)
        self.val_rows = [math.ceil(n * val_fraction) if val_fraction > 0 else 0 for n in rows]
        self.train_rows = [n - v for n, v in zip(rows, self.val_rows)]
        self.epoch_len = sum(self.train_rows)
        self.global_batch = micro_batch * world
        if self.epoch_len < self.global_batch:
            raise InputError(f"{path}: {self.epoch_len} training sequences, fewer than one global micro-batch "
                             f"({micro_batch} x {world} ranks)")
        self.pos = Position()
        self._cache: tuple[int, list] | None = None

    # -- the stream
    def _epoch_order(self, epoch: int):
        rng = np.random.default_rng([self.seed, epoch])
        file_order = rng.permutation(len(self.files))
        row_orders = {int(i): rng.permutation(self.train_rows[i]) for i in file_order}
        return file_order, row_orders

    def _locate(self, epoch: int, index: int) -> tuple[int, int]:
        file_order, row_orders = self._epoch_order(epoch)
        for fi in file_order:
            n = self.train_rows[fi]
            if index < n:
                return int(fi), int(row_orders[int(fi)][index])
            index -= n
        raise IndexError(index)

    def _row(self, fi: int, ri: int) -> list[int]:
        if self._cache is None or self._cache[0] != fi:
            self._cache = (fi, pq.read_table(self.files[fi], columns=["tokens"]).column("tokens").to_pylist())
        return self._cache[1][ri]

    def _batch(self, rows: list[list[int]]):
        x = torch.zeros((len(rows), self.seq_len - 1), dtype=torch.long)
        y = torch.full((len(rows), self.seq_len - 1), -100, dtype=torch.long)
        for i, r in enumerate(rows):
            r = r[: self.seq_len]
            n = len(r) - 1
            if n <= 0:
                continue
            x[i, :n] = torch.tensor(r[:-1])
            y[i, :n] = torch.tensor(r[1:])
        return x, y

    def next_batch(self):
        """This rank's next micro-batch (inputs, targets); advances the shared position."""
        if self.pos.offset + self.global_batch > self.epoch_len:
            self.pos = Position(self.pos.epoch + 1, 0)
        start = self.pos.offset + self.rank * self.micro_batch
        order_epoch = self.pos.epoch
        rows = [self._row(*self._locate(order_epoch, start + i)) for i in range(self.micro_batch)]
        self.pos = Position(self.pos.epoch, self.pos.offset + self.global_batch)
        return self._batch(rows)

    def state_dict(self) -> dict:
        return self.pos.to_dict()

    def load_state_dict(self, state: dict) -> None:
        self.pos = Position(int(state["epoch"]), int(state["offset"]))

    # -- validation rows (this rank's share)
    def val_batches(self, max_batches: int | None = None):
        pairs = [(fi, self.train_rows[fi] + j) for fi in range(len(self.files)) for j in range(self.val_rows[fi])]
        mine = pairs[self.rank::self.world]
        for b, i in enumerate(range(0, len(mine), self.micro_batch)):
            if max_batches is not None and b >= max_batches:
                break
            chunk = mine[i:i + self.micro_batch]
            rows = []
            for fi, ri in chunk:
                table = pq.read_table(self.files[fi], columns=["tokens"]).slice(ri, 1)
                rows.append(table.column("tokens")[0].as_py())
            yield self._batch(rows)
