"""The local engine: Beam's FnApiRunner with one SDK worker process per core, made to keep a
worker's memory independent of the data size (as a Dataflow worker's is).

Beam 2.77's FnApiRunner (what ``DirectRunner`` with ``--direct_running_mode=multi_processing``
runs) makes every SDK worker's peak memory grow with the stage input, which
``make bench-scale`` measured (CCNet, one worker: 497 -> 726 -> 1,650 MB at 1x/4x/16x).
Five causes, each found by profiling the runner or a worker, each fixed here for the local runner only
(Dataflow never runs this code):

1. *Whole-stage messages.*  ``GroupingBuffer.partition`` encodes a worker's whole share of a
   GroupByKey's output into one ``bytes``, and ``BundleManager._send_input_to_worker`` writes
   all of a bundle's input into one output stream and closes it without a flush: the worker
   receives its entire stage input as a single gRPC message (up to gRPC's 2 GB limit).
   Here a GroupByKey's output is cut into element-aligned chunks of ``CHUNK_BYTES``, and each
   chunk is its own message, sent from a thread so the bundle starts at once and the data
   plane's bounded queues give back-pressure.
2. *Heap fragmentation.*  glibc raises its mmap threshold each time a large block is freed,
   so the ~10 MB data-plane buffers end up on the heap and fragment it; Python's own
   allocations stayed at ~110 MB (tracemalloc) while the RSS climbed.  The runner and every
   worker fix the threshold at ``MMAP_THRESHOLD`` (``mallopt``), so big buffers go back to
   the system when freed.
3. *Materialised flattens.*  Beam's ``sink_flattens`` always materialises a Flatten of two
   or more inputs ("TODO: actually attempt to sink"): its inputs are written to a buffer,
   read back by a stage of their own and only then written to the GroupByKey after it --
   every document of a join (``beam_utils.JoinPacked``) crossed the runner and a worker
   one more time, in a stage that no worker could share (3.4 s of 85 s in C4 at 16x, the
   same with one worker or two).  Here a Flatten whose only consumer is a GroupByKey has
   its inputs written straight into the GroupByKey's buffer, as Dataflow does.
4. *Queue bounds.*  The data plane buffers up to 100 MB per queue, three queues per worker;
   how full they get depends on how far the runner lags, i.e. on the data size (a small
   input never fills them, a big one always does: with 8 MB queues and 2 MB messages a C4
   worker still held ~30 MB more at 16x than at 1x).  Workers start through
   ``pipelines.sdk_worker`` (Beam's ``sdk_worker_main`` after setting ``QUEUE_BYTES`` and
   ``MESSAGE_BYTES``), and the runner uses the same bounds.
5. *Arrow's allocator.*  The pyarrow wheels allocate through mimalloc, which keeps what it
   once used; the runner and every worker put Arrow on the system allocator
   (``system_arrow_pool``), whose big blocks go back through cause 2's threshold.

Four more costs are time, not memory (``llama ccnet`` on a 3-document input, median of 5
runs on 2 cores, each fix after the one before: 6.4 s -> 5.4 s with 7 -> 4.3 s with 8 started
as processes -> 3.7 s with 8 forked):

6. *Workers closed one by one.*  At the end of a run Beam closes the SDK workers one after the
   other, each close waiting for its process to exit (~0.65 s): every step ended ~1.3 s after
   its last bundle with two workers.  Here they are closed at the same time
   (``_close_all_at_once``): `llama ccnet` on a 3-document input 7.5 -> 6.7 s.
7. *Exit.*  Every worker freezes its objects at exit (``pipelines.sdk_worker``; a forked one
   exits at once): the interpreter's final collections took ~0.65 s with Beam imported,
   which the runner waited out.  ``llama`` does the same (``cli._quick_exit``).
8. *Workers started when the first stage runs.*  Each then spends ~1.7 s importing Beam
   before it can take a bundle, while the runner waits.  ``prestart(n)`` starts them
   earlier and each waits, Beam imported, for the environment the runner gives a worker; the
   runner hands it over instead of starting a process (``_Subprocess.Popen``), and starts one
   the usual way if none is waiting or the one waiting started with a different environment
   (but for what is only read once it runs, ``LATE_ENV``).  The ``llama`` command prestarts
   before it does anything else: forked from itself once it has imported Beam, when it is
   still single-threaded (``can_fork``) -- no second import at all, ~3 s of CPU less per
   step on 2 workers; other callers (the DAG, tests) get processes of their own, started as
   the run begins.
9. *Partitions by key count.*  Beam gives a GroupByKey's keys to the workers in turn (key
   number % n), so one worker could get most of the bytes -- in CCNet's join the documents,
   whose language ID and perplexity are most of the run -- and the other sat idle at the
   end.  Here each key goes to the worker given the fewest bytes so far: CCNet's main stage on
   the bench's corpus 7.6 -> 6.8 s (one run each).

Element order within a bundle is unchanged, and every key still goes whole to one worker.
The runner process itself still holds every PCollection between stages: in this local
engine it plays the role of Dataflow's shuffle service, and ``make bench-scale`` reports
its memory separately.  ``install()`` is idempotent and leaves Beam alone (with a warning)
if its internals differ from the ones this was written against.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import subprocess
import sys
import threading

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20       # a GroupByKey output message to a worker
MESSAGE_BYTES = 1 << 20     # a data-plane message (Beam: 10 MB)
MMAP_THRESHOLD = 1 << 20    # blocks above this come from (and go back to) mmap
QUEUE_BYTES = 2 << 20       # per data-plane queue (Beam: 100 MB)
WORKER_MODULE = "pipelines.sdk_worker"
DEFAULT_WORKERS = os.cpu_count() or 1  # a local run's SDK worker processes: one per core
WORKER_COMMAND = f"exec {sys.executable} -m {WORKER_MODULE}"
WARM_FLAG = "--wait-for-environment"  # a worker started ahead (prestart)
# what a waiting worker may receive that differs from the environment it started with: read
# only once the worker runs (the runner's four, and the file `llama -q` sends worker logs to)
LATE_ENV = frozenset({"CONTROL_API_SERVICE_DESCRIPTOR", "LOGGING_API_SERVICE_DESCRIPTOR", "PIPELINE_OPTIONS",
                      "WORKER_ID", "LLAMA_WORKER_LOG"})
beam_partition = None  # Beam's own GroupingBuffer.partition, once install() replaced it
beam_sink_flattens = None  # Beam's own translations.sink_flattens, likewise
beam_close_all = None  # Beam's own WorkerHandlerManager.close_all, likewise


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def fix_malloc() -> bool:
    """Fix glibc's mmap threshold (no dynamic raise), so freed big buffers leave the heap,
    and give Arrow the same allocator (``system_arrow_pool``)."""
    system_arrow_pool()
    try:
        M_MMAP_THRESHOLD = -3
        return bool(_libc().mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to fix
        return False


def system_arrow_pool() -> None:
    """Arrow on the system allocator.  Its default pool (mimalloc in the pyarrow wheels)
    keeps what it once used: writing one real 2 MB shard three times left a process 32 MB
    larger with mimalloc, 5 MB with the system allocator (the mmap threshold fixed)."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


def bound_queues() -> None:
    from apache_beam.runners.worker import data_plane

    data_plane._DEFAULT_SEND_QUEUE_MAX_BYTES = QUEUE_BYTES
    data_plane._DEFAULT_SIZE_FLUSH_THRESHOLD = MESSAGE_BYTES
    for cls in (data_plane.SizeBasedBufferingClosableOutputStream,
                data_plane.TimeBasedBufferingClosableOutputStream):
        init = cls.__init__
        names = init.__code__.co_varnames[:init.__code__.co_argcount]
        defaults = list(init.__defaults__ or ())
        i = names.index("size_flush_threshold") - (len(names) - len(defaults))
        if 0 <= i < len(defaults):
            defaults[i] = MESSAGE_BYTES
            init.__defaults__ = tuple(defaults)


def _chunked_partition(self, n: int):
    """``GroupingBuffer.partition`` that returns element-aligned chunks of <= CHUNK_BYTES
    (plus one element) per partition instead of one ``bytes`` per partition (cause 1), each key
    in the partition given the fewest bytes so far (cause 9)."""
    from apache_beam.runners.portability.fn_api_runner import execution as ex
    from apache_beam.transforms import trigger
    from apache_beam.transforms.window import GlobalWindow, GlobalWindows
    from apache_beam.utils import windowed_value

    if not self._grouped_output:
        if self._windowing.is_default():
            globally_window = GlobalWindows.windowed_value(
                None, timestamp=GlobalWindow().max_timestamp(),
                pane_info=windowed_value.PaneInfo(
                    is_first=True, is_last=True, timing=windowed_value.PaneInfoTiming.ON_TIME,
                    index=0, nonspeculative_index=0)).with_value

            def windowed_key_values(key, values):
                return [globally_window((key, values))]
        else:
            windowed_key_values = trigger.create_trigger_driver(self._windowing, True).process_entire_key
        coder_impl = self._post_grouped_coder.get_impl()
        key_coder_impl = self._key_coder.get_impl()
        chunks: list[list[bytes]] = [[] for _ in range(n)]
        streams = [ex.create_OutputStream() for _ in range(n)]
        sent = [0] * n  # bytes given to each partition so far
        table = self._table
        for encoded_key in list(table.keys()):
            windowed_values = table.pop(encoded_key)   # free the runner's copy as it is encoded
            key = key_coder_impl.decode(encoded_key)
            i = sent.index(min(sent))  # the least loaded partition (Beam: key number % n)
            out = streams[i]
            before = out.size()
            for wkvs in windowed_key_values(key, windowed_values):
                coder_impl.encode_to_stream(wkvs, out, True)
            sent[i] += out.size() - before
            if out.size() >= CHUNK_BYTES:
                chunks[i].append(out.get())
                streams[i] = ex.create_OutputStream()
        for ix, out in enumerate(streams):
            if out.size() or not chunks[ix]:
                chunks[ix].append(out.get())
        self._grouped_output = chunks
        self._table.clear()
    return self._grouped_output


def _streamed_send(self, process_bundle_id: str, read_transform_id: str, byte_streams) -> None:
    """``BundleManager._send_input_to_worker`` that sends each chunk as its own message,
    from a thread, so the bundle starts while its input is still arriving."""
    handler = self._worker_handler
    data_out = handler.data_conn.output_stream(process_bundle_id, read_transform_id)
    chunks = list(byte_streams or [])

    def send():
        try:
            for chunk in chunks:
                data_out.write(chunk)
                data_out.flush()
            data_out.close()   # the end-of-stream marker
        except Exception as e:  # never end the stream early (that would drop rows): fail the bundle
            log.exception("sending a bundle's input to the worker failed")
            handler.control_conn.abort(e)

    threading.Thread(target=send, name=f"send-{process_bundle_id}", daemon=True).start()


def _sink_flattens_into_groups(stages, pipeline_context):
    """Beam's ``sink_flattens``, then: a materialised Flatten whose output only a GroupByKey
    reads is dropped, its inputs' writes going to the GroupByKey's buffer instead (a
    GroupingBuffer takes its coders from the GroupByKey's own input, which
    ``fix_flatten_coders`` made every input of the Flatten use)."""
    from apache_beam.portability import common_urns
    from apache_beam.runners.portability.fn_api_runner.translations import split_buffer_id
    from apache_beam.runners.worker.bundle_processor import DATA_INPUT_URN, DATA_OUTPUT_URN

    stages = list(beam_sink_flattens(stages, pipeline_context))
    flattens = {t.unique_name for t in pipeline_context.components.transforms.values()
                if t.spec.urn == common_urns.primitives.FLATTEN.urn}  # a flatten's buffer is named so
    writers: dict[bytes, list] = {}
    readers: dict[str, list] = {}
    for s in stages:
        for t in s.transforms:
            if t.spec.urn == DATA_OUTPUT_URN:
                writers.setdefault(t.spec.payload, []).append(s)
            for pc in t.inputs.values():
                readers.setdefault(pc, []).append(s)
    replaced: dict = {}   # dropped stage -> the stages that now do its part
    for read in stages:
        if len(read.transforms) != 1 or read.transforms[0].spec.urn != DATA_INPUT_URN:
            continue
        buffer_id = read.transforms[0].spec.payload
        kind, name = split_buffer_id(buffer_id)
        if kind != "materialize" or name not in flattens:
            continue
        writes = writers.get(buffer_id, [])
        out = next(iter(read.transforms[0].outputs.values()))
        consumers = readers.get(out, [])
        if not writes or any(len(w.transforms) != 1 for w in writes) or len(consumers) != 1:
            continue
        group = consumers[0]
        if (len(group.transforms) != 1 or group.transforms[0].spec.urn != DATA_OUTPUT_URN
                or split_buffer_id(group.transforms[0].spec.payload)[0] != "group"):
            continue
        for w in writes:
            w.transforms[0].spec.payload = group.transforms[0].spec.payload
        pipeline_context.add_data_channel_coder(out)  # the GroupingBuffer's input coder
        replaced[read] = replaced[group] = writes
    if not replaced:
        return stages
    kept = [s for s in stages if s not in replaced]
    for s in kept:
        if s.must_follow & replaced.keys():
            s.must_follow = frozenset(
                [m for m in s.must_follow if m not in replaced]
                + [w for m in s.must_follow if m in replaced for w in replaced[m]])
    return kept


_waiting: list = []   # workers started ahead (prestart), each waiting for its environment
FORK_SAFE_THREADS = {"python", "jemalloc_bg_thd"}  # the main thread, OpenBLAS's and Arrow's jemalloc's


def prestart(n: int, fork: bool = False) -> None:
    """Have ``n`` SDK worker processes start now and wait, Beam imported, for the next run's
    runner to hand them their environment (cause 7).  Unused ones exit when this process does
    (their stdin closes); a run takes at most the ones it needs.

    ``fork``: when this process is single-threaded (``can_fork``), Beam is imported here once
    and the workers are forked from it, ready at once and without importing anything (the
    ``llama`` command does this before it does anything else); otherwise each is a new
    Python process."""
    _waiting[:] = [w for w in _waiting if w.poll() is None]
    need = n - len(_waiting)
    if need <= 0:
        return
    if fork and can_fork():
        preload()

        if can_fork():  # still: the imports started no thread
            for _ in range(need):
                _waiting.append(_Forked.start())
            return
    for _ in range(need):
        env = dict(os.environ)
        w = subprocess.Popen([sys.executable, "-m", WORKER_MODULE, WARM_FLAG], stdin=subprocess.PIPE, env=env)
        w.started_env, w.started_cwd = env, os.getcwd()
        _waiting.append(w)


def preload() -> None:
    """Import what a worker runs (Beam's SDK harness) and what the stages' code imports first."""
    import importlib

    for name in ("apache_beam.runners.worker.sdk_worker_main", "pipelines.beam_utils"):
        importlib.import_module(name)


def name_worker() -> None:
    """The process is named ``sdk_worker`` (what ``ps -o comm``, ``top`` and psutil's name()
    show), forked or not: a forked one's command line is the launcher's."""
    try:
        PR_SET_NAME = 15
        _libc().prctl(PR_SET_NAME, b"sdk_worker", 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the name stays
        pass


def can_fork() -> bool:
    """Whether forking this process is safe: Linux, one Python thread, and no native thread but
    the ones of libraries that prepare themselves for a fork (OpenBLAS, jemalloc) -- so no
    gRPC, no client connection, no lock held by another thread is copied into a worker."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork") or threading.active_count() != 1:
        return False
    try:
        names = set()
        for t in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{t}/comm") as f:
                names.add(f.read().strip())
    except OSError:
        return False
    return names <= FORK_SAFE_THREADS


class _Forked:
    """A worker forked from this process, waiting for its environment on a pipe: what Beam
    uses of the ``Popen`` it would have made (``wait``, ``poll``, ``kill``, ``returncode``)."""

    def __init__(self, pid: int, stdin):
        self.pid, self.stdin, self.returncode = pid, stdin, None
        self.started_env, self.started_cwd = dict(os.environ), os.getcwd()

    @classmethod
    def start(cls) -> "_Forked":
        import signal
        import warnings

        for f in (sys.stdout, sys.stderr):  # or the child would write what is buffered a second time
            f.flush()
        r, w = os.pipe()
        # Ctrl-C is held until the child has its own handler (a KeyboardInterrupt in between
        # would print a traceback)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            with warnings.catch_warnings():  # Python 3.12 warns of OpenBLAS's and jemalloc's threads
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                os.close(w)
                for other in _waiting:  # or that worker would never see the end of its input
                    other.stdin.close()
                _run_forked(r)  # never returns
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        os.close(r)
        return cls(pid, os.fdopen(w, "wb"))

    def _reap(self, flags: int):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, flags)
            except ChildProcessError:
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self):
        return self._reap(os.WNOHANG)

    def wait(self, timeout=None):
        if timeout is None:
            return self._reap(0)
        import time

        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        import signal

        self.send_signal(signal.SIGTERM)


def _run_forked(fd: int) -> None:
    """A forked worker: wait for the environment, run Beam's SDK harness, exit without running
    anything of the process it was forked from (no atexit, no finaliser)."""
    import random
    import signal
    import traceback

    code = 1
    try:
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))  # as pipelines.sdk_worker
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        name_worker()
        random.seed()  # not the launcher's sequence
        from pipelines import sdk_worker

        with os.fdopen(fd, "rb") as stream:
            sdk_worker.serve([sys.executable, "-m", WORKER_MODULE], stream)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except Exception:
                pass
        os._exit(code)


def workers_for(args: list[str]) -> int:
    """How many SDK worker processes a run with these command-line flags starts locally: the
    ``--direct_num_workers`` (default: one per core) of a DirectRunner run in
    multi_processing mode (the local default); 0 for any other runner or mode."""
    def value(flag: str, default: str) -> str:
        for i, a in enumerate(args):
            if a == flag and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(flag + "="):
                return a.split("=", 1)[1]
        return default

    if (value("--runner", "DirectRunner").rsplit(".", 1)[-1] != "DirectRunner"
            or value("--direct_running_mode", "multi_processing") != "multi_processing"):
        return 0
    try:
        return max(0, int(value("--direct_num_workers", str(DEFAULT_WORKERS))))
    except ValueError:  # Beam's own option parsing says what is wrong
        return 0


def _take_waiting(env: dict):
    """A waiting worker that started with ``env`` (but for ``LATE_ENV``), told to run with it."""
    while _waiting:
        w = _waiting.pop(0)
        changed = sorted(k for k in (w.started_env.keys() | env.keys()) - LATE_ENV
                         if w.started_env.get(k) != env.get(k))
        if changed or w.started_cwd != os.getcwd():
            log.info("a worker started ahead was not used: %s changed since it started",
                     ", ".join(changed) or "the working directory")
            w.stdin.close()
            continue
        try:
            w.stdin.write(json.dumps(env).encode() + b"\n")
            w.stdin.close()
        except OSError:  # it has exited (killed?): start one the usual way
            continue
        return w
    return None


class _Subprocess:
    """``local_job_service``'s view of the ``subprocess`` module: starting this project's SDK
    worker takes a waiting one when there is one (Beam then waits on it, kills it, reads its
    return code, as on the process it would have started)."""

    def __getattr__(self, name):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(args, *a, **kw):
        if args == WORKER_COMMAND and kw.get("shell") and isinstance(kw.get("env"), dict):
            w = _take_waiting(kw["env"])
            if w is not None:
                return w
        return subprocess.Popen(args, *a, **kw)


def runner():
    """A FnApiRunner whose SDK worker processes start through ``pipelines.sdk_worker``."""
    install()
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.transforms import environments

    class LocalRunner(FnApiRunner):
        def run_pipeline(self, pipeline, options):
            from apache_beam.options.pipeline_options import DirectOptions

            o = options.view_as(DirectOptions)
            if o.direct_running_mode == "multi_processing":  # started while the stages are planned
                prestart(o.direct_num_workers or DEFAULT_WORKERS)
            return super().run_pipeline(pipeline, options)

        # FnApiRunner.run_pipeline sets the worker environment from --direct_running_mode and
        # uses it at once; swap Beam's worker command for ours as it is set.
        @property
        def _default_environment(self):
            return self._env

        @_default_environment.setter
        def _default_environment(self, env):
            if (isinstance(env, environments.SubprocessSDKEnvironment)
                    and env.command_string.endswith("apache_beam.runners.worker.sdk_worker_main")):
                # exec: the shell Beam starts it with becomes the worker (one process, which
                # ignores Ctrl-C; a shell in between would die of it)
                env = environments.SubprocessSDKEnvironment.from_command_string(command_string=WORKER_COMMAND)
            self._env = env

    return LocalRunner()


def _close_all_at_once(self) -> None:
    """``WorkerHandlerManager.close_all`` closing every worker at the same time: Beam closes
    them one after the other, each waiting for its SDK worker process to finish exiting
    (~0.65 s), so a step of N workers ended N x 0.65 s after its last bundle."""
    handlers = {h for hs in self._cached_handlers.values() for h in hs}

    def close(h):
        try:
            h.close()
        except Exception:
            log.error("Error closing worker_handler %s", h, exc_info=True)

    threads = [threading.Thread(target=close, args=(h,), name="close_worker") for h in handlers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    self._cached_handlers.clear()
    beam_close_all(self)  # with nothing cached left to close: Beam's own clears its state and stops the server


def install() -> bool:
    """Patch the local runner in this process (idempotent). Returns whether it is in place."""
    global beam_partition, beam_sink_flattens, beam_close_all
    if beam_partition is not None:
        return True
    fix_malloc()
    try:
        from apache_beam.runners.portability.fn_api_runner import execution as ex
        from apache_beam.runners.portability.fn_api_runner import fn_runner, translations
        from apache_beam.runners.portability.fn_api_runner import worker_handlers
        from apache_beam.runners.portability import local_job_service
        from apache_beam.runners.worker import data_plane
        ok = (hasattr(ex.GroupingBuffer, "partition") and hasattr(ex, "create_OutputStream")
              and "_cached_handlers" in worker_handlers.WorkerHandlerManager.close_all.__code__.co_names
              and "_table" in ex.GroupingBuffer.__init__.__code__.co_names
              and "_grouped_output" in ex.GroupingBuffer.__init__.__code__.co_names
              and hasattr(fn_runner.BundleManager, "_send_input_to_worker")
              and hasattr(translations, "sink_flattens")
              and "sink_flattens" in fn_runner.FnApiRunner.create_stages.__code__.co_names
              and hasattr(translations.TransformContext, "add_data_channel_coder")
              and hasattr(data_plane.SizeBasedBufferingClosableOutputStream, "flush")
              and local_job_service.subprocess is subprocess
              and "Popen" in local_job_service.SubprocessSdkWorker.run.__code__.co_names
              and isinstance(getattr(data_plane, "_DEFAULT_SEND_QUEUE_MAX_BYTES", None), int))
    except Exception as e:  # pragma: no cover - a Beam without the FnApiRunner
        log.warning("local runner left as is: %s", e)
        return False
    if not ok:  # pragma: no cover - a Beam whose internals moved
        log.warning("local runner left as is: this Beam's FnApiRunner internals differ")
        return False
    bound_queues()
    beam_partition = ex.GroupingBuffer.partition
    ex.GroupingBuffer.partition = _chunked_partition
    beam_sink_flattens = translations.sink_flattens
    translations.sink_flattens = _sink_flattens_into_groups
    fn_runner.BundleManager._send_input_to_worker = _streamed_send
    beam_close_all = worker_handlers.WorkerHandlerManager.close_all
    worker_handlers.WorkerHandlerManager.close_all = _close_all_at_once
    local_job_service.subprocess = _Subprocess()
    return True
