"""Registry helpers (comparison, gate, registration, sanity, promotion) and the models of notebooks 04–08."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import nbformat
import numpy as np
import pytest
import skops
import skops.io
from conftest import REPO_ROOT, log_custom_model, log_model_run
from mlflow import MlflowClient
from sklearn.linear_model import Lasso, LinearRegression, Ridge

from week2 import config, data, exercises, plots, pyfunc_model, registry, tracking, utils


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


def test_exercise_04_1_passes_a_version_that_passes_the_gate_and_names_the_gate_otherwise(
    client, runs, monkeypatch
):
    ridge = runs["ridge"][0]
    name, val_rmse = "exercise-04-gate", ridge.data.metrics["val_rmse"]
    version = mlflow.register_model(
        f"models:/{registry.logged_model_id(ridge)}", name, tags={exercises.EXERCISE_TAG: "04.1"}
    ).version
    client.update_model_version(name, version, description="the ridge baseline")
    client.set_registered_model_alias(name, exercises.EXERCISE_ALIAS, version)

    monkeypatch.setenv("WEEK2_RMSE_THRESHOLD", str(val_rmse + 0.5))
    assert exercises.EXERCISES["04.1"].verdict(client).passed
    monkeypatch.setenv("WEEK2_RMSE_THRESHOLD", str(val_rmse - 0.5))
    verdict = exercises.EXERCISES["04.1"].verdict(client)
    assert verdict.status == exercises.NOT_YET
    assert f"val_rmse {val_rmse:.3f}, above the gate's {val_rmse - 0.5}" in verdict.message


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


# --- What the models of notebooks 05–08 take with them -----------------------------------------

NOT_NEEDED = {"psutil", "pyspark", "hyperopt"}
"""Packages a course model must not require: MLflow's inference used to write them down."""
SHIPPED_CODE = ["week2/__init__.py", "week2/store_guard.py"]
"""The week2 code of a course model: the package and what its init imports (the pipeline calls none)."""
SCENARIOS = ["06-scenario-1-local", "07-scenario-2-team-server", "08-scenario-3-remote-server"]


def _training_cell(notebook: str) -> str:
    cells = nbformat.read(REPO_ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4).cells
    (cell,) = [c for c in cells if c.metadata.get("week2", {}).get("role") == "scenario-training"]
    return cell.source


def _requirements(model_uri: str) -> dict[str, str]:
    lines = Path(mlflow.pyfunc.get_model_dependencies(model_uri)).read_text().split()
    return dict(line.split("==") for line in lines)


def _code_files(model_uri: str) -> list[str]:
    model_dir = Path(mlflow.artifacts.download_artifacts(model_uri))
    return sorted(str(p.relative_to(model_dir / "code")) for p in (model_dir / "code").rglob("*.py"))


def test_the_three_scenarios_log_the_same_training_cell():
    cells = {notebook: _training_cell(notebook) for notebook in SCENARIOS}
    assert len(set(cells.values())) == 1, "notebooks 06–08 must show the same training code"
    assert "mlflow.start_run(" in cells[SCENARIOS[0]] and "log_model(" in cells[SCENARIOS[0]]


def test_the_scenario_model_ships_no_course_code_and_requires_only_what_it_imports(client):
    tracking.setup_mlflow("06-test-scenario-cell")
    names = {"mlflow": mlflow, "skops": skops, "LinearRegression": LinearRegression, "config": config}
    names |= {
        "data": data,
        "plots": plots,
        "pyfunc_model": pyfunc_model,
        "tracking": tracking,
        "utils": utils,
    }
    names |= {"RUN_NAME": "scenario-test", "PLOT_PATH": "plots/predicted_vs_actual.png"}

    exec(_training_cell(SCENARIOS[0]), names)  # the cell exactly as the notebooks run it

    model_uri = names["model_info"].model_uri
    requirements = _requirements(model_uri)
    assert set(requirements) == {"mlflow", "numpy", "scikit-learn", "skops"}
    assert requirements["mlflow"] == mlflow.__version__
    assert _code_files(model_uri) == SHIPPED_CODE  # the pipeline is scikit-learn's parts only
    trips = names["X_val"].head(5)
    np.testing.assert_allclose(
        mlflow.pyfunc.load_model(model_uri).predict(trips), names["pipeline"].predict(trips)
    )


@pytest.fixture(scope="module")
def custom_model(client, runs, sample_xy, tmp_path_factory):
    """Notebook 05's custom model around a logged pipeline, logged from code as the notebook does."""
    ridge, pipeline = runs["ridge"]
    tracking.setup_mlflow("05-test-custom-model")
    info = log_custom_model(pipeline, tmp_path_factory.mktemp("components"), sample_xy[1][0])
    return info, pipeline


def test_the_custom_model_clips_needs_no_course_code_and_only_what_it_imports(custom_model, sample_xy):
    info, pipeline = custom_model
    trips = sample_xy[1][0].head(50)

    np.testing.assert_allclose(
        mlflow.pyfunc.load_model(info.model_uri).predict(trips), np.clip(pipeline.predict(trips), 5.0, 20.0)
    )
    requirements = _requirements(info.model_uri)
    assert set(requirements) == {"mlflow", "joblib", "numpy", "pandas", "scikit-learn"}
    assert not NOT_NEEDED & set(requirements)
    assert _code_files(info.model_uri) == SHIPPED_CODE


def test_the_custom_model_loads_without_this_checkout_on_the_path(custom_model, sample_xy, tmp_path):
    info, pipeline = custom_model
    model_dir = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "model")))
    trips = sample_xy[1][0].head(5)
    trips.to_parquet(tmp_path / "trips.parquet")
    script = f"""
import sys
sys.path = [p for p in sys.path if p not in ({str(REPO_ROOT)!r}, '')]
import json, mlflow, pandas as pd
model = mlflow.pyfunc.load_model({str(model_dir)!r})
import week2
print(week2.__file__)
try:
    import week2.config
except ImportError:
    print("no week2.config")
print(json.dumps(model.predict(pd.read_parquet({str(tmp_path / "trips.parquet")!r})).tolist()))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stderr[-2000:]
    where, config_import, predicted = done.stdout.strip().splitlines()[-3:]
    assert where.startswith(str(model_dir / "code"))  # week2 came from the model, not from the checkout
    assert config_import == "no week2.config"
    np.testing.assert_allclose(json.loads(predicted), np.clip(pipeline.predict(trips), 5.0, 20.0))


def test_model_dependencies_follow_the_week2_modules_a_module_imports(tmp_path):
    model_file = tmp_path / "model.py"
    model_file.write_text("import mlflow\nfrom week2 import sweep\n")

    with pyfunc_model.model_dependencies(model_file=model_file) as (code_paths, requirements):
        shipped = sorted(p.name for p in Path(code_paths[0]).iterdir())

    # sweep imports models and utils, models imports config, config imports errors: all travel.
    assert shipped == [
        "__init__.py",
        "config.py",
        "errors.py",
        "models.py",
        "store_guard.py",
        "sweep.py",
        "utils.py",
    ]  # and __init__ imports store_guard
    assert {"hyperopt", "xgboost"} <= {r.split("==")[0] for r in requirements}  # sweep needs them
    assert not Path(code_paths[0]).exists()  # the copy lives only as long as the `with` block
