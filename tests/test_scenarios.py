"""Deployment scenarios 2 and 3 against real servers, and the deployment files of deploy/.

The servers run on free ports in a temporary folder of this module's own, so they never meet a
student's running servers nor the scenario notebooks'; the fixtures stop every process they
started, also when a test fails, and check that no port is left listening and that stopping
scenario 3 deletes its folder.
"""

from __future__ import annotations

import json
import os
import socket
import stat

import mlflow
import numpy as np
import pandas as pd
import psutil
import pytest
import requests
import yaml
from conftest import REPO_ROOT, run_week2, skip_without_postgres
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LinearRegression

from week2 import tracking, utils
from week2.machinery import servers


def _log_small_model_run(run_name: str) -> mlflow.models.model.ModelInfo:
    """A real run of the course pipeline on a few hand-made trips: a metric and the logged model."""
    rng = np.random.default_rng(0)
    trips = pd.DataFrame(
        {
            "PULocationID": rng.integers(1, 20, 200),
            "DOLocationID": rng.integers(1, 20, 200),
            "trip_distance": rng.uniform(0.5, 10, 200),
        }
    )
    minutes = 3 * trips["trip_distance"].to_numpy() + rng.normal(0, 1, 200)
    with mlflow.start_run(run_name=run_name, tags=tracking.run_tags(model="linear_regression")):
        pipeline = utils.make_pipeline(LinearRegression()).fit(trips, minutes)
        mlflow.log_metric("val_rmse", utils.rmse(minutes, pipeline.predict(trips)))
        return tracking.log_pipeline(pipeline, trips)


def _gone(pid: int) -> bool:
    """True when no process has `pid` any more (a zombie waiting to be reaped counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --- Scenario 2 ---------------------------------------------------------------------------------


@pytest.mark.servers
def test_team_server_starts_logs_runs_over_http_and_stops_by_pid(server_settings):
    port = server_settings["WEEK2_SERVER_PORT"]
    url = f"http://127.0.0.1:{port}"

    started = run_week2("server")
    assert started.returncode == 0, started.stderr
    assert url in started.stdout and "make server-stop" in started.stdout
    assert requests.get(f"{url}/health", timeout=5).text == "OK"
    pid = json.loads((servers.team_server_folder() / "mlflow.pid").read_text())["pid"]
    assert psutil.pid_exists(pid)
    assert servers.ensure_team_server() is False  # it answers: nothing new is started

    mlflow.set_tracking_uri(url)
    mlflow.set_experiment("scenario-2-test")
    with mlflow.start_run() as run:
        mlflow.log_metric("val_rmse", 6.5)
        mlflow.log_text("hello", "notes/hello.txt")
    stored = MlflowClient().get_run(run.info.run_id)
    assert stored.data.metrics["val_rmse"] == 6.5
    # The artifact went through the server (proxied) into its folder: the client never saw it.
    assert stored.info.artifact_uri.startswith("mlflow-artifacts:/")
    uploaded = list((servers.team_server_folder() / "artifacts").rglob("hello.txt"))
    assert [p.read_text() for p in uploaded] == ["hello"]

    stopped = run_week2("server-stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stdout
    assert _gone(pid)
    assert not (servers.team_server_folder() / "mlflow.pid").exists()
    assert servers.port_is_free(port) and not servers.is_healthy(url)
    assert (servers.team_server_folder() / "mlflow.db").is_file()  # the team's runs stay
    assert "was running" in run_week2("server-stop").stdout  # "No team tracking server was running."


@pytest.mark.servers
def test_a_busy_port_is_refused_with_the_setting_to_change(server_settings):
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the port may be in TIME_WAIT
        squatter.bind(("127.0.0.1", server_settings["WEEK2_SERVER_PORT"]))
        squatter.listen()
        with pytest.raises(servers.ServerError, match="WEEK2_SERVER_PORT"):
            servers.start_team_server()
    assert not (servers.team_server_folder() / "mlflow.pid").exists()


def test_a_stale_pid_file_never_signals_the_program_that_reused_the_pid(tmp_path):
    service = servers.Service("mlflow", tmp_path)
    started = psutil.Process().create_time()
    service.pid_file.write_text(json.dumps({"pid": os.getpid(), "started": started - 3600}))

    assert service.process() is None
    assert service.stop() is False  # and this test process is still alive to say so
    assert not service.pid_file.exists()


# --- Scenario 3 ---------------------------------------------------------------------------------


@pytest.mark.servers
def test_a_failed_scenario3_start_stops_what_it_started_and_deletes_its_folder(server_settings, monkeypatch):
    skip_without_postgres()
    running_before_failure = []

    def mlflow_fails_to_start(folder, keys):
        running_before_failure.extend(s.process() for s in servers._scenario3_services().values())
        raise servers.ServerError("injected: MLflow did not start")

    monkeypatch.setattr(servers, "_start_mlflow_with_auth", mlflow_fails_to_start)
    with pytest.raises(servers.ServerError, match="injected"):
        servers.start_scenario3()

    postgres, s3, mlflow_server = running_before_failure
    assert postgres is not None and s3 is not None and mlflow_server is None  # two really ran
    assert _gone(postgres.pid) and _gone(s3.pid)
    assert servers.port_is_free(server_settings["WEEK2_POSTGRES_PORT"])
    assert servers.port_is_free(server_settings["WEEK2_S3_PORT"])
    assert not servers.scenario3_folder().exists()


@pytest.fixture(scope="module")
def student_run(scenario3):
    """A run with a model, logged by the student in an experiment the student created."""
    mlflow.set_tracking_uri(scenario3)
    with servers.signed_in(servers.STUDENT):
        mlflow.set_experiment("scenario-3-student")
        return _log_small_model_run("student-run")


@pytest.mark.servers
def test_requests_without_valid_credentials_get_401(scenario3):
    search = f"{scenario3}/api/2.0/mlflow/experiments/search?max_results=1"
    student_password = servers.read_secrets()["student_password"]

    assert requests.get(search, timeout=10).status_code == 401
    assert requests.get(search, auth=(servers.STUDENT, "not-the-password"), timeout=10).status_code == 401
    assert requests.get(search, auth=(servers.STUDENT, student_password), timeout=10).status_code == 200


@pytest.mark.servers
def test_student_may_not_move_champion_but_the_admin_may(scenario3, student_run):
    name = "scenario-3-governed"
    client = MlflowClient(scenario3)
    with servers.signed_in(servers.ADMIN):
        version = mlflow.register_model(student_run.model_uri, name).version

    with servers.signed_in(servers.STUDENT), pytest.raises(MlflowException) as refused:
        client.set_registered_model_alias(name, "champion", version)
    assert refused.value.get_http_status_code() == 403
    with servers.signed_in(servers.STUDENT):
        assert client.get_registered_model(name).aliases == {}  # reading is allowed; nothing moved

    with servers.signed_in(servers.ADMIN):
        client.set_registered_model_alias(name, "champion", version)
    with servers.signed_in(servers.STUDENT):
        assert client.get_model_version_by_alias(name, "champion").version == version


@pytest.mark.servers
def test_the_student_manages_the_experiment_they_created(scenario3, student_run):
    with servers.signed_in(servers.STUDENT):
        experiment_id = MlflowClient(scenario3).get_run(student_run.run_id).info.experiment_id
    with servers.signed_in(servers.ADMIN):
        permission = servers.auth_client().get_user_permission(servers.STUDENT, "experiment", experiment_id)
    assert permission.permission == "MANAGE"


@pytest.mark.servers
def test_the_model_artifacts_are_objects_in_the_bucket(scenario3, student_run):
    listing = servers.s3_client().list_objects_v2(Bucket=servers.BUCKET, Prefix="artifacts/")
    keys = [o["Key"] for o in listing.get("Contents", [])]
    model_keys = [k for k in keys if student_run.model_id in k]
    assert any(k.endswith("/MLmodel") for k in model_keys), keys
    assert any(k.endswith("/model.pkl") for k in model_keys), keys


@pytest.mark.servers
def test_the_run_is_rows_in_postgresql(scenario3, student_run):
    connection = servers.postgres_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT status, user_id FROM runs WHERE run_uuid = %s", (student_run.run_id,))
            assert cursor.fetchall() == [("FINISHED", "student")]
            cursor.execute(
                "SELECT key FROM metrics WHERE run_uuid = %s AND key = 'val_rmse'", (student_run.run_id,)
            )
            assert cursor.fetchall() == [("val_rmse",)]
    finally:
        connection.close()


@pytest.mark.servers
def test_secrets_stay_private_and_out_of_command_lines(scenario3):
    path = servers.secrets_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = servers.read_secrets()
    assert all(len(value) >= 12 for value in keys.values())  # MLflow wants 12+ characters for the admin
    folder = str(servers.scenario3_folder())
    command_lines = [
        " ".join(p.info["cmdline"] or [])
        for p in psutil.process_iter(["cmdline"])
        if folder in " ".join(p.info["cmdline"] or []) or "--app-name" in (p.info["cmdline"] or [])
    ]
    assert command_lines, "no scenario-3 process found"
    leaked = [name for name, value in keys.items() if any(value in line for line in command_lines)]
    assert not leaked


# --- Deployment files ----------------------------------------------------------------------------


def test_docker_compose_describes_postgres_minio_and_mlflow_with_auth():
    compose = yaml.safe_load((REPO_ROOT / "deploy" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "minio", "mlflow"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:")
    mlflow_service = services["mlflow"]
    command = " ".join(mlflow_service["command"])
    for option in ("--app-name basic-auth", "--artifacts-destination s3://", "--allowed-hosts"):
        assert option in command
    assert "--backend-store-uri postgresql+psycopg2://" in command
    assert mlflow_service["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert all(port.startswith("127.0.0.1:") for port in mlflow_service["ports"])
    assert (REPO_ROOT / "deploy" / mlflow_service["build"]["dockerfile"]).is_file()


def test_docker_compose_takes_every_secret_from_the_environment():
    compose = yaml.safe_load((REPO_ROOT / "deploy" / "docker-compose.yml").read_text())
    secret_like = ("PASSWORD", "SECRET", "ACCESS_KEY")
    settings = {
        name: value
        for service in compose["services"].values()
        for name, value in service.get("environment", {}).items()
        if any(word in name for word in secret_like)
    }
    assert {"POSTGRES_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"} <= set(
        settings
    )
    written_in = {name: value for name, value in settings.items() if not str(value).startswith("${")}
    assert not written_in, f"secrets written in the file: {written_in}"
    assert "deploy/.env" in (REPO_ROOT / ".gitignore").read_text().splitlines()
