"""Settings come from the environment; importing week2 writes nothing anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tree_with_mtimes

from week2 import config

REPO_ROOT = Path(__file__).resolve().parent.parent
MODULES = ["week2"] + sorted(f"week2.{p.stem}" for p in (REPO_ROOT / "week2").glob("[a-z]*.py"))


def test_importing_week2_creates_no_file_or_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEEK2_", "MLFLOW_"))}
    env["HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir()
    before_repo, before_cwd = tree_with_mtimes(REPO_ROOT), tree_with_mtimes(tmp_path)

    code = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]"
    subprocess.run([sys.executable, "-B", "-c", code, *MODULES], cwd=tmp_path, env=env, check=True)

    assert tree_with_mtimes(REPO_ROOT) == before_repo
    assert tree_with_mtimes(tmp_path) == before_cwd


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
        ("WEEK2_TRAIN_MONTH", " 2021-01", "stray spaces"),
        ("WEEK2_TRAIN_MONTH", "2021-01\n", "stray spaces"),
        ("WEEK2_TRAIN_MONTH", "\u0662\u0660\u0662\u0661-01", "write it as YYYY-MM"),  # Arabic-Indic 2021
        ("WEEK2_TRAIN_MONTH", "0000-01", "write it as YYYY-MM"),
        ("WEEK2_SWEEP_TRIALS", "lots", "not a whole number"),
        ("WEEK2_SWEEP_TRIALS", "\u0663", "not a whole number"),  # int() would read 3
        ("WEEK2_SWEEP_TRIALS", "0", "below 1"),
        ("WEEK2_RMSE_THRESHOLD", "low", "not a positive number"),
        ("WEEK2_RMSE_THRESHOLD", "nan", "not a positive number"),
        ("WEEK2_RMSE_THRESHOLD", "inf", "not a positive number"),
        ("WEEK2_RMSE_THRESHOLD", "1e999", "not a positive finite number"),
        ("WEEK2_RMSE_THRESHOLD", "-3", "not a positive number"),
        ("WEEK2_RMSE_THRESHOLD", "0", "not a positive finite number"),
        ("WEEK2_RMSE_THRESHOLD", "\u0661\u0660", "not a positive number"),  # float() would read 10
        ("WEEK2_SWEEP_BACKEND", "dask", "not one of local, spark"),
        ("WEEK2_SWEEP_PARALLELISM", "0", "below 1"),
        ("WEEK2_SERVE_PORT", "0", "1 to 65535"),
        ("WEEK2_SERVE_PORT", "65536", "1 to 65535"),
        ("WEEK2_UI_PORT", "-1", "1 to 65535"),
        ("MLFLOW_TRACKING_URI", "sqllite:///mlflow.db", "no scheme the course knows"),
        ("MLFLOW_TRACKING_URI", "mlruns", "no scheme the course knows"),
        ("WEEK2_TLC_MIRROR", "/no/such/folder", "neither an http(s) base URL nor a folder"),
    ],
)
def test_bad_settings_give_one_line_errors_naming_the_variable(monkeypatch, name, value, says):
    monkeypatch.setenv(name, value)
    with pytest.raises(config.ConfigError) as error:
        config.check_all()
    message = str(error.value)
    assert name in message and says in message and "\n" not in message


def test_good_values_are_read_as_written(monkeypatch):
    monkeypatch.setenv("WEEK2_RMSE_THRESHOLD", "7.5")
    monkeypatch.setenv("WEEK2_SERVE_PORT", "65535")
    monkeypatch.setenv("WEEK2_SEED", "0")
    monkeypatch.setenv("WEEK2_SAMPLE_ROWS", "   ")  # blank means unset
    config.check_all()
    assert (config.rmse_threshold(), config.serve_port(), config.seed()) == (7.5, 65535, 0)
    assert config.sample_rows() == 20_000


FOLDER_SETTINGS = ["WEEK2_DATA_DIR", "WEEK2_ARTIFACTS", "WEEK2_BUILD_DIR", "WEEK2_SERVERS_DIR"]


@pytest.mark.parametrize("name", FOLDER_SETTINGS)
def test_a_folder_setting_that_names_a_file_is_refused(tmp_path, monkeypatch, name):
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a folder")
    for value in (in_the_way, in_the_way / "below"):
        monkeypatch.setenv(name, str(value))
        with pytest.raises(config.ConfigError, match=f"{name}=.*is not a folder"):
            config.check_all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_a_folder_setting_that_is_not_writable_is_refused(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setenv("WEEK2_DATA_DIR", str(locked / "data"))
    with pytest.raises(config.ConfigError, match="WEEK2_DATA_DIR=.*not writable"):
        config.check_all()
