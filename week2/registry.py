"""The model registry as a governed release process: the steps notebook 04 takes, for reuse.

Notebook 04 types the registry calls in the open (search, gate, `register_model`, tags and
descriptions, the sanity check, aliases); this module keeps what is not the lesson (measuring
candidates for the deployment comparison) and the same steps as functions for scripts and tests:
`register_candidate` (gate, then register with tags and a description), `sanity_check` (the
`prediction_works` version tag) and `promote`, which moves `champion` and keeps the replaced
version as `previous-champion`. Every promotion is appended to the registered model's tags
(`promotion.0001`, …), so the history survives rollbacks.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
PREDICTION_WORKS = "prediction_works"
PROMOTION_TAG_PREFIX = "promotion."
TRAINING_TIME_METRICS = ("fit_seconds", "train_seconds")

MODEL_DESCRIPTION = (
    "Predicts the duration in minutes of a NYC green taxi trip from its pickup and dropoff zones "
    "and its distance. Input: raw trip columns PULocationID, DOLocationID (integers) and "
    "trip_distance (miles); the model builds its own features. Every version passed the validation "
    "gate (val_rmse at most its gate_threshold tag); only versions whose prediction_works tag is "
    "true get an alias."
)


class GateRefused(ValueError):
    """A candidate failed the validation gate; nothing was registered."""


class SanityCheckFailed(RuntimeError):
    """A registered version could not load or predict; it must not get an alias."""


def logged_model_id(run: Run) -> str:
    """The id of the model a run logged (`models:/<id>` loads it)."""
    return run.outputs.model_outputs[0].model_id


def training_seconds(run: Run) -> float:
    """The fitting time the run logged, or else the run's wall-clock duration."""
    for metric in TRAINING_TIME_METRICS:
        if metric in run.data.metrics:
            return run.data.metrics[metric]
    return (run.info.end_time - run.info.start_time) / 1000


def model_size_mb(client: MlflowClient, model_id: str, path: str | None = None) -> float:
    """Size of a logged model's files (pickles, environment, code), in megabytes."""
    total = 0.0
    for entry in client.list_logged_model_artifacts(model_id, path):
        if entry.is_dir:
            total += model_size_mb(client, model_id, entry.path)
        else:
            total += (entry.file_size or 0) / 1e6
    return total


def prediction_latency_ms(model, trips: pd.DataFrame, repeats: int = 5) -> float:
    """Median time, in milliseconds, for `model.predict(trips)` (the first call warms up)."""
    model.predict(trips)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict(trips)
        timings.append((time.perf_counter() - started) * 1000)
    return float(np.median(timings))


def compare_candidates(client: MlflowClient, runs: list[Run], trips: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate with what a deployment decision weighs, in the order of `runs`.

    Latency is measured twice: one trip (an online request) and all of `trips` (a batch).
    """
    rows = []
    for run in runs:
        model_id = logged_model_id(run)
        model = mlflow.pyfunc.load_model(f"models:/{model_id}")
        experiment = client.get_experiment(run.info.experiment_id).name
        rows.append(
            {
                "candidate": f"{experiment[:2]} · {run.info.run_name}",
                "model": run.data.tags.get("model", "unknown"),
                "experiment": experiment,
                "val_rmse": run.data.metrics["val_rmse"],
                "train_seconds": training_seconds(run),
                "size_mb": model_size_mb(client, model_id),
                "latency_ms_1_trip": prediction_latency_ms(model, trips.head(1)),
                "latency_ms_batch": prediction_latency_ms(model, trips),
                "run_id": run.info.run_id,
            }
        )
    return pd.DataFrame(rows)


def check_gate(run: Run, threshold: float, metric: str = "val_rmse") -> None:
    """Raise GateRefused unless the run's `metric` is at most `threshold`."""
    value = run.data.metrics.get(metric)
    if value is None or not value <= threshold:
        shown = "missing" if value is None else f"{value:.3f}"
        raise GateRefused(
            f"Run {run.info.run_name!r} ({run.info.run_id}) refused: {metric} {shown} is above the "
            f"gate's threshold {threshold:.3f}. Nothing was registered: improve the model, or raise "
            "WEEK2_RMSE_THRESHOLD if the bar is too strict."
        )


def registered_model(client: MlflowClient, name: str) -> RegisteredModel | None:
    """The registered model `name`, or None when the registry has none by that name."""
    try:
        return client.get_registered_model(name)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise
        return None


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    """Create the registered model with its description and tags, unless it exists."""
    if registered_model(client, name) is None:
        client.create_registered_model(
            name,
            tags={"task": "regression", "target": "duration in minutes", "course": "mlops week 2"},
            description=MODEL_DESCRIPTION,
        )


def register_candidate(client: MlflowClient, run: Run, name: str, threshold: float) -> ModelVersion:
    """Gate a candidate run, then register its logged model as a version of `name`.

    A run registered before gets its existing version back, so running the notebook twice does
    not pile up copies of one model.
    """
    check_gate(run, threshold)
    existing = client.search_model_versions(f"name = '{name}' and run_id = '{run.info.run_id}'")
    if existing:
        return existing[0]
    ensure_registered_model(client, name)
    tags = run.data.tags
    version_tags = {
        "model": tags.get("model", "unknown"),
        "val_rmse": f"{run.data.metrics['val_rmse']:.4f}",
        "gate_threshold": str(threshold),
        "data_source": tags.get("data_source", "unknown"),
        "train_month": tags.get("train_month", "unknown"),
        "val_month": tags.get("val_month", "unknown"),
    }
    version = mlflow.register_model(f"models:/{logged_model_id(run)}", name, tags=version_tags)
    experiment = client.get_experiment(run.info.experiment_id).name
    description = (
        f"{version_tags['model']} from run {run.info.run_name!r} of experiment {experiment!r}: "
        f"val_rmse {run.data.metrics['val_rmse']:.3f} on {version_tags['val_month']}, trained on "
        f"{version_tags['train_month']} ({version_tags['data_source']} data)."
    )
    return client.update_model_version(name, version.version, description=description)


def sanity_check(client: MlflowClient, name: str, version: str, trips: pd.DataFrame) -> np.ndarray:
    """Load a registered version, predict `trips`, record the outcome as the version tag
    `prediction_works`; return the predictions or raise SanityCheckFailed."""
    problem = None
    try:
        predictions = np.asarray(mlflow.pyfunc.load_model(f"models:/{name}/{version}").predict(trips), float)
    except Exception as error:  # any failure to load or to predict is what this check is for
        problem = f"{type(error).__name__}: {error}"
    else:
        if predictions.shape != (len(trips),) or not np.isfinite(predictions).all():
            problem = f"expected {len(trips)} finite predictions, got {predictions!r}"
    client.set_model_version_tag(name, version, PREDICTION_WORKS, str(problem is None).lower())
    if problem:
        raise SanityCheckFailed(f"{name} version {version} does not predict on raw trips: {problem}")
    return predictions


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version `alias` points at, or None when no version carries it."""
    model = registered_model(client, name)
    if model is None or alias not in model.aliases:
        return None
    return client.get_model_version(name, model.aliases[alias])


def promote(client: MlflowClient, name: str, version: str, reason: str) -> ModelVersion | None:
    """Move `champion` to `version`; the replaced version keeps the alias `previous-champion`.

    Only a version that passed the sanity check can be promoted. The promotion is appended to the
    registered model's history; the replaced champion (None for the first one) is returned.
    """
    version = str(version)
    if client.get_model_version(name, version).tags.get(PREDICTION_WORKS) != "true":
        raise SanityCheckFailed(f"{name} version {version} has not passed the sanity check: not promoted.")
    previous = version_by_alias(client, name, CHAMPION)
    if previous is not None and str(previous.version) == version:
        return None
    if previous is not None:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, previous.version)
    client.set_registered_model_alias(name, CHAMPION, version)
    challenger = version_by_alias(client, name, CHALLENGER)
    if challenger is not None and str(challenger.version) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "champion": version,
        "previous": str(previous.version) if previous else "none",
        "reason": reason,
    }
    number = len(promotion_history(client, name)) + 1
    client.set_registered_model_tag(name, f"{PROMOTION_TAG_PREFIX}{number:04d}", json.dumps(record))
    return previous


def promotion_history(client: MlflowClient, name: str) -> pd.DataFrame:
    """Every promotion of `name`, oldest first: when, which version, which it replaced, why."""
    tags = client.get_registered_model(name).tags
    records = [json.loads(tags[key]) for key in sorted(tags) if key.startswith(PROMOTION_TAG_PREFIX)]
    return pd.DataFrame(records, columns=["at", "champion", "previous", "reason"])
