"""Every exercise proven both ways: its check says "not attempted yet" untouched, PASS with the solution.

Each notebook with exercises runs once, in order, in a private store (notebook 04 builds on the runs
of 01–03). Before each answer cell a copy of its check cell runs on the untouched store; the answer
cell holds the reference solution from notebooks/solutions/; the check cell after it must pass.
"""

from __future__ import annotations

import copy
import json

import nbformat
import pytest
from conftest import REPO_ROOT

from week2 import exercises
from week2.machinery import course

NOTEBOOKS = course.course_notebooks(REPO_ROOT / "notebooks")


def _role(cell) -> tuple[str | None, str | None]:
    marks = cell.metadata.get("week2", {})
    return marks.get("exercise"), marks.get("role")


def exercise_keys(notebook) -> list[str]:
    return [key for key, role in map(_role, notebook.cells) if role == "answer"]


def solved(notebook):
    """A copy of `notebook` with each answer cell solved and a check cell run before it as well."""
    checks = {key: cell for cell in notebook.cells for key, role in [_role(cell)] if role == "check"}
    cells = []
    for cell in notebook.cells:
        key, role = _role(cell)
        if role == "answer":
            before = copy.deepcopy(checks[key])
            before.metadata["week2"] = {"exercise": key, "role": "check-before"}
            cells.append(before)
            cell = copy.deepcopy(cell)
            cell.source = exercises.EXERCISES[key].solution_path.read_text()
        cells.append(cell)
    notebook = copy.deepcopy(notebook)
    notebook.cells = cells
    return notebook


def printed(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_every_exercise_has_a_check_a_solution_and_a_notebook():
    used = {}
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        roles = [_role(c) for c in notebook.cells]
        for key in exercise_keys(notebook):
            assert (key, "check") in roles, f"{path.name}: exercise {key} has no check cell"
            used[key] = path.name
    assert set(used) == set(exercises.EXERCISES), "every exercise defined in week2.exercises is in a notebook"
    for key, exercise in exercises.EXERCISES.items():
        assert exercise.solution_path.is_file(), f"{used[key]}: no reference solution for {key}"
    for number in ("01", "02", "03", "04", "05"):
        assert any(key.startswith(number) for key in used), f"notebook {number} has no exercise"


@pytest.fixture(scope="module")
def executed(private_store, tmp_path_factory):
    """Every notebook up to the last one with exercises, solved, executed in order: {name: notebook}."""
    with_exercises = [p for p in NOTEBOOKS if exercise_keys(nbformat.read(p, as_version=4))]
    folder = tmp_path_factory.mktemp("solved")
    done = {}
    for path in NOTEBOOKS[: NOTEBOOKS.index(with_exercises[-1]) + 1] if with_exercises else []:
        target = folder / path.name
        nbformat.write(solved(nbformat.read(path, as_version=4)), target)
        course.execute_notebook(target, folder / "executed")
        done[path.name] = json.loads((folder / "executed" / path.name).read_text())
    return done


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_say_not_attempted_then_pass(path, executed):
    notebook = executed.get(path.name)
    if notebook is None or not exercise_keys(nbformat.reads(json.dumps(notebook), as_version=4)):
        pytest.skip(f"{path.name} has no exercises")
    for cell in notebook["cells"]:
        key, role = _role(nbformat.from_dict(cell))
        if role == "check-before":
            assert f"{key} {exercises.NOT_ATTEMPTED}" in printed(cell), printed(cell)
        elif role == "check":
            assert f"{key} {exercises.PASS}" in printed(cell), printed(cell)
