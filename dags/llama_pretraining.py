"""The whole LLaMA-1 pretraining system as one Airflow 3 DAG.

    lm -> ccnet -> quality_classifier (+ wiki_refs, wikipedia) -> quality_filter -\\
    c4, github, wikipedia, books, arxiv, stackexchange -------------------------> tokenizer -> tokens -> train -> report

The seven source pipelines run in parallel.  Each Beam step runs with the runner in the
``runner`` param (DirectRunner by default; DataflowRunner with ``project``, ``region``,
``temp_location``).  Tasks are idempotent (``dags/steps.py``), so re-running the DAG after a
failure or a kill redoes only what is not complete.  Run it without a scheduler:

    make demo                                   # = python -m dags.run_local
    airflow dags test llama_pretraining -c '{"sources": ["books"]}'
"""
from __future__ import annotations

import time

from airflow.sdk import Param, dag, task

from dags import steps

PARAMS = {
    "data": Param(steps.DEFAULT_PARAMS["data"], type="string", description="bundled/raw data root"),
    "out": Param(steps.DEFAULT_PARAMS["out"], type="string", description="output root"),
    "lm_dir": Param(None, type=["null", "string"], description="perplexity LM dir (default out/lm)"),
    "runner": Param("DirectRunner", enum=["DirectRunner", "DataflowRunner"]),
    "project": Param(None, type=["null", "string"], description="GCP project (DataflowRunner)"),
    "region": Param(None, type=["null", "string"], description="GCP region (DataflowRunner)"),
    "temp_location": Param(None, type=["null", "string"], description="gs:// temp location (DataflowRunner)"),
    "sources": Param(list(steps.SOURCES), type="array", description="sources to run"),
    "vocab_size": Param(8000, type="integer", minimum=300),
    "seq_len": Param(512, type="integer", minimum=16),
    "seed": Param(0, type="integer"),
    "train_config": Param(steps.DEFAULT_PARAMS["train_config"], type="string"),
    "train_steps": Param(60, type="integer", minimum=0, description="0 skips training"),
    "nproc": Param(2, type="integer", minimum=1),
    "model": Param(None, type=["null", "string"], description="model config name override"),
    "quality_epoch": Param(50, type="integer", minimum=1,
                           description="quality classifier's fastText epochs (RedPajama: 5 on ~600k pages)"),
    "quality_lr": Param(0.5, type="number", exclusiveMinimum=0,
                        description="quality classifier's fastText learning rate (RedPajama: 0.1)"),
    "rejected": Param(True, type="boolean",
                      description="keep the documents the filters drop in <step out>/_rejected/ (llama inspect "
                                  "--rejected)"),
}


def _run_step(name, fn, params):
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from core.errors import InputError

    p = steps.params_with_defaults(dict(params))
    t0 = time.time()
    print(f"[llama] >> {name} ...", flush=True)
    try:
        result = fn(p)
    except steps.Skip as e:
        print(f"[llama] -- {name}: skipped ({e})", flush=True)
        raise AirflowSkipException(str(e)) from None
    except InputError as e:  # a user-fixable problem: say it in one line, do not retry
        print(f"[llama] !! {name}: error: {e}", flush=True)
        raise AirflowFailException(f"{name}: {e}") from None
    status = "already complete, not redone" if result.get("skipped") else "done"
    print(f"[llama] ok {name}: {status} in {time.time() - t0:.1f}s  {result}", flush=True)
    return result


@dag(dag_id="llama_pretraining", schedule=None, catchup=False, params=PARAMS, tags=["llama"],
     doc_md=__doc__, max_active_tasks=2)
def llama_pretraining():
    tasks = {}
    for name, fn, upstream in steps.GRAPH:
        op = task(task_id=name, trigger_rule="none_failed")(
            lambda params=None, _n=name, _f=fn: _run_step(_n, _f, params))()
        for up in upstream:
            tasks[up] >> op
        tasks[name] = op

    @task(trigger_rule="none_failed")
    def report(params=None):
        import report as html_report

        p = steps.params_with_defaults(dict(params))
        text = steps.report(p)
        print(text, flush=True)
        print(f"[llama] report: {html_report.write(str(p['out']))}", flush=True)
        return text

    tasks["train"] >> report()


dag_object = llama_pretraining()
