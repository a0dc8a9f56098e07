"""Entry point of the local runner's SDK worker processes: Beam's ``sdk_worker_main`` with
the memory settings of ``pipelines.local_runner`` (fixed mmap threshold, bounded data-plane
queues) applied before the worker's data channel exists."""
import os
import signal
import sys

# Ctrl-C reaches the whole process group: a worker ends at once and quietly (a
# KeyboardInterrupt would print its traceback); the launcher prints the one line.
signal.signal(signal.SIGINT, lambda *_: os._exit(130))

WORKER_LOG_ENV = "LLAMA_WORKER_LOG"

# `llama -q`: the worker's own log (a failing bundle's traceback) goes to a file, not the
# terminal; the launcher's one-line error says what failed.
if os.environ.get(WORKER_LOG_ENV):
    os.dup2(os.open(os.environ[WORKER_LOG_ENV], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), 2)

from pipelines.local_runner import bound_queues, fix_malloc  # noqa: E402

if __name__ == "__main__":
    fix_malloc()
    bound_queues()
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)
