"""Imports run one way: a package imports only packages on a lower floor (never one beside it
or above it), so nothing imports back up.  Checked on the source, every import statement,
top-level or inside a function."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# floor of each package; a package may import only packages on lower floors
FLOORS = {"core": 0, "filters": 1, "tokenizer": 1, "model": 1, "pipelines": 2, "train": 2, "report": 3, "cli": 4,
          "dags": 5, "bench": 5}


def _imports(package: str):
    for f in sorted((REPO / package).rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in FLOORS and top != package:
                    yield f.relative_to(REPO), node.lineno, top


def test_every_import_goes_down_a_floor():
    wrong = [f"{f}:{line} imports {top} (floor {FLOORS[top]}) from floor {FLOORS[pkg]}"
             for pkg in FLOORS for f, line, top in _imports(pkg) if FLOORS[top] >= FLOORS[pkg]]
    assert not wrong, "\n".join(wrong)


def test_every_package_has_a_floor():
    packages = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()}
    assert packages <= set(FLOORS), packages - set(FLOORS)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The check fails on the arrows it is there to forbid (the CLI inside pipelines importing
    train, as it once did)."""
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "x.py").write_text("def f():\n    from train.launch import launch\n")
    monkeypatch.setattr(__import__(__name__), "REPO", tmp_path)
    assert [(str(f), top) for f, _, top in _imports("pipelines")] == [("pipelines/x.py", "train")]


def test_the_makefile_passes_out_to_every_step_that_reads_another():
    """`make ... OUT=dir`: every `llama` command reads and writes under dir, none under out/."""
    import subprocess

    res = subprocess.run(["make", "-n", "-B", "train-tiny", "train-7b", "bench-train", "OUT=/elsewhere/o"],
                         cwd=REPO, capture_output=True, text=True, check=True)
    commands = [c for c in res.stdout.replace("\\\n", " ").splitlines() if "llama " in c or "-m " in c]
    reads = {"ccnet": "--lm-dir /elsewhere/o/lm", "train-tokenizer": "/elsewhere/o/stackexchange",
             "tokenize": "--root /elsewhere/o --tokenizer /elsewhere/o/tokenizer",
             "train ": "--data /elsewhere/o/tokens",
             "train-7b": "--data /elsewhere/o/tokens", "train.bench": "/elsewhere/o/tokens"}
    for cmd, flags in reads.items():
        assert any(cmd in c and flags in c for c in commands), (cmd, commands)
    assert not [c for c in commands if " out/" in c or "=out/" in c]
    assert "export LLAMA_OUT := $(abspath $(OUT))" in (REPO / "Makefile").read_text()
