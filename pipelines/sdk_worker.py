"""Entry point of the local runner's SDK worker processes: Beam's ``sdk_worker_main`` with
the memory settings of ``pipelines.local_runner`` (fixed mmap threshold, bounded data-plane
queues) applied before the worker's data channel exists."""
import sys

from pipelines.local_runner import bound_queues, fix_malloc

if __name__ == "__main__":
    fix_malloc()
    bound_queues()
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv)
