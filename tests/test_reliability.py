"""Reliability: many clients at once, a server killed mid-sweep, two writers on one SQLite file, bad input.

Every server here is on 127.0.0.1 at a free port (the `server_settings` fixture), every load is
bounded in count, and every process is stopped at the end. Throughput figures are for
`make bench`; these tests only check that nothing is lost or damaged.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from hyperopt import Trials, fmin, hp, tpe
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from week2 import config, data, tracking, utils
from week2.machinery import loadtest, servers, serving

# Eight writers at once is the point; how many runs each logs only makes the test longer
# (make bench measures throughput with bigger loads).
LOAD = loadtest.Load(clients=8, runs=6, steps=20)


@pytest.fixture(scope="module")
def team_server(server_settings):
    url = servers.start_team_server()
    yield url
    servers.stop_team_server()


def _assert_load_is_whole(url: str, experiment_id: str, load: loadtest.Load) -> None:
    run_ids, _ = loadtest.run_clients(url, experiment_id, load)
    assert len(set(run_ids)) == load.total_runs
    stored = MlflowClient(url).search_runs([experiment_id], max_results=load.total_runs + 10)
    assert len(stored) == load.total_runs
    assert loadtest.check_runs(url, run_ids, load.steps) == []


@pytest.mark.servers
def test_eight_clients_at_once_lose_nothing_on_the_team_server(team_server):
    experiment_id = MlflowClient(team_server).create_experiment("load-team-server")
    _assert_load_is_whole(team_server, experiment_id, LOAD)


@pytest.mark.servers
def test_eight_clients_at_once_lose_nothing_on_scenario3(scenario3):
    with servers.signed_in(servers.STUDENT):  # the spawned clients inherit the student's credentials
        experiment_id = MlflowClient(scenario3).create_experiment("load-scenario-3")
        _assert_load_is_whole(scenario3, experiment_id, LOAD)


# --- a server killed in the middle of a sweep ---------------------------------------------------

SWEEP_TRIALS = 12
KILL_AFTER_TRIALS = 4


def _sweep(url: str, parent_id: str, experiment_id: str, logged: list[str]) -> None:
    """A small hyperopt sweep whose every trial is a child run of `parent_id` (as notebook 03 logs)."""
    client = MlflowClient(url)

    def objective(params: dict) -> float:
        loss = (params["x"] - 1.0) ** 2
        child = client.create_run(experiment_id, tags={MLFLOW_PARENT_RUN_ID: parent_id})
        client.log_batch(
            child.info.run_id,
            metrics=[Metric("val_rmse", loss, int(time.time() * 1000), 0)],
            params=[Param("x", repr(params["x"])), Param("trial", str(len(logged)))],
        )
        client.set_terminated(child.info.run_id)
        logged.append(child.info.run_id)
        time.sleep(0.3)  # a trial takes a moment, so the kill lands in the middle of the sweep
        return loss

    fmin(
        objective,
        {"x": hp.uniform("x", -5, 5)},
        algo=tpe.suggest,
        max_evals=SWEEP_TRIALS,
        trials=Trials(),
        rstate=np.random.default_rng(0),
        show_progressbar=False,
    )


@pytest.mark.servers
def test_a_server_killed_mid_sweep_restarts_and_the_sweep_loses_nothing(team_server, monkeypatch):
    # The client's own retries (MLflow backs off and retries every request) carry the sweep over
    # the restart; a smaller backoff keeps the test short.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    client = MlflowClient(team_server)
    experiment_id = client.create_experiment("sweep-under-fault")
    parent = client.create_run(experiment_id, run_name="sweep")
    logged: list[str] = []
    failures: list[BaseException] = []

    def sweep() -> None:
        try:
            _sweep(team_server, parent.info.run_id, experiment_id, logged)
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    worker = threading.Thread(target=sweep)
    worker.start()
    deadline = time.monotonic() + 120
    while len(logged) < KILL_AFTER_TRIALS and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    server = servers._team_service().process()
    assert server is not None and len(logged) >= KILL_AFTER_TRIALS
    before_kill = {run_id: client.get_run(run_id).data.metrics["val_rmse"] for run_id in list(logged)}
    servers.stop_process_tree(server, signal.SIGKILL)
    assert not servers.is_healthy(team_server)
    servers.start_team_server()
    worker.join(timeout=300)

    assert not worker.is_alive() and failures == []
    client.set_terminated(parent.info.run_id)
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'"
    )
    # A request whose answer the kill swallowed is sent again, so a trial may leave one orphan
    # run behind; every trial the sweep counted is there, finished, with its metric.
    assert {r.info.run_id for r in children} >= set(logged) and len(logged) == SWEEP_TRIALS
    for run_id, metric in before_kill.items():
        assert client.get_run(run_id).data.metrics["val_rmse"] == metric
    with sqlite3.connect(servers.team_server_folder() / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


# --- two notebooks, one SQLite file, no server ----------------------------------------------------


def test_two_writers_on_one_sqlite_file_without_a_server(tmp_path):
    uri = config.store_settings(tmp_path)["MLFLOW_TRACKING_URI"]
    experiment_id = MlflowClient(uri).create_experiment(
        "two-notebooks", artifact_location=(tmp_path / "mlartifacts").as_uri()
    )
    _assert_load_is_whole(uri, experiment_id, loadtest.Load(clients=2, runs=10, steps=50))
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


# --- bad input: one line that says what to do, and nothing damaged --------------------------------


@pytest.fixture
def sample_file(tmp_path):
    path = tmp_path / "green_tripdata_2021-01.parquet"
    data.synthetic_month("2021-01", rows=500, seed=1).to_parquet(path)
    return path


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message, message
    return message


def test_a_truncated_parquet_is_named_with_what_to_do_and_left_alone(sample_file):
    whole = sample_file.read_bytes()
    sample_file.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(data.DataError) as error:
        utils.read_dataframe(sample_file)
    message = _one_line(error.value)
    assert str(sample_file) in message and "make data" in message
    assert sample_file.read_bytes() == whole[: len(whole) // 2]


def test_a_parquet_without_the_trip_columns_is_named_with_what_to_do(sample_file):
    trips = pd.read_parquet(sample_file)
    trips.drop(columns=["lpep_dropoff_datetime", "trip_distance"]).to_parquet(sample_file)
    with pytest.raises(data.DataError) as error:
        utils.read_dataframe(sample_file)
    message = _one_line(error.value)
    assert "lpep_dropoff_datetime, trip_distance" in message and "green" in message


def test_an_unknown_alias_says_which_notebook_to_run(private_store):
    tracking.setup_mlflow("bad-input")
    with pytest.raises(serving.ServingError) as error:
        serving.resolve_alias("no-such-alias")
    message = _one_line(error.value)
    assert "no-such-alias" in message and "04-model-registry" in message


@pytest.mark.servers
def test_wrong_credentials_on_scenario3_say_which_settings_to_fix(scenario3, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", scenario3)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", servers.STUDENT)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    with pytest.raises(config.ConfigError) as error:
        tracking.setup_mlflow("wrong-credentials")
    message = _one_line(error.value)
    assert "MLFLOW_TRACKING_PASSWORD" in message and "refused" in message
    with servers.signed_in(servers.ADMIN):
        assert mlflow.get_experiment_by_name("wrong-credentials") is None  # nothing was created
