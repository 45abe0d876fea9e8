"""The registry as a release process: candidates, comparison, gate, registration, sanity, aliases."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pytest
from conftest import log_model_run
from mlflow import MlflowClient
from sklearn.linear_model import Lasso, LinearRegression, Ridge

from week2 import config, registry, tracking


@pytest.fixture(scope="module")
def client(private_store):
    mlflow.set_tracking_uri(config.tracking_uri())  # private_store's
    return MlflowClient()


@pytest.fixture(scope="module")
def runs(client, sample_xy):
    """Course-like runs: two experiments before 04 with models, one run without a model, and
    experiments the registry notebook must not look at (a later notebook's, and a scratch one)."""
    logged = {
        "ridge": log_model_run("01-test-baselines", Ridge(alpha=1.0), sample_xy, "ridge"),
        "lasso": log_model_run("02-test-families", Lasso(alpha=1.0), sample_xy, "lasso", fit_seconds=False),
        "later": log_model_run("05-test-later", LinearRegression(), sample_xy, "later"),
        "scratch": log_model_run("scratch", LinearRegression(), sample_xy, "scratch"),
    }
    tracking.setup_mlflow("01-test-baselines")
    with mlflow.start_run(run_name="metrics-only") as run:
        mlflow.log_metric("val_rmse", 0.001)  # the best score, but nothing to register
    logged["metrics-only"] = (mlflow.get_run(run.info.run_id), None)
    return logged


def _register(client, run, name):
    """Register a run with a threshold it passes."""
    return registry.register_candidate(client, run, name, threshold=run.data.metrics["val_rmse"] + 1)


def test_candidates_come_from_earlier_course_experiments_best_first(client, runs):
    experiments = registry.course_experiments(client, before="04")
    assert [e.name for e in experiments] == ["01-test-baselines", "02-test-families"]

    candidates = registry.find_candidates(client, [e.experiment_id for e in experiments])

    assert {c.info.run_id for c in candidates} == {runs[n][0].info.run_id for n in ("ridge", "lasso")}
    scores = [c.data.metrics["val_rmse"] for c in candidates]
    assert scores == sorted(scores)
    assert runs["ridge"][0].data.metrics["val_rmse"] < runs["lasso"][0].data.metrics["val_rmse"]


def test_comparison_measures_error_training_time_size_and_latency(client, runs, sample_xy):
    ridge, lasso = runs["ridge"][0], runs["lasso"][0]
    trips = sample_xy[1][0].head(200)

    table = registry.compare_candidates(client, [ridge, lasso], trips)

    assert list(table["run_id"]) == [ridge.info.run_id, lasso.info.run_id]
    assert table.loc[0, "val_rmse"] == ridge.data.metrics["val_rmse"]
    assert table.loc[0, "train_seconds"] == ridge.data.metrics["fit_seconds"]
    lasso_duration = (lasso.info.end_time - lasso.info.start_time) / 1000  # it logged no fit time
    assert table.loc[1, "train_seconds"] == pytest.approx(lasso_duration)
    location = client.get_logged_model(registry.logged_model_id(ridge)).artifact_location
    model_dir = Path(urlparse(location).path)
    on_disk = sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file()) / 1e6
    assert table.loc[0, "size_mb"] == pytest.approx(on_disk)
    assert (table["latency_ms_1_trip"] > 0).all() and (table["latency_ms_batch"] > 0).all()


def test_the_gate_refuses_a_failing_candidate_and_registers_nothing(client, runs):
    lasso = runs["lasso"][0]
    score = lasso.data.metrics["val_rmse"]

    with pytest.raises(registry.GateRefused) as refusal:
        registry.register_candidate(client, lasso, "gate-test", threshold=score - 0.5)

    message = str(refusal.value)
    assert "'lasso'" in message and f"{score:.3f}" in message and "WEEK2_RMSE_THRESHOLD" in message
    assert registry.registered_model(client, "gate-test") is None
    assert client.search_model_versions("name = 'gate-test'") == []


def test_registration_writes_descriptions_and_tags_once_per_run(client, runs):
    ridge = runs["ridge"][0]

    version = _register(client, ridge, "register-test")
    again = _register(client, ridge, "register-test")

    assert again.version == version.version
    assert len(client.search_model_versions("name = 'register-test'")) == 1
    stored = client.get_model_version("register-test", version.version)
    assert stored.source == f"models:/{registry.logged_model_id(ridge)}"
    assert stored.run_id == ridge.info.run_id
    assert stored.tags["model"] == "ridge" and stored.tags["data_source"] == "sample"
    assert float(stored.tags["val_rmse"]) == pytest.approx(ridge.data.metrics["val_rmse"], abs=1e-4)
    assert "'ridge'" in stored.description and "01-test-baselines" in stored.description
    model = client.get_registered_model("register-test")
    assert model.description == registry.MODEL_DESCRIPTION and model.tags["task"] == "regression"


def test_sanity_check_records_whether_a_version_predicts_raw_trips(client, runs, sample_xy):
    ridge, pipeline = runs["ridge"]
    version = _register(client, ridge, "sanity-test").version
    trips = sample_xy[1][0].head(5)

    with pytest.raises(registry.SanityCheckFailed, match="DOLocationID"):
        registry.sanity_check(client, "sanity-test", version, trips.drop(columns="DOLocationID"))
    assert client.get_model_version("sanity-test", version).tags[registry.PREDICTION_WORKS] == "false"
    with pytest.raises(registry.SanityCheckFailed, match="sanity check"):
        registry.promote(client, "sanity-test", version, reason="must be refused")

    predictions = registry.sanity_check(client, "sanity-test", version, trips)

    np.testing.assert_allclose(predictions, pipeline.predict(trips))
    assert client.get_model_version("sanity-test", version).tags[registry.PREDICTION_WORKS] == "true"


def test_promotion_moves_champion_keeps_the_previous_one_and_its_history(client, runs, sample_xy):
    trips = sample_xy[2][0].head(5)
    name = "promotion-test"
    first, second = (_register(client, runs[n][0], name).version for n in ("lasso", "ridge"))
    for version in (first, second):
        registry.sanity_check(client, name, version, trips)
    client.set_registered_model_alias(name, registry.CHALLENGER, second)

    assert registry.promote(client, name, first, reason="first in service") is None
    replaced = registry.promote(client, name, second, reason="better on test")

    assert str(replaced.version) == str(first)
    aliases = client.get_registered_model(name).aliases
    assert {alias: str(v) for alias, v in aliases.items()} == {
        registry.CHAMPION: str(second),
        registry.PREVIOUS_CHAMPION: str(first),
    }
    previous = mlflow.pyfunc.load_model(f"models:/{name}@{registry.PREVIOUS_CHAMPION}")
    np.testing.assert_allclose(previous.predict(trips), runs["lasso"][1].predict(trips))

    assert registry.promote(client, name, second, reason="already champion") is None
    registry.promote(client, name, first, reason="rollback")

    history = registry.promotion_history(client, name)
    assert list(history["champion"]) == [str(first), str(second), str(first)]
    assert list(history["previous"]) == ["none", str(first), str(second)]
    assert list(history["reason"]) == ["first in service", "better on test", "rollback"]
    raw = client.get_registered_model(name).tags[f"{registry.PROMOTION_TAG_PREFIX}0002"]
    assert json.loads(raw)["champion"] == str(second)


def test_lineage_follows_version_to_run_datasets_and_params(client, runs, sample_xy):
    ridge = runs["ridge"][0]
    X_train, y_train = sample_xy[0]
    with mlflow.start_run(run_id=ridge.info.run_id):
        mlflow.log_param("alpha", 1.0)
        train = X_train.assign(duration=y_train)
        tracking.log_dataset(train, "sample-train.parquet", context="training", name="green-train")
    version = _register(client, ridge, "lineage-test").version

    links = dict(registry.lineage(client, "lineage-test", version).itertuples(index=False))

    assert links["version"] == f"lineage-test v{version}"
    assert links["logged model"] == f"models:/{registry.logged_model_id(ridge)}"
    assert ridge.info.run_id in links["run"]
    assert links["experiment"] == "01-test-baselines"
    assert links["dataset (training)"].startswith("green-train, digest ")
    assert links["param alpha"] == "1.0"
