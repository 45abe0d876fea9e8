"""A tracking store made by an older MLflow (2.x), for notebook 10's lesson on schema upgrades.

`old_store()` builds it once and keeps it in `old-stores/mlflow-<version>/` of the build folder
(WEEK2_BUILD_DIR, by default `build/`): a throwaway environment (`old-stores/venv-<version>`, its
own Python venv with `mlflow-skinny==<version>` from the package index, installed with uv) runs
`OLD_STORE_SCRIPT`, which logs a run and registers a model with a `champion` alias. Later calls
return the cached store at once. Nothing of the throwaway environment reaches the course's `.venv`.

    python -m week2.machinery.old_store [VERSION]     # build (or find) it, print its path
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from week2 import config
from week2.errors import Week2Error

OLD_VERSION = "2.22.4"
"""The last MLflow 2 release whose skinny package installs on Python 3.11 here."""

STORE_FILE = "mlflow.db"
EXPERIMENT = "nyc-taxi-mlflow-2"
MODEL = "nyc-taxi-duration-mlflow-2"

# MLflow 2.22 imports a SQLAlchemy pool class that 2.1 removed: pin what it was released with.
OLD_REQUIREMENTS = ["sqlalchemy>=2.0,<2.1", "alembic<2"]

OLD_STORE_SCRIPT = """
import sys
import mlflow
from mlflow import MlflowClient

mlflow.set_tracking_uri(sys.argv[1])
experiment_id = mlflow.create_experiment(sys.argv[2], artifact_location=sys.argv[3])
with mlflow.start_run(experiment_id=experiment_id, run_name="lasso") as run:
    mlflow.log_params({"estimator": "Lasso", "alpha": 0.01})
    mlflow.log_metric("val_rmse", 7.6)
    mlflow.set_tags({"developer": "a colleague on MLflow " + mlflow.__version__})
client = MlflowClient()
client.create_registered_model(sys.argv[4])
version = client.create_model_version(sys.argv[4], f"runs:/{run.info.run_id}/model", run.info.run_id)
client.set_registered_model_alias(sys.argv[4], "champion", version.version)
"""
"""Runs inside the throwaway environment: argv = store URI, experiment, artifact location, model name."""


OLD_CLIENT_SCRIPT = """
import sys
from mlflow import MlflowClient

try:
    experiments = MlflowClient(sys.argv[1]).search_experiments()
except Exception as error:
    print(f"{type(error).__module__}.{type(error).__name__}: {error}")
else:
    print("opened: " + ", ".join(e.name for e in experiments))
"""
"""Runs inside the throwaway environment: open the store at argv[1] as a colleague on MLflow 2 would."""


class OldStoreUnavailable(Week2Error):
    """The older MLflow could not be installed or run here (offline, no such package)."""


def cache_dir() -> Path:
    return config.build_dir() / "old-stores"


def venv_python(version: str = OLD_VERSION) -> Path:
    """The Python of the throwaway environment with MLflow `version` (it may not exist yet)."""
    return cache_dir() / f"venv-{version}" / "bin" / "python"


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise OldStoreUnavailable(f"{what} failed ({last}): this lesson needs the package index.")


def _make_venv(version: str) -> Path:
    python = venv_python(version)
    if python.exists() and _has_mlflow(python, version):
        return python
    folder = python.parent.parent
    _run([sys.executable, "-m", "venv", "--clear", str(folder)], f"creating {folder}")
    _run([str(python), "-m", "pip", "install", "--quiet", "uv"], "installing uv in the throwaway venv")
    uv = [str(folder / "bin" / "uv"), "pip", "install", "--quiet", "--python", str(python)]
    _run([*uv, f"mlflow-skinny=={version}", *OLD_REQUIREMENTS], f"installing mlflow-skinny=={version}")
    return python


def _has_mlflow(python: Path, version: str) -> bool:
    check = [str(python), "-c", "import importlib.metadata as m; print(m.version('mlflow-skinny'))"]
    done = subprocess.run(check, capture_output=True, text=True)
    return done.stdout.strip() == version


def old_store(version: str = OLD_VERSION) -> Path:
    """The SQLite file of a store made by MLflow `version` (built on first use, then cached)."""
    store = cache_dir() / f"mlflow-{version}"
    if (store / STORE_FILE).is_file():
        return store / STORE_FILE
    cache_dir().mkdir(parents=True, exist_ok=True)
    # Two processes asking at once (two notebooks, parallel tests) must not build one venv
    # together: the builder holds a lock on the cache folder itself, which leaves no file behind.
    folder = os.open(cache_dir(), os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        if not (store / STORE_FILE).is_file():
            _build_old_store(version, store)
    finally:
        os.close(folder)
    return store / STORE_FILE


def _build_old_store(version: str, store: Path) -> None:
    python = _make_venv(version)
    # Made in a temporary folder and renamed into place, so a half-made store is never cached.
    partial = Path(tempfile.mkdtemp(prefix=f".mlflow-{version}-", dir=cache_dir()))
    try:
        artifacts = (store / "mlartifacts").as_uri()
        uri = f"sqlite:///{partial / STORE_FILE}"
        script = [str(python), "-c", OLD_STORE_SCRIPT, uri, EXPERIMENT, artifacts, MODEL]
        _run(script, f"logging a run with MLflow {version}")
        partial.rename(store)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def open_with_old_mlflow(db: Path, version: str = OLD_VERSION) -> str:
    """What MLflow `version` answers when it opens the SQLite store `db`: its error, or the experiments."""
    done = subprocess.run(
        [str(venv_python(version)), "-c", OLD_CLIENT_SCRIPT, f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.stdout.strip() or done.stderr.strip().splitlines()[-1]


def schema_revision(db: Path) -> str:
    """The Alembic revision a SQLite tracking store is at (MLflow's schema version)."""
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def main(argv: list[str]) -> int:
    try:
        path = old_store(*argv[:1])
    except OldStoreUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{path} (schema revision {schema_revision(path)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
