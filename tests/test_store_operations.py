"""Notebook 10's store operations: `mlflow gc` frees a deleted experiment's name; an MLflow 2 store upgraded.

What the notebook tells students is checked here against the real commands: the error a deleted
experiment's name gives, what `mlflow gc` removes and where it looks without `--backend-store-uri`,
what MLflow 3.17 does to a store made by MLflow 2 (it migrates it on open), what MLflow 2 then
answers, and that `mlflow db upgrade` after a backup keeps the runs and the registry.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from week2.machinery import old_store


def mlflow_command(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlflow", *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def test_a_deleted_experiment_blocks_its_name_until_gc_removes_it(store):
    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    artifacts = store / "mlartifacts" / "scratch"
    experiment_id = mlflow.create_experiment("scratch", artifact_location=artifacts.as_uri())
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_text("a note", "notes.txt")
    mlflow.delete_experiment(experiment_id)
    assert [p.name for p in artifacts.rglob("*") if p.is_file()] == ["notes.txt"]

    with pytest.raises(MlflowException) as blocked:
        mlflow.create_experiment("scratch")
    assert blocked.value.error_code == "RESOURCE_ALREADY_EXISTS"
    assert "UNIQUE constraint failed: experiments.workspace, experiments.name" in blocked.value.message

    # Without --backend-store-uri, in a fresh terminal (no MLFLOW_TRACKING_URI), gc opens
    # ./mlflow.db of the folder it runs in: another store. (--tracking-uri does not choose the store.)
    elsewhere = store / "elsewhere"
    elsewhere.mkdir()
    fresh_terminal = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    lost = mlflow_command(
        "gc", "--tracking-uri", uri, "--experiment-ids", experiment_id, cwd=elsewhere, env=fresh_terminal
    )
    assert lost.returncode != 0 and f"No Experiment with id={experiment_id} exists" in lost.stderr
    assert (elsewhere / "mlflow.db").is_file()
    assert mlflow.get_experiment(experiment_id).lifecycle_stage == "deleted"

    done = mlflow_command(
        "gc", "--backend-store-uri", uri, "--tracking-uri", uri, "--experiment-ids", experiment_id
    )
    assert done.returncode == 0, done.stderr
    assert f"Run with ID {run.info.run_id} has been permanently deleted." in done.stdout
    assert f"Experiment with ID {experiment_id} has been permanently deleted." in done.stdout
    assert not [p for p in artifacts.rglob("*") if p.is_file()]
    again = mlflow.create_experiment("scratch")
    assert mlflow.get_experiment(again).lifecycle_stage == "active"


def fresh_store_revision(folder) -> str:
    """The schema revision MLflow 3.17 gives a store it creates: the one it expects."""
    fresh = folder / "fresh.db"
    mlflow.MlflowClient(f"sqlite:///{fresh}").search_experiments()
    return old_store.schema_revision(fresh)


@pytest.mark.slow  # the first run builds MLflow 2 in a throwaway venv (minutes); later ones reuse build/
def test_an_mlflow_2_store_is_migrated_on_open_and_upgraded_after_a_backup(tmp_path):
    try:
        made = old_store.old_store()
    except old_store.OldStoreUnavailable as error:
        pytest.skip(str(error))
    head = fresh_store_revision(tmp_path)
    old_revision = old_store.schema_revision(made)
    assert old_revision != head
    assert old_store.open_with_old_mlflow(made).startswith("opened: "), "MLflow 2 reads its own store"

    # MLflow 3.17 does not refuse the old store: it migrates it as it opens it.
    peek = tmp_path / "peek.db"
    shutil.copy(made, peek)
    names = {e.name for e in mlflow.MlflowClient(f"sqlite:///{peek}").search_experiments()}
    assert old_store.EXPERIMENT in names
    assert old_store.schema_revision(peek) == head
    refused = old_store.open_with_old_mlflow(peek)
    assert refused == f"alembic.util.exc.CommandError: Can't locate revision identified by '{head}'"

    # The deliberate way: a backup, then mlflow db upgrade.
    store, backup = tmp_path / "mlflow.db", tmp_path / "mlflow.db.before-upgrade"
    shutil.copy(made, store)
    shutil.copy(store, backup)
    done = mlflow_command("db", "upgrade", f"sqlite:///{store}")
    assert done.returncode == 0, done.stderr
    assert "Updating database tables" in done.stderr  # all it says: the revision tells what happened
    assert old_store.schema_revision(store) == head
    assert old_store.schema_revision(backup) == old_revision

    client = mlflow.MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name(old_store.EXPERIMENT)
    [run] = client.search_runs([experiment.experiment_id])
    assert run.data.params == {"estimator": "Lasso", "alpha": "0.01"}
    assert run.data.metrics == {"val_rmse": 7.6}
    champion = client.get_model_version_by_alias(old_store.MODEL, "champion")
    assert (str(champion.version), champion.run_id) == ("1", run.info.run_id)
    assert old_store.open_with_old_mlflow(backup).startswith("opened: "), "the backup is MLflow 2's still"


def test_the_old_store_is_cached_by_version(tmp_path, monkeypatch):
    """A made store is found again without building anything: the notebook and the suite share it."""
    monkeypatch.setattr(old_store, "cache_dir", lambda: tmp_path)
    cached = tmp_path / "mlflow-9.9.9" / old_store.STORE_FILE
    cached.parent.mkdir()
    cached.write_bytes(b"")
    monkeypatch.setattr(old_store, "_make_venv", lambda version: pytest.fail("rebuilt a cached store"))
    assert old_store.old_store("9.9.9") == cached


def test_an_uninstallable_version_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(old_store, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(
        old_store,
        "_make_venv",
        lambda version: old_store._run(
            [sys.executable, "-c", "import sys; sys.exit('no such package')"],
            f"installing mlflow-skinny=={version}",
        ),
    )
    with pytest.raises(
        old_store.OldStoreUnavailable, match=r"installing mlflow-skinny==0.0.0 failed \(no such package\)"
    ):
        old_store.old_store("0.0.0")
    assert not list(tmp_path.iterdir()), "nothing half-made is cached"


def test_two_processes_asking_at_once_build_the_old_store_once(tmp_path, monkeypatch):
    """The second caller waits for the first one's build and takes the store it made."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(old_store, "cache_dir", lambda: tmp_path)
    builds, building = [], threading.Lock()

    def build(version, store):
        assert building.acquire(blocking=False), "two builds at once"
        builds.append(version)
        time.sleep(0.5)  # long enough for the other caller to arrive while this one builds
        store.mkdir()
        (store / old_store.STORE_FILE).write_text("made once")
        building.release()

    monkeypatch.setattr(old_store, "_build_old_store", build)
    with ThreadPoolExecutor(2) as pool:  # flock locks open files, so threads contend as processes do
        paths = list(pool.map(lambda _: old_store.old_store("9.9.8"), range(2)))
    assert builds == ["9.9.8"]
    assert paths[0] == paths[1] and paths[0].read_text() == "made once"
