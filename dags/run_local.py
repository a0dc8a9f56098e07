"""Run the DAG locally with ``dag.test()`` (no scheduler): `make demo`.

Sets up a private AIRFLOW_HOME (``<out>/airflow``) with a SQLite metadata DB, runs the
DAG with the given params, and prints the report.  Exit status 0 when every task ended
in success or skip."""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dags.run_local")
    ap.add_argument("--conf", default="{}", help="DAG params as JSON, e.g. '{\"sources\": [\"books\"]}'")
    ap.add_argument("--verbose", action="store_true", help="show Airflow's own logs")
    a = ap.parse_args(argv)
    try:
        conf = json.loads(a.conf)
    except json.JSONDecodeError as e:
        print(f"run_local: error: --conf is not JSON ({e})", file=sys.stderr)
        return 2
    from core import fs
    from core import paths

    data = str(conf.get("data") or paths.shared_data())
    if not fs.isdir(data):
        print(f"run_local: error: {data}: data directory not found (set \"data\" in --conf or "
              f"LLAMA_SHARED_DATA)", file=sys.stderr)
        return 2
    out = str(conf.get("out") or paths.out_dir())
    # Airflow's own metadata DB is local (SQLite), beside a local output or in the cache dir
    local_home = fs.join(fs.cache_dir(), "airflow") if fs.is_remote(out) else fs.join(out, "airflow")
    home = Path(os.environ.get("AIRFLOW_HOME", local_home))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(__file__).parent))
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO" if a.verbose else "WARNING")
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if not (home / "airflow.db").is_file():
        print(f"[llama] creating the Airflow metadata DB in {home} ...", flush=True)
        airflow = Path(sys.executable).parent / "airflow"
        r = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr[-3000:], file=sys.stderr)
            print("run_local: error: `airflow db migrate` failed", file=sys.stderr)
            return 1
    if not a.verbose:
        logging.getLogger("airflow").setLevel(logging.WARNING)
    from dags.llama_pretraining import dag_object

    run = dag_object.test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    failed = {k: v for k, v in states.items() if not v.endswith(("success", "skipped"))}
    print(f"[llama] DAG run {run.run_id}: {str(run.state)}; tasks: "
          + ", ".join(f"{k}={v.rsplit('.', 1)[-1]}" for k, v in states.items()), flush=True)
    if failed:
        print(f"run_local: error: task(s) not successful: {', '.join(sorted(failed))} "
              f"(see the '[llama] !!' lines above); fix and run again: finished tasks are not redone",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
