"""One tracking store for every notebook and script, and the small helpers around it.

`setup_mlflow` checks the configured tracking URI (an absolute SQLite file at the repository root by
default), points MLflow at it and creates the experiment with an absolute artifact location, so a
notebook sees the same runs whatever its working directory is. Notebook 01 types the two MLflow
calls itself, after `prepare_experiment`, the same housekeeping without them.

Several processes may share one store (two notebooks, the homework beside a notebook): creating a
SQLite store and getting-or-creating an experiment happen under a file lock beside the store
(`<store>-lock`, `week2.store_guard`), so two processes never run MLflow's migrations or insert the
same experiment at once; the store's creation is locked even in a process that opens it with
MLflow's own calls. MLflow itself retries the model-version race of `register_model`.
"""

from __future__ import annotations

import os
import re
import subprocess
import warnings
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.models.model import ModelInfo

from week2 import config
from week2.errors import Week2Error
from week2.store_guard import database_file, store_lock  # noqa: F401  (store_lock: re-exported)

UNKNOWN_GIT = "unknown (not a git checkout)"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
"""Marks an experiment as classic ML, so MLflow 3.17's UI shows it in its "Model training" view."""
CLASSIC_VIEW = "#/experiments?workflowType=machine_learning"
"""MLflow 3.17's UI opens in its GenAI view; this fragment opens the classic "Model training" one."""

HEALTH_TIMEOUT_SECONDS = (5, 10)  # to connect, then to answer: a dead server is named within 30 s
SQLITE_HEADER = b"SQLite format 3\x00"
SERVER_HINT = (
    "start it (make server, or make scenario3) or unset MLFLOW_TRACKING_URI to use the course's store"
)


class NoRunError(Week2Error, LookupError):
    """The store holds no run to build on yet; the message names the notebook to run first."""


def classic_view(ui_url: str) -> str:
    """The address of the classic ML view of the MLflow UI at `ui_url` (a server's or `make ui`'s)."""
    return f"{ui_url.rstrip('/')}/{CLASSIC_VIEW}"


def uses_server(uri: str) -> bool:
    """True when the tracking URI names a tracking server rather than a local store."""
    return uri.startswith(("http://", "https://"))


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (relative ones from the working directory), else None."""
    database = database_file(uri)
    if database is None and uri.startswith("sqlite:"):
        raise config.ConfigError(
            f"MLFLOW_TRACKING_URI={uri} names no file (an in-memory store loses every run); "
            f"write e.g. {config.default_tracking_uri()}."
        )
    return database


def _check_sqlite_file(uri: str, database: Path) -> None:
    """Refuse a store whose folder is missing (MLflow would create it and an empty store), or no SQLite."""
    folder = database.parent
    if not folder.is_dir():
        raise config.ConfigError(
            f"MLFLOW_TRACKING_URI={uri}: the folder {folder} does not exist; create it (mkdir -p {folder}) "
            "or unset MLFLOW_TRACKING_URI to use the course's store."
        )
    if database.is_dir():
        raise config.ConfigError(
            f"MLFLOW_TRACKING_URI={uri} names a folder; name a file in it, e.g. {database}/mlflow.db."
        )
    if not database.exists():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise config.ConfigError(
                f"MLFLOW_TRACKING_URI={uri}: {folder} is not writable for you; choose a folder you own."
            )
        return
    with database.open("rb") as handle:
        header = handle.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:
        raise config.ConfigError(
            f"MLFLOW_TRACKING_URI={uri}: {database} is not a SQLite database; "
            "point it at the course's .db file, or at a new file name."
        )


def _check_server(uri: str) -> None:
    """Refuse a tracking server that does not answer /health within HEALTH_TIMEOUT_SECONDS."""
    import requests

    try:
        answer = requests.get(uri.rstrip("/") + "/health", timeout=HEALTH_TIMEOUT_SECONDS)
    except requests.RequestException as error:
        raise config.ConfigError(
            f"MLFLOW_TRACKING_URI={uri} does not answer ({type(error).__name__}): {SERVER_HINT}."
        ) from None
    if answer.status_code != 200:
        raise config.ConfigError(
            f"MLFLOW_TRACKING_URI={uri} answers /health with HTTP {answer.status_code}, so it is no MLflow "
            f"server: {SERVER_HINT}."
        )


def check_store(uri: str | None = None) -> str:
    """The tracking URI (default: the configured one) once its store is usable; a ConfigError if not.

    Nothing is created: a SQLite store's folder must exist, a server must answer its /health.
    """
    uri = uri or config.tracking_uri()
    database = sqlite_path(uri)
    if database is not None:
        _check_sqlite_file(uri, database)
    elif uses_server(uri):
        _check_server(uri)
    return uri


def create_store(uri: str) -> None:
    """Create a SQLite store's tables (or bring an older schema up to date) now, under the lock.

    Before handing the store to a process that does not import `week2` (`mlflow ui`), which would
    create them without the lock.
    """
    mlflow.MlflowClient(uri).search_experiments(max_results=1)  # week2.store_guard locks it


def _get_or_create_experiment(uri: str, experiment: str) -> str:
    """The experiment's id, created (tagged as classic ML) if missing; another process may create it first."""
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        location = None if uses_server(uri) else (config.artifacts_dir() / experiment).as_uri()
        try:
            return client.create_experiment(
                experiment, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
            )
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":  # a client of the same server won the race
                raise
            found = client.get_experiment_by_name(experiment)
    if found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        try:  # an experiment of an older store, or made by a notebook call: tag it once
            client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        except MlflowException as error:
            if error.get_http_status_code() != 403:  # someone else's experiment on a shared server
                raise
    return found.experiment_id


MLFLOW_NOTES = (
    # MLflow 3.17 registers its local-file dataset source class twice, then warns that a path "can
    # be interpreted in multiple ways" by that same class: the source it picks is the right one.
    "The specified dataset source can be interpreted",
    # Zone IDs are never missing, so the hint that integer columns cannot hold missing values (given
    # whenever MLflow infers a schema from them) does not apply to the course's models.
    "Hint: Inferred schema contains integer column",
)
"""The starts of the UserWarnings MLflow gives that say nothing about the course's own code."""


def hide_mlflow_notes() -> None:
    """Hide MLFLOW_NOTES from here on (in a `warnings.catch_warnings()` block: until it ends)."""
    for note in MLFLOW_NOTES:
        warnings.filterwarnings("ignore", message=re.escape(note), category=UserWarning, module="mlflow")


def prepare_experiment(experiment: str) -> str:
    """The course's housekeeping before MLflow's own calls; returns the experiment's id.

    Checks the configured store (a SQLite file's folder, a server's /health), creates the experiment
    if missing, with an absolute artifact location under `config.artifacts_dir()` for a local store
    (a server chooses its own: it proxies artifacts) and the tag of the UI's classic view, and hides
    MLflow's notes about its own internals (MLFLOW_NOTES) in this process. It leaves MLflow's active
    store and experiment alone: `mlflow.set_tracking_uri` and `mlflow.set_experiment` (notebook 01,
    or `setup_mlflow`) choose them.
    """
    config.apply_mlflow_defaults()
    hide_mlflow_notes()
    uri = check_store()
    try:
        with store_lock(uri):
            return _get_or_create_experiment(uri, experiment)
    except MlflowException as error:
        if error.get_http_status_code() == 401:
            raise config.ConfigError(
                f"{uri} refused the credentials: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
                "to your account (scenario 3: the secrets file `make scenario3` printed)."
            ) from None
        raise


def setup_mlflow(experiment: str) -> str:
    """Use the configured tracking store and experiment `experiment`; return its id.

    `prepare_experiment`, then notebook 01's two calls: `mlflow.set_tracking_uri` and
    `mlflow.set_experiment`. A store that is not there, or a server that does not answer, is a
    ConfigError naming the URI.
    """
    experiment_id = prepare_experiment(experiment)
    mlflow.set_tracking_uri(config.tracking_uri())
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=config.REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout
        return None
    return result.stdout.strip() or None


def git_tags() -> dict[str, str]:
    """The commit and branch the code came from, or a clear 'unknown' outside a git checkout."""
    return {
        "git_commit": _git("rev-parse", "HEAD") or UNKNOWN_GIT,
        "git_branch": _git("rev-parse", "--abbrev-ref", "HEAD") or UNKNOWN_GIT,
    }


def run_tags(**extra: str) -> dict[str, str]:
    """Tags every course run carries: who ran it and from which code, plus `extra`."""
    return {"developer": config.developer(), **git_tags(), **{k: str(v) for k, v in extra.items()}}


def log_dataset(df: pd.DataFrame, path: str | Path, context: str, name: str) -> None:
    """Log a prepared month as an MLflow dataset input of the active run (`context`: training,
    validation…): the columns the pipeline reads, as notebook 01 logs them (the same digest)."""
    from week2 import utils

    with warnings.catch_warnings():
        hide_mlflow_notes()
        seen = df[utils.SEEN_COLUMNS]
        dataset = mlflow.data.from_pandas(seen, source=str(path), targets=utils.TARGET, name=name)
        # The schema is inferred lazily, when the input is logged: the hint would come from here.
        mlflow.log_input(dataset, context=context)


def log_pipeline(pipeline, example: pd.DataFrame, name: str = "model", **kwargs) -> ModelInfo:
    """Log a fitted preprocessing+estimator pipeline with what `week2.models` names, for the later notebooks.

    skops (MLflow's safe default format) with the types we trust, the trip signature, the `week2`
    code the pipeline calls into, and requirements named rather than inferred: inference loads the
    model in a new Python process (seconds per model) and lists psutil, which joblib imports.
    """
    from week2 import models

    boosted = any(type(step).__module__.startswith("xgboost") for _, step in pipeline.steps)
    packages = models.XGBOOST_PACKAGES if boosted else models.PACKAGES
    with warnings.catch_warnings():
        hide_mlflow_notes()
        return mlflow.sklearn.log_model(
            pipeline,
            name=name,
            signature=models.SIGNATURE,
            input_example=example.head(5),
            skops_trusted_types=models.TRUSTED_TYPES,
            code_paths=models.WEEK2_CODE,
            pip_requirements=models.requirements(packages),
            **kwargs,
        )


def best_run(experiment_names: list[str] | str, metric: str = "val_rmse", filter_string: str = "") -> Run:
    """The finished run with the lowest `metric` across the named experiments."""
    names = [experiment_names] if isinstance(experiment_names, str) else list(experiment_names)
    runs = mlflow.search_runs(
        experiment_names=names,
        filter_string=" and ".join(f for f in (f"metrics.{metric} >= 0", filter_string) if f),
        order_by=[f"metrics.{metric} ASC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        raise NoRunError(f"No run in {names} has metric {metric!r}: run the notebook that logs it first.")
    return runs[0]
