"""One SQLite store, several processes at once: two notebooks, the homework beside a notebook.

Each test starts PROCESSES Python processes that import MLflow, wait at a barrier (a file), and then
open one store at the same moment. Before `setup_mlflow` took its lock, creating a fresh store this
way failed with alembic errors ("expected to match one row") or UNIQUE constraints; before MLflow's
own creation of the tables took it (`week2.store_guard`), so did notebook 01's cell, which opens the
store with MLflow's calls only, beside `setup_mlflow`.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from week2 import tracking

PROCESSES = 3
BARRIER_SECONDS = 120  # importing MLflow in four processes on two busy cores takes a while

SETUP = """
import sys, time
from pathlib import Path
import mlflow
from week2 import config

ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.005)
if sys.argv[3] == "notebook-01":  # its second cell as a student types it: MLflow's calls, no lock of ours
    mlflow.set_tracking_uri(config.tracking_uri())
    if mlflow.get_experiment_by_name("01-duration-baselines") is None:
        mlflow.create_experiment("01-duration-baselines")
    print("experiment", mlflow.set_experiment("01-duration-baselines").experiment_id)
    sys.exit()
from week2 import tracking

experiment_id = tracking.setup_mlflow("shared-experiment")
if sys.argv[3] == "register":
    model = mlflow.initialize_logged_model(name="shared-model", experiment_id=experiment_id)
    version = mlflow.register_model(f"models:/{model.model_id}", "shared-model")
    print("version", version.version)
print("experiment", experiment_id)
"""


def _at_once(folder: Path, actions: list[str]) -> list[subprocess.CompletedProcess]:
    """Run SETUP in one process per action, released together; their outcomes, in the same order."""
    barrier = folder / "barrier"
    barrier.mkdir()
    go = barrier / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SETUP, str(barrier / f"ready-{n}"), str(go), action],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, action in enumerate(actions)
    ]
    deadline = time.monotonic() + BARRIER_SECONDS
    while len(list(barrier.glob("ready-*"))) < len(processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=BARRIER_SECONDS)
        outcomes.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return outcomes


def _rows(database: Path, query: str) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return connection.execute(query).fetchall()


@pytest.fixture
def fresh_store(tmp_path, monkeypatch):
    database = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")
    monkeypatch.setenv("WEEK2_ARTIFACTS", str(tmp_path / "mlartifacts"))
    return database


@pytest.mark.slow  # a minute on a busy machine: three processes import MLflow
def test_notebook_01_typed_by_hand_and_two_notebooks_creating_one_fresh_store_at_once(fresh_store):
    """Notebook 01's cell opens the new store with MLflow's own calls; two others call setup_mlflow."""
    notebook_01, *others = _at_once(fresh_store.parent, ["notebook-01", "setup", "setup"])

    for outcome in (notebook_01, *others):
        assert outcome.returncode == 0, outcome.stderr
    assert len({outcome.stdout for outcome in others}) == 1  # one experiment id for both
    assert _rows(fresh_store, "PRAGMA integrity_check") == [("ok",)]
    assert _rows(fresh_store, "SELECT name FROM experiments ORDER BY name") == [
        ("01-duration-baselines",),
        ("Default",),
        ("shared-experiment",),
    ]
    assert _rows(fresh_store, "SELECT count(*) FROM alembic_version") == [(1,)]
    assert _rows(
        fresh_store, f"SELECT value FROM experiment_tags WHERE key = '{tracking.EXPERIMENT_KIND_TAG}'"
    ) == [(tracking.EXPERIMENT_KIND,)]


@pytest.mark.slow
def test_processes_registering_one_model_name_at_once(fresh_store):
    tracking.setup_mlflow("made-first")  # the store exists: its new experiment and the registry race

    outcomes = _at_once(fresh_store.parent, ["register"] * PROCESSES)

    for outcome in outcomes:
        assert outcome.returncode == 0, outcome.stderr
    versions = sorted(
        int(line.split()[1]) for o in outcomes for line in o.stdout.splitlines() if "version" in line
    )
    assert versions == list(range(1, PROCESSES + 1))
    assert _rows(fresh_store, "PRAGMA integrity_check") == [("ok",)]
    assert len({line for o in outcomes for line in o.stdout.splitlines() if "experiment" in line}) == 1
    assert _rows(fresh_store, "SELECT count(*) FROM experiments WHERE name = 'shared-experiment'") == [(1,)]
    assert _rows(fresh_store, "SELECT name FROM registered_models") == [("shared-model",)]
    assert _rows(fresh_store, "SELECT version FROM model_versions ORDER BY version") == [
        (n,) for n in range(1, PROCESSES + 1)
    ]


def test_the_lock_is_a_file_of_its_own_beside_the_store(fresh_store):
    import fcntl

    with tracking.store_lock(f"sqlite:///{fresh_store}"):
        lock = fresh_store.with_name(fresh_store.name + "-lock")
        with lock.open() as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another process would wait here
    assert not fresh_store.exists()  # the lock never touches the database file itself
    with lock.open() as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released after the block
    assert os.path.getsize(lock) == 0
