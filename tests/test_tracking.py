"""One tracking store from any working directory; tags, best-run search and model logging."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import threading
import time
import warnings
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from week2 import config, tracking, utils


def test_setup_mlflow_gives_one_store_whatever_the_working_directory(store, monkeypatch):
    ids = []
    for folder in (store / "a", store / "b" / "c"):
        folder.mkdir(parents=True)
        monkeypatch.chdir(folder)
        ids.append(tracking.setup_mlflow("same-experiment"))
    assert ids[0] == ids[1]
    experiment = mlflow.get_experiment(ids[0])
    assert experiment.artifact_location == (store / "mlartifacts" / "same-experiment").as_uri()
    assert not list((store / "a").iterdir()) and not list((store / "b" / "c").iterdir())


def test_prepare_experiment_does_the_housekeeping_before_notebook_01s_own_calls(store, monkeypatch):
    folder = store / "notebooks"
    folder.mkdir()
    monkeypatch.chdir(folder)  # where nbmake and `make lab` run notebook 01
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        experiment_id = tracking.prepare_experiment("lesson")
        for note in (*tracking.MLFLOW_NOTES, "Any other warning"):
            warnings.warn_explicit(f"{note} …", UserWarning, "utils.py", 1, module="mlflow.types.utils")
    assert [str(warning.message) for warning in shown] == ["Any other warning …"]

    assert mlflow.set_experiment("lesson").experiment_id == experiment_id  # the notebook's own call
    experiment = mlflow.get_experiment(experiment_id)
    assert experiment.artifact_location == (store / "mlartifacts" / "lesson").as_uri()
    assert experiment.tags[tracking.EXPERIMENT_KIND_TAG] == tracking.EXPERIMENT_KIND
    assert not list(folder.iterdir())


def test_git_tags_name_the_checkout_commit_and_branch():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=config.REPO_ROOT, capture_output=True, text=True)
    expected = head.stdout.strip() if head.returncode == 0 else tracking.UNKNOWN_GIT  # no commit yet
    tags = tracking.git_tags()
    assert tags["git_commit"] == expected
    assert tags["git_branch"]


def test_git_tags_fall_back_clearly_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "REPO_ROOT", tmp_path)
    assert tracking.git_tags() == {"git_commit": tracking.UNKNOWN_GIT, "git_branch": tracking.UNKNOWN_GIT}


def test_run_tags_carry_developer_and_extras(monkeypatch):
    monkeypatch.setenv("WEEK2_DEVELOPER", "ada")
    tags = tracking.run_tags(model="ridge", train_month="2021-01")
    assert tags["developer"] == "ada" and tags["model"] == "ridge" and "git_commit" in tags


def test_best_run_is_found_by_metric_across_experiments(store):
    for experiment, scores in {"exp-a": [7.5, 6.9], "exp-b": [7.1]}.items():
        tracking.setup_mlflow(experiment)
        for score in scores:
            with mlflow.start_run(tags={"score": str(score)}):
                mlflow.log_metric("val_rmse", score)
        with mlflow.start_run():  # a run without the metric is never the best
            mlflow.log_param("note", "no metric")

    best = tracking.best_run(["exp-a", "exp-b"])
    assert best.data.metrics["val_rmse"] == 6.9
    assert best.data.tags["score"] == "6.9"
    with pytest.raises(tracking.NoRunError, match="run the notebook"):
        tracking.best_run("exp-a", metric="test_rmse")


def test_logged_pipeline_predicts_from_raw_trips_and_is_self_contained(store):
    X = pd.DataFrame(
        {"PULocationID": [1, 2, 1, 5], "DOLocationID": [3, 3, 4, 5], "trip_distance": [1.0, 2, 3, 4]}
    )
    y = [5.0, 10.0, 15.0, 20.0]
    pipeline = utils.make_pipeline(LinearRegression()).fit(X, y)
    tracking.setup_mlflow("models")
    with mlflow.start_run():
        info = tracking.log_pipeline(pipeline, X)

    assert [c.name for c in info.signature.inputs] == utils.RAW_COLUMNS
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    assert loaded.predict(X) == pytest.approx(pipeline.predict(X))

    model_dir = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(store / "dl")))
    requirements = (model_dir / "requirements.txt").read_text()
    assert "mlflow==" in requirements and "scikit-learn==" in requirements
    assert "week2" not in requirements  # shipped as code, not a package no index has
    assert (model_dir / "code" / "week2" / "utils.py").is_file()


def test_the_course_experiments_are_tagged_as_classic_ml(store):
    experiment_id = tracking.setup_mlflow("tagged")
    assert (
        mlflow.get_experiment(experiment_id).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    )

    untagged = mlflow.create_experiment("made-by-a-notebook-call")  # e.g. mlflow.set_experiment
    assert tracking.setup_mlflow("made-by-a-notebook-call") == untagged
    assert mlflow.get_experiment(untagged).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_setup_mlflow_switches_telemetry_off_and_bounds_http_retries(store, monkeypatch):
    for name in config.MLFLOW_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "90")  # a user's own choice wins
    tracking.setup_mlflow("telemetry")
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "90"


def test_a_store_whose_folder_is_missing_is_refused_and_not_created(tmp_path, monkeypatch):
    missing = tmp_path / "no" / "such" / "folder"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing / 'mlflow.db'}")
    with pytest.raises(config.ConfigError, match=f"the folder {missing} does not exist; create it"):
        tracking.setup_mlflow("anything")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_no_sqlite_store_is_refused_and_kept(tmp_path, monkeypatch):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes, not a database")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{notes}")
    with pytest.raises(config.ConfigError, match="is not a SQLite database"):
        tracking.setup_mlflow("anything")
    assert notes.read_text() == "my notes, not a database"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_dead_server_is_named_within_seconds(monkeypatch):
    from week2.machinery import servers

    url = f"http://127.0.0.1:{servers.free_ports(1)[0]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    started = time.monotonic()
    with pytest.raises(config.ConfigError) as error:
        tracking.setup_mlflow("anything")
    assert time.monotonic() - started < 30
    message = str(error.value)
    assert f"MLFLOW_TRACKING_URI={url} does not answer" in message and "make server" in message


def test_a_server_that_accepts_but_never_answers_is_named_within_30_seconds(monkeypatch):
    with socket.socket() as hung:  # listens, so connections succeed, but never reads or writes
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        started = time.monotonic()
        with pytest.raises(config.ConfigError, match=f"{url} does not answer \\(ReadTimeout\\)"):
            tracking.setup_mlflow("anything")
        assert time.monotonic() - started < 30


def test_something_else_on_the_port_is_not_taken_for_a_tracking_server(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        with pytest.raises(
            config.ConfigError, match="answers /health with HTTP 404, so it is no MLflow server"
        ):
            tracking.setup_mlflow("anything")
    finally:
        server.shutdown()
        server.server_close()


def test_the_classic_view_address():
    assert tracking.classic_view("http://127.0.0.1:5001/") == (
        "http://127.0.0.1:5001/#/experiments?workflowType=machine_learning"
    )


def test_log_pipeline_names_its_requirements_instead_of_inferring_them(store, monkeypatch):
    """No inference (a Python process per model, and psutil listed because joblib imports it)."""
    from xgboost import XGBRegressor

    def infer(*args, **kwargs):
        raise AssertionError("log_pipeline asked MLflow to infer requirements")

    monkeypatch.setattr(mlflow.models, "infer_pip_requirements", infer)
    X = pd.DataFrame({"PULocationID": [1, 2, 1], "DOLocationID": [3, 3, 4], "trip_distance": [1.0, 2, 3]})
    y = [5.0, 10.0, 15.0]
    tracking.setup_mlflow("requirements")
    for estimator, extra in ((LinearRegression(), set()), (XGBRegressor(n_estimators=2), {"xgboost"})):
        pipeline = utils.make_pipeline(estimator).fit(X, y)
        with mlflow.start_run():
            info = tracking.log_pipeline(pipeline, X)
        listed = Path(mlflow.pyfunc.get_model_dependencies(info.model_uri)).read_text().split()
        names = {line.split("==")[0] for line in listed}
        assert {"mlflow", "scikit-learn", "skops"} | extra <= names
        assert not names & {"psutil", "hyperopt", "pyspark", "week2"}
        loaded = mlflow.pyfunc.load_model(info.model_uri).predict(X)
        assert list(loaded) == pytest.approx(list(pipeline.predict(X)))
