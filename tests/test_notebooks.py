"""Notebook hygiene (test_exercises runs every notebook on the sample; `make course` on the real months)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import REPO_ROOT

from week2.machinery import course

NOTEBOOKS = course.course_notebooks(REPO_ROOT / "notebooks")


def test_notebooks_are_numbered_in_teaching_order():
    assert NOTEBOOKS, "no notebooks found"
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == list(range(1, len(NOTEBOOKS) + 1))
    everything = sorted(p.name for p in (REPO_ROOT / "notebooks").glob("*.ipynb"))
    assert everything == [p.name for p in NOTEBOOKS], "every notebook needs an NN- prefix"


CORE_WEEK, GOING_FURTHER = "**Core week** · ", "**Going further** · "
"""How a notebook's header cell starts the line that places it: on the week's core path, or beyond it."""


@pytest.mark.parametrize(
    "notebook", course.read_course(REPO_ROOT / "notebooks"), ids=lambda notebook: notebook.path.name
)
def test_the_header_says_core_week_or_going_further_as_the_metadata_does_and_what_it_needs(notebook):
    header = nbformat.read(notebook.path, as_version=4).cells[0].source
    placed = [line for line in header.splitlines() if line.startswith((CORE_WEEK, GOING_FURTHER))]
    assert len(placed) == 1, (
        f"{notebook.path.name}: the header needs one line starting {CORE_WEEK!r} or {GOING_FURTHER!r}"
    )
    expected = GOING_FURTHER if notebook.going_further else CORE_WEEK
    assert placed[0].startswith(expected), f"{notebook.path.name}: its metadata week2.part says {expected!r}"
    assert "Needs: " in header, f"{notebook.path.name}: say what it needs beyond the course's .venv"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    dirty = [
        i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])
    ]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_hard_codes_no_run_or_model_id(path):
    source = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
    assert not re.search(r"\b[0-9a-f]{32}\b", source), "a literal run id: find runs with search_runs"
    assert not re.search(r"m-[0-9a-f]{32}", source), "a literal model id: use model_info or aliases"
    assert not re.search(r"models:/[^\"'{}]+/\d+", source), "a literal version: use an alias"


def module_level_bindings(tree: ast.Module) -> list[str]:
    """Every name a cell binds at module level (assignments, loops, `with … as`; not inside functions)."""
    bindings, pending = [], list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue  # names bound in there are the function's own
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor, ast.comprehension)):
            targets = [node.target]
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            targets = [node.optional_vars]
        elif isinstance(node, ast.NamedExpr):
            targets = [node.target]
        for target in targets:
            bindings += [
                n.id for n in ast.walk(target) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
            ]
        pending.extend(ast.iter_child_nodes(node))
    return bindings


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cells_run_again_never_meet_a_function_or_module_rebound(path):
    """A student re-runs cells: a name bound by `def`, `class` or `import` must keep that meaning.

    Notebook 05 once looped `for label, payload in ...` after defining `payload()`: running the
    request cell again called a dict and raised TypeError.
    """
    from IPython.core.inputtransformer2 import TransformerManager

    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    defined, rebound = {}, []
    for number, cell in enumerate(cells):
        tree = ast.parse(TransformerManager().transform_cell(cell.source))  # `!` lines become Python
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.setdefault(node.name, number)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    defined.setdefault((alias.asname or alias.name).split(".")[0], number)
        rebound += [
            f"{name!r} (defined in code cell {defined[name]}, rebound in code cell {number})"
            for name in module_level_bindings(tree)
            if name in defined
        ]
    assert not rebound, f"{path.name}: re-running these cells would use the wrong object: {rebound}"


def test_ruff_passes_on_code_and_notebooks():
    ruff = Path(sys.executable).with_name("ruff")
    for command in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([str(ruff), *command], cwd=REPO_ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


FIRST_LESSON = REPO_ROOT / "notebooks" / "01-duration-prediction.ipynb"
MAX_FIRST_LESSON_CALLS = 15
"""The first lesson stays light: about fifteen distinct MLflow calls, each typed by the student."""
PLUMBING = ("skops_trusted_types", "code_paths", "pip_requirements", "filterwarnings", "artifact_location")
"""Packaging (notebook 05 teaches it), warning filters and artifact folders (week2.tracking) are not
the first lesson's."""


def mlflow_calls(code: str) -> set[str]:
    """The distinct `mlflow.X(` and `client.X(` calls in `code`."""
    return set(re.findall(r"\bmlflow\.[A-Za-z_.]+(?=\()", code)) | set(
        re.findall(r"\bclient\.[a-z_]+(?=\()", code)
    )


def test_mlflow_calls_counts_each_call_once():
    code = "mlflow.start_run()\nmlflow.start_run(nested=True)\nmlflow.sklearn.log_model(m)\n"
    code += "client.get_run(run_id)\nfrom mlflow.entities import Run\nmlflow.entities.Run"
    assert mlflow_calls(code) == {"mlflow.start_run", "mlflow.sklearn.log_model", "client.get_run"}


def test_first_lesson_is_tracking_without_plumbing():
    cells = json.loads(FIRST_LESSON.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    calls = mlflow_calls(code)
    assert len(calls) <= MAX_FIRST_LESSON_CALLS, f"{len(calls)} distinct MLflow calls: {sorted(calls)}"
    assert {
        "mlflow.set_experiment",
        "mlflow.start_run",
        "mlflow.sklearn.log_model",
        "mlflow.search_runs",
    } <= calls
    found = [word for word in PLUMBING if word in code]
    assert not found, f"notebook 01's cells hold plumbing: {found}"
