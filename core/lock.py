"""One writer per output: a step holds a lock on its output directory while it writes it.

Two runs writing one ``--out`` would wipe each other's temporary files and one could mark
complete an output the other is still filling.  The lock lives *beside* the output
(``<parent>/.<name>.lock``), since a run wipes the output directory itself.

* Local disk: an OS lock (``flock``) on that file, released by the kernel when the holder
  exits however it exits; the file says who holds it (host, pid, run id, start time) and is
  removed when the holder is done (a killed holder leaves it, unlocked: the next run takes it).
* Object stores (``gs://``, ``s3://``), which have no locks: the lock object holds the run id
  of its writer.  A run refuses to start while another run's lock object is younger than
  ``LEASE_SECONDS`` (an older one is a crashed run's: taken over, with a warning), and
  refuses to mark its output complete unless the lock object still holds its own run id.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import contextmanager

from . import fs, output
from .errors import InputError

log = logging.getLogger(__name__)
LEASE_SECONDS = 24 * 3600


def lock_path(out_dir: str) -> str:
    out_dir = str(out_dir).rstrip("/")
    if not fs.is_remote(out_dir):
        out_dir = os.path.abspath(out_dir)
    return fs.join(fs.dirname(out_dir), f".{fs.basename(out_dir)}.lock")


def _holder(run_id: str) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "run_id": run_id, "started": time.time()}


def _describe(info: dict) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"run {info.get('run_id', '?')} (pid {info.get('pid', '?')} on {info.get('host', '?')}, since {started})"


class OutputLock:
    """Held while a step writes ``out_dir``; ``check()`` before marking it complete."""

    def __init__(self, out_dir: str, run_id: str):
        self.out_dir, self.run_id, self.path = str(out_dir), run_id, lock_path(out_dir)
        self._fh = None

    def acquire(self) -> "OutputLock":
        if fs.is_remote(self.out_dir):
            self._acquire_remote()
        else:
            self._acquire_local()
        return self

    def _acquire_local(self):
        import fcntl

        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        while True:
            fh = open(self.path, "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                try:
                    info = json.loads(fh.read() or "{}")
                except ValueError:
                    info = {}
                fh.close()
                raise InputError(f"{self.out_dir}: another {_describe(info)} is writing this output; wait for "
                                 f"it to finish or choose another --out") from None
            try:  # the holder removes the file as it releases: locked an unlinked file? open it anew
                if os.stat(self.path).st_ino == os.fstat(fh.fileno()).st_ino:
                    break
            except FileNotFoundError:
                pass
            fh.close()
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(_holder(self.run_id)))
        fh.flush()
        self._fh = fh

    def _acquire_remote(self):
        info = self._read_remote()
        if info and info.get("run_id") != self.run_id:
            age = time.time() - float(info.get("started", 0))
            if age < LEASE_SECONDS:
                raise InputError(f"{self.out_dir}: another {_describe(info)} is writing this output (lock "
                                 f"{self.path}); wait for it to finish, or delete the lock if that run is "
                                 f"dead, or choose another --out")
            log.warning("%s: taking over the lock of %s, older than %d h", self.out_dir, _describe(info),
                        LEASE_SECONDS // 3600)
        fs.write_text(self.path, json.dumps(_holder(self.run_id)))

    def _read_remote(self) -> dict | None:
        if not fs.exists(self.path):
            return None
        try:
            return json.loads(fs.read_text(self.path))
        except (ValueError, OSError):
            return {}

    def check(self) -> None:
        """Refuse to finalise an output whose lock another run has taken (object stores)."""
        if fs.is_remote(self.out_dir):
            info = self._read_remote()
            if not info or info.get("run_id") != self.run_id:
                raise InputError(f"{self.out_dir}: not marked complete: another "
                                 f"{_describe(info or {})} took over this output while this run wrote it")

    def mark_complete(self, stats: dict) -> None:
        """``output.mark_complete`` under this run's id, once ``check()`` says the output is
        still this run's."""
        self.check()
        output.mark_complete(self.out_dir, stats, self.run_id)

    def release(self) -> None:
        if self._fh is not None:
            try:
                os.unlink(self.path)  # while still locked (a waiter then sees a new file: see above)
            except FileNotFoundError:
                pass
            self._fh.close()  # the OS lock goes with the descriptor
            self._fh = None
        elif fs.is_remote(self.out_dir):
            info = self._read_remote()
            if info and info.get("run_id") == self.run_id:
                fs.delete(self.path)


@contextmanager
def holding(out_dir: str, run_id: str):
    lock = OutputLock(out_dir, run_id).acquire()
    try:
        yield lock
    finally:
        lock.release()
