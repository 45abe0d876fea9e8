"""Notebook hygiene, and notebook 01 on the real months (test_exercises runs every notebook on the sample)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import REPO_ROOT, real_month

from week2.config import store_settings
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


@pytest.mark.real_data
def test_notebook_01_on_the_real_months(tmp_path, monkeypatch):
    for month in ("2021-01", "2021-02"):
        real_month(month)
    env = {
        "WEEK2_DATA": "real",
        **store_settings(tmp_path),
        "WEEK2_DATA_DIR": str(tmp_path / "data"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    course.execute_notebook(REPO_ROOT / "notebooks" / "01-duration-prediction.ipynb", tmp_path / "executed")

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["01-duration-baselines"], output_format="list")
    assert sorted(r.data.tags["model"] for r in runs) == ["lasso", "linear_regression", "ridge"]
    for run in runs:
        assert run.data.tags["data_source"] == "real"
        assert run.data.tags["train_month"] == "2021-01"
        assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"green-2021-01", "green-2021-02"}
        assert len(run.outputs.model_outputs) == 1
        artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")}
        assert artifacts == {"plots/duration_distribution.png", "plots/predicted_vs_actual.png"}
    by_model = {r.data.tags["model"]: r.data.metrics["val_rmse"] for r in runs}
    assert by_model["linear_regression"] == pytest.approx(7.7587, abs=5e-4)
    mlflow.set_tracking_uri(None)


def test_ruff_passes_on_code_and_notebooks():
    ruff = Path(sys.executable).with_name("ruff")
    for command in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([str(ruff), *command], cwd=REPO_ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
