"""Entry point of the local runner's SDK worker processes: Beam's ``sdk_worker_main`` with
the memory settings of ``pipelines.local_runner`` (fixed mmap threshold, bounded data-plane
queues) applied before the worker's data channel exists.

Started with ``--wait-for-environment`` (``local_runner.prestart``), the worker imports Beam
first and then waits for its environment as one JSON line on stdin; at end of input (the
launcher did not need it, or exited) it exits quietly."""
import atexit
import gc
import json
import os
import signal
import sys

# Registered first, so it runs last: the objects left at exit are frozen, and the interpreter's
# final collections skip them -- with Beam imported they took ~0.65 s, which the runner waits
# out when it closes the worker at the end of every step.
atexit.register(gc.freeze)

# Ctrl-C reaches the whole process group: a worker ends at once and quietly (a
# KeyboardInterrupt would print its traceback); the launcher prints the one line.
signal.signal(signal.SIGINT, lambda *_: os._exit(130))

WORKER_LOG_ENV = "LLAMA_WORKER_LOG"


def log_to_file() -> None:
    """`llama -q`: the worker's own log (a failing bundle's traceback) goes to a file, not the
    terminal; the launcher's one-line error says what failed."""
    if os.environ.get(WORKER_LOG_ENV):
        os.dup2(os.open(os.environ[WORKER_LOG_ENV], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), 2)


def wait_for_environment(stream) -> None:
    """The environment the runner gives this worker, as one JSON line (``local_runner``)."""
    line = stream.readline()
    if not line.strip():
        os._exit(0)
    env = json.loads(line)
    os.environ.clear()
    os.environ.update(env)


def serve(argv: list[str], stream=None) -> None:
    """Run Beam's SDK harness with the local runner's memory settings; with ``stream``, first
    wait on it for the environment (a worker started ahead, or forked by ``local_runner``)."""
    from pipelines.local_runner import bound_queues, fix_malloc

    if stream is not None:
        wait_for_environment(stream)
    log_to_file()
    fix_malloc()
    bound_queues()
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(argv)


if __name__ == "__main__":
    from pipelines.local_runner import WARM_FLAG, name_worker, preload

    name_worker()
    if WARM_FLAG in sys.argv:
        preload()  # Beam's harness and the stages' first imports, while waiting
        serve([a for a in sys.argv if a != WARM_FLAG], sys.stdin.buffer)
    else:
        serve(sys.argv)
