"""The ``llama`` command line, the top of the house: one module per command group (``data``,
``tokens``, ``train``) over the packages it drives, which never import it.  User mistakes end
in one ``llama: error: ...`` line, exit 2."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from core.errors import InputError

from pipelines import registry

from . import data, tokens, train
from .common import WORKER_LOG_ENV, join_beam_flags, own_flags, setup_logging


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """``command``: the subcommand about to run -- only its source flags are built (a source's
    Options import its pipeline module, and Beam); None builds every command's flags."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="only warnings and errors")
    ap = argparse.ArgumentParser(prog="llama", description="LLaMA-1 pretraining system reproduction",
                                 parents=[common])
    sub = ap.add_subparsers(dest="cmd", required=True)
    _sub = sub.add_parser
    sub.add_parser = lambda *a, **k: _sub(*a, parents=[common], **k)
    data.add_commands(sub, command)
    for group in (tokens, train):
        group.add_commands(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    _quick_exit()
    signal.signal(signal.SIGINT, _interrupted)
    try:
        code = _run(argv)
    except KeyboardInterrupt:  # also while Beam is still being imported
        _stop_children()
        print("llama: interrupted (the output is left incomplete: no _SUCCESS)", file=sys.stderr)
        logging.disable(logging.NOTSET)  # as _interrupted left it
        code = 130
    _drop_worker_log()  # kept only when the command ends in a traceback
    return code


def _run(argv: list[str] | None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = next((x for x in argv if not x.startswith("-")), "")
    _start_workers(cmd, argv, fork=from_command_line)
    parser = build_parser(cmd)
    argv = join_beam_flags(argv, own_flags(parser))
    args, extra = parser.parse_known_args(argv)
    bad = [x for x in extra if not x.startswith("--")]
    if bad or (extra and args.cmd not in BEAM_COMMANDS):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    setup_logging(not getattr(args, "quiet", False))
    try:
        if hasattr(args, "runner"):
            from pipelines.beam_utils import check_runner

            check_runner(args.runner)
        return args.fn(args, extra)
    except InputError as e:
        print(f"llama: error: {e}", file=sys.stderr)
        return 2


def _start_workers(cmd: str, argv: list[str], fork: bool) -> None:
    """A local pipeline command starts its SDK workers first (``local_runner.prestart``): from
    the command line, forked once this process has imported Beam (~3 s off every pipeline
    command on 2 cores); called from other code (tests), as processes of their own."""
    from pipelines import local_runner

    if cmd in PIPELINE_COMMANDS and not {"-h", "--help", "--dry-run"} & set(argv):
        local_runner.prestart(local_runner.workers_for(argv), fork=fork)


def _quick_exit() -> None:
    """At exit, freeze what is left before the interpreter's final collections, which skip frozen
    objects: with Beam, pandas and torch imported they took ~0.7 s after every command's
    last line.  Registered once, before anything else, so it runs last."""
    import atexit
    import gc

    if not getattr(_quick_exit, "done", False):
        atexit.register(gc.freeze)
        _quick_exit.done = True


def _drop_worker_log() -> None:
    path = os.environ.get(WORKER_LOG_ENV)
    if path and os.path.isfile(path):
        os.unlink(path)


def _interrupted(signum, frame):
    """Ctrl-C: the runner's threads will see their workers end -- quietly; then the usual
    KeyboardInterrupt in the main thread."""
    import threading

    threading.excepthook = lambda args: None
    # and their shutdown complaints, Beam's and the local runner's own (closing a worker the
    # Ctrl-C ended logs an error with its traceback): the user is told once, below
    logging.disable(logging.ERROR)
    raise KeyboardInterrupt


def _stop_children() -> None:
    """After Ctrl-C: stop the children this process still has (the local runner's SDK workers
    end on Ctrl-C themselves; whatever else a command started, a DeepSpeed launcher say, is
    stopped here rather than left behind)."""
    me = str(os.getpid())
    for stat in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not stat.isdigit():
            continue
        try:
            with open(f"/proc/{stat}/stat") as fh:
                ppid = fh.read().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if ppid == me:
            try:
                os.kill(int(stat), signal.SIGTERM)
            except OSError:
                pass



BEAM_COMMANDS = {"ccnet", *registry.names(), "quality", "tokenize",
                 "extract-wiki-refs", "train-quality-classifier", "train-tokenizer",
                 "train", "train-7b"}  # the last two pass extra --flags to the trainer
PIPELINE_COMMANDS = BEAM_COMMANDS - {"train", "train-7b"}
