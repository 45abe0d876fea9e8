"""Serving the champion over HTTP, batch scoring, and the custom model in a fresh environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from conftest import log_custom_model, log_model_run
from mlflow import MlflowClient
from sklearn.linear_model import LinearRegression

from week2 import __main__ as cli
from week2 import config, data, files, registry, utils
from week2.machinery import processes, serving

FRESH_ENV_TIMEOUT_SECONDS = 600  # a cold uv cache downloads MLflow and its dependencies once


@pytest.fixture(scope="module")
def champion(private_store, sample_xy):
    """A linear model registered under the configured name, sanity-checked and promoted."""
    run, pipeline = log_model_run("01-test-serving", LinearRegression(), sample_xy, "linear_regression")
    client = MlflowClient()
    name = config.model_name()
    version = registry.register_candidate(client, run, name, threshold=run.data.metrics["val_rmse"])
    registry.sanity_check(client, name, version.version, sample_xy[1][0].head(5))
    registry.promote(client, name, version.version, reason="the test's champion")
    return version, pipeline


@pytest.mark.servers
def test_served_champion_answers_good_requests_and_rejects_bad_ones(champion, sample_xy):
    version, pipeline = champion
    trips = sample_xy[2][0].head(4)

    with serving.serve(serving.alias_uri()) as server:
        good = serving.invoke(server, serving.trips_payload(trips))
        missing = serving.invoke(server, serving.trips_payload(trips.drop(columns="DOLocationID")))
        wrong_type = serving.invoke(server, serving.trips_payload(trips.assign(trip_distance="far")))

    assert good.status_code == 200
    np.testing.assert_allclose(good.json()["predictions"], pipeline.predict(trips))
    assert missing.status_code == 400
    assert "missing inputs ['DOLocationID']" in missing.json()["message"]
    assert wrong_type.status_code == 400
    assert "trip_distance" in wrong_type.json()["message"]
    assert server.process.poll() is not None, "the server outlived its block"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/ping", timeout=5)
    assert not server.log_path.exists()


@pytest.mark.servers
def test_a_server_that_cannot_start_fails_with_its_log_and_is_cleaned_up(private_store):
    server = serving.start_server("models:/no-such-model@champion")
    try:
        with pytest.raises(processes.ServerError, match="no-such-model"):
            serving.wait_until_ready(server, timeout=120)
    finally:
        serving.stop_server(server)
    assert server.process.poll() is not None


def test_a_busy_port_is_refused_before_anything_starts():
    with socket.socket() as busy:
        busy.bind((serving.HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(processes.ServerError, match=f"Port {port} .* in use.*WEEK2_SERVE_PORT"):
            serving.start_server("models:/anything@champion", port=port)


def test_batch_scoring_writes_the_champions_predictions_to_parquet(champion, tmp_path, capsys):
    version, pipeline = champion
    month = config.test_month()
    output = tmp_path / "scored.parquet"

    assert cli.main(["score", month, "--output", str(output)]) == 0

    scored = pd.read_parquet(output)
    _, (path,) = data.resolve_months([month])
    X_test, y_test = utils.split_xy(utils.read_dataframe(path))
    assert len(scored) == len(X_test)
    np.testing.assert_allclose(scored["predicted_duration"], pipeline.predict(X_test))
    np.testing.assert_allclose(scored["duration"], y_test)
    assert set(scored["model_version"].astype(str)) == {str(version.version)}
    assert f"RMSE {utils.rmse(y_test, scored['predicted_duration']):.3f}" in capsys.readouterr().out
    assert not list(tmp_path.glob(f"*{files.PARTIAL_SUFFIX}"))  # pathlib's * matches hidden files too


def test_batch_scoring_without_the_alias_says_what_to_run(champion, tmp_path, capsys):
    assert cli.main(["score", config.test_month(), "--alias", "no-such-alias"]) == 2
    error = capsys.readouterr().err
    assert "'no-such-alias'" in error and "04-model-registry" in error
    assert cli.main(["score", "2021-13"]) == 2
    assert "YYYY-MM" in capsys.readouterr().err


@pytest.fixture(scope="module")
def custom_model(champion, sample_xy, tmp_path_factory):
    """The custom pyfunc around the champion's pipeline, logged as notebook 05 logs it, clipping at 5-20."""
    _, pipeline = champion
    info = log_custom_model(pipeline, tmp_path_factory.mktemp("components"), sample_xy[0][0])
    return info, pipeline


def test_custom_model_clips_and_ships_only_the_code_it_imports(custom_model, sample_xy):
    info, pipeline = custom_model
    trips = sample_xy[1][0].head(50)

    answer = mlflow.pyfunc.load_model(info.model_uri).predict(trips)

    np.testing.assert_allclose(answer, np.clip(pipeline.predict(trips), 5.0, 20.0))
    requirements = Path(mlflow.pyfunc.get_model_dependencies(info.model_uri)).read_text().split()
    assert f"mlflow=={mlflow.__version__}" in requirements
    assert not any(r.split("==")[0] in ("week2", "hyperopt", "pyspark", "psutil") for r in requirements)
    model_dir = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    shipped = {p.name for p in (model_dir / "code" / "week2").glob("*.py")}
    assert shipped == {"__init__.py", "store_guard.py"}, shipped  # the pipeline calls no course code


@pytest.mark.slow
def test_custom_model_predicts_in_a_fresh_env_built_from_its_requirements(custom_model, sample_xy, tmp_path):
    info, pipeline = custom_model
    trips = sample_xy[1][0].head(20)
    request = tmp_path / "trips.json"
    request.write_text(json.dumps(serving.trips_payload(trips)))
    answer = tmp_path / "answer.json"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": config.tracking_uri(),
        # MLflow calls `uv` by name; this machine's Python 3.11 must be used, never a download.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "UV_PYTHON_DOWNLOADS": "never",
    }
    env.pop("PYTHONPATH", None)  # nothing of this checkout may leak into the fresh environment
    command = [
        sys.executable, "-m", "mlflow", "models", "predict",
        "--model-uri", info.model_uri, "--input-path", str(request), "--output-path", str(answer),
        "--content-type", "json", "--env-manager", "uv",
    ]  # fmt: skip

    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=FRESH_ENV_TIMEOUT_SECONDS
    )

    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "Creating a new environment" in log
    predictions = json.loads(answer.read_text())["predictions"]
    np.testing.assert_allclose(predictions, np.clip(pipeline.predict(trips), 5.0, 20.0))


@pytest.mark.servers
def test_make_serve_exits_non_zero_and_keeps_the_log_when_the_model_server_dies(champion):
    (port,) = processes.free_ports(1)
    env = {**os.environ, "WEEK2_SERVE_PORT": str(port)}
    serve = subprocess.Popen(
        [sys.executable, "-m", "week2", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "answers on" in serve.stdout.readline()  # printed once /ping answers
        service = serving.model_service(port)
        model_server = service.recorded()
        assert model_server is not None
        model_server.kill()
        _, err = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()

    assert serve.returncode == 2
    assert "was killed by signal 9" in err and str(service.log_file) in err
    assert service.log_file.stat().st_size > 0  # the log that says what happened is still there
