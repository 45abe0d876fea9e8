"""Notebook hygiene (test_exercises runs every notebook on the sample; `make course` on the real months)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

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


def test_ruff_passes_on_code_and_notebooks():
    ruff = Path(sys.executable).with_name("ruff")
    for command in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([str(ruff), *command], cwd=REPO_ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
