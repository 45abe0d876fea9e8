"""Settings come from the environment; importing week2 writes nothing anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from week2 import config

REPO_ROOT = Path(__file__).resolve().parent.parent
MODULES = ["week2"] + sorted(f"week2.{p.stem}" for p in (REPO_ROOT / "week2").glob("[a-z]*.py"))


def _tree(folder: Path) -> set[str]:
    skip = {".venv", ".git", "__pycache__", ".ruff_cache", ".pytest_cache"}
    return {
        str(p.relative_to(folder)) for p in folder.rglob("*") if not skip & set(p.relative_to(folder).parts)
    }


def test_importing_week2_creates_no_file_or_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEEK2_", "MLFLOW_"))}
    env["HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir()
    before_repo, before_cwd = _tree(REPO_ROOT), _tree(tmp_path)

    code = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]"
    subprocess.run([sys.executable, "-B", "-c", code, *MODULES], cwd=tmp_path, env=env, check=True)

    assert _tree(REPO_ROOT) == before_repo
    assert _tree(tmp_path) == before_cwd


def test_default_tracking_uri_is_an_absolute_sqlite_file_at_the_repo_root(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert config.tracking_uri() == f"sqlite:///{REPO_ROOT / 'mlflow.db'}"
    assert Path(config.tracking_uri().removeprefix("sqlite:///")).is_absolute()


def test_settings_follow_the_environment(monkeypatch):
    monkeypatch.setenv("WEEK2_TRAIN_MONTH", "2023-01")
    monkeypatch.setenv("WEEK2_SWEEP_TRIALS", "7")
    monkeypatch.setenv("WEEK2_DATA", "REAL")
    assert config.months().train == "2023-01"
    assert config.sweep_trials() == 7
    assert config.data_mode() == "real"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("WEEK2_DATA", "maybe", "not one of real, sample, auto"),
        ("WEEK2_TRAIN_MONTH", "2021-13", "write it as YYYY-MM"),
        ("WEEK2_SWEEP_TRIALS", "lots", "not a whole number"),
        ("WEEK2_SWEEP_TRIALS", "0", "below 1"),
        ("WEEK2_RMSE_THRESHOLD", "low", "not a number"),
        ("WEEK2_SWEEP_BACKEND", "dask", "not one of local, spark"),
        ("WEEK2_SWEEP_PARALLELISM", "0", "below 1"),
    ],
)
def test_bad_settings_give_one_line_errors_naming_the_variable(monkeypatch, name, value, says):
    monkeypatch.setenv(name, value)
    reader = {
        "WEEK2_DATA": config.data_mode,
        "WEEK2_TRAIN_MONTH": config.train_month,
        "WEEK2_SWEEP_TRIALS": config.sweep_trials,
        "WEEK2_RMSE_THRESHOLD": config.rmse_threshold,
        "WEEK2_SWEEP_BACKEND": config.sweep_backend,
        "WEEK2_SWEEP_PARALLELISM": config.sweep_parallelism,
    }[name]
    with pytest.raises(config.ConfigError) as error:
        reader()
    message = str(error.value)
    assert name in message and says in message and "\n" not in message
