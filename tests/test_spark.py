"""The sweep's trials in Spark workers (`WEEK2_SWEEP_BACKEND=spark`), logged to a team server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import mlflow
import pytest
from conftest import REPO_ROOT

from week2 import config, data, spark, sweep, tracking
from week2.machinery import servers

pytestmark = pytest.mark.spark

TRIALS = 4


@pytest.fixture(scope="module")
def setup(sample_xy):
    (X_train, y_train), (X_val, y_val), _ = sample_xy
    return sweep.build_setup(X_train, y_train, X_val, y_val, seed=config.seed())


def test_workers_are_never_pointed_at_a_sqlite_file(store, setup):
    tracking.setup_mlflow("spark-on-sqlite")
    with mlflow.start_run() as parent, pytest.raises(config.ConfigError) as error:
        sweep.run_sweep(setup, TRIALS, seed=1, parent=mlflow.get_run(parent.info.run_id), backend="spark")
    message = str(error.value)
    assert "make server" in message and "MLFLOW_TRACKING_URI" in message and "\n" not in message


@pytest.mark.servers
def test_a_spark_sweep_logs_one_child_run_per_trial_to_the_team_server(server_settings, setup, monkeypatch):
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17 (apt install openjdk-17-jre-headless); .ci/run installs it")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", servers.start_team_server())
    monkeypatch.setenv("WEEK2_SWEEP_PARALLELISM", "2")
    tracking.setup_mlflow("spark-sweep")
    session = spark.session()
    try:
        with mlflow.start_run(run_name="spark-sweep") as parent_run:
            parent = mlflow.get_run(parent_run.info.run_id)
            trials = sweep.run_sweep(setup, TRIALS, seed=1, parent=parent, progress=False, backend="spark")
        assert session.sparkContext.uiWebUrl.startswith("http://")
    finally:
        session.stop()

    children = sweep.trial_runs(parent)
    assert len(children) == TRIALS == len(trials.trials)
    for child in children:
        assert set(child.data.params) == set(sweep.SEARCH_SPACE)
        assert set(sweep.TRIAL_METRICS) <= set(child.data.metrics)
    best = children[0]  # trial_runs orders by val_rmse: the best run is found by search
    assert best.data.metrics["val_rmse"] == pytest.approx(min(trials.losses()))
    assert sweep.params_of(best)["max_depth"] == int(best.data.params["max_depth"])


@pytest.mark.servers
def test_homework_hpo_runs_its_trials_on_spark_against_the_team_server(server_settings, tmp_path):
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17 (apt install openjdk-17-jre-headless); .ci/run installs it")
    months = config.months()
    for month in (months.train, months.val, months.test):
        shutil.copy(data.sample_month_path(month), tmp_path / data.month_filename(month))
    url = servers.start_team_server()
    solution = REPO_ROOT / "homework" / "solution"  # the starters leave the MLflow code to the student
    env = {**os.environ, "MLFLOW_TRACKING_URI": url}

    def script(name: str, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, str(solution / name), *args],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    script(
        "preprocess_data.py", "--raw_data_path", str(tmp_path), "--dest_path", str(tmp_path / "output"),
        "--train_month", months.train, "--val_month", months.val, "--test_month", months.test,
    )  # fmt: skip
    script(
        "hpo.py", "--data_path", str(tmp_path / "output"), "--num_trials", "3", "--backend", "spark",
    )  # fmt: skip

    client = mlflow.MlflowClient(url)
    experiment = client.get_experiment_by_name("random-forest-hyperopt")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3
    assert all({"max_depth", "n_estimators"} <= set(r.data.params) and "rmse" in r.data.metrics for r in runs)
