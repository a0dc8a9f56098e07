"""``llama eval``: lm-evaluation-harness on any weights path (``train.export``).

A checkpoint that is not already a HuggingFace directory is exported first (into
``<out>/hf``), then lm-eval's ``hf`` model runs the tasks on it: lm-eval's own tasks by name
(``--tasks hellaswag,arc_easy``: they download their datasets from the HF hub), and, with
``--text``, ``llama_text``: the word/byte perplexity of the documents of a Parquet shard or
step output (``out/wikipedia/en``), offline.  Needs the ``eval`` extra (``pip install -e
.[eval]``)."""
from __future__ import annotations

import json
from pathlib import Path

from core.errors import InputError

TEXT_TASK = "llama_text"


def _text_task(text: str, task_dir: Path) -> None:
    """A loglikelihood_rolling task over the ``text`` column of Parquet shards."""
    from core import fs, output

    files = [text] if fs.isfile(text) else output.shard_files(text) if fs.isdir(text) else []
    if not files:
        raise InputError(f"{text}: no Parquet shards to evaluate on")
    jsonl = task_dir / "docs.jsonl"
    import pyarrow.parquet as pq

    with jsonl.open("w") as f:
        for path in files:
            with fs.open_read(path) as fh:
                for t in pq.read_table(fh, columns=["text"]).column("text").to_pylist():
                    f.write(json.dumps({"text": t}) + "\n")
    (task_dir / f"{TEXT_TASK}.yaml").write_text(
        f"task: {TEXT_TASK}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {json.dumps(str(jsonl))}\n"
        "test_split: test\noutput_type: loglikelihood_rolling\ndoc_to_text: \"\"\ndoc_to_target: \"{{text}}\"\n"
        "should_decontaminate: false\nmetric_list:\n  - metric: word_perplexity\n  - metric: byte_perplexity\n"
        "  - metric: bits_per_byte\nmetadata:\n  version: 1.0\n")


def is_hf_dir(p: Path) -> bool:
    return (p / "config.json").is_file() and (p / "tokenizer.json").is_file() and \
        any(p.glob("model*.safetensors"))


def evaluate(path: str, out_dir: str, tasks: list[str], text: str | None = None, limit: int | None = None,
             batch_size: int = 1, device: str = "cpu", tokenizer: str | None = None) -> dict:
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise InputError("llama eval needs lm-evaluation-harness: pip install -e .[eval]") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hf_dir = Path(path)
    if not is_hf_dir(hf_dir):
        from .export import export_hf

        hf_dir = out / "hf"
        export_hf(path, hf_dir, tokenizer=tokenizer)
    task_dir = out / "tasks"
    task_dir.mkdir(exist_ok=True)
    tasks = list(tasks)
    if text:
        _text_task(text, task_dir)
        tasks.append(TEXT_TASK)
    if not tasks:
        raise InputError("nothing to evaluate: give --tasks (lm-eval task names) and/or --text SHARDS")
    manager = TaskManager(include_path=str(task_dir))
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise InputError(f"unknown lm-eval task(s): {', '.join(unknown)}")
    res = lm_eval.simple_evaluate(model="hf", model_args={"pretrained": str(hf_dir), "dtype": "float32"},
                                  tasks=tasks, limit=limit, batch_size=batch_size, device=device,
                                  task_manager=manager)
    results = {"checkpoint": str(path), "results": res["results"], "n_samples": res.get("n-samples")}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    from lm_eval.utils import make_table

    results["table"] = make_table(res)
    return results
