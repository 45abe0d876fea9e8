"""Deployment scenarios 2 and 3 against real servers, and the deployment files of deploy/.

The servers run on free ports in a temporary folder of this module's own, so they never meet a
student's running servers nor the scenario notebooks'; the fixtures stop every process they
started, also when a test fails, and check that no port is left listening and that
`scenario3-stop --delete` deletes scenario 3's folder (a plain stop keeps it: see the restart test).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import stat
import subprocess
import sys
from xml.etree import ElementTree

import boto3
import mlflow
import numpy as np
import pandas as pd
import psutil
import pytest
import requests
import yaml
from botocore.exceptions import ClientError
from conftest import REPO_ROOT, run_week2, skip_without_postgres
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LinearRegression

from week2 import tracking, utils
from week2.machinery import s3_auth_proxy, servers


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


def test_the_s3_auth_proxy_gives_the_secret_for_the_generated_access_key_id_only(tmp_path):
    env = {
        s3_auth_proxy.ACCESS_KEY_ID: "AKGENERATED",
        s3_auth_proxy.SECRET_ACCESS_KEY: "the-generated-secret",
        s3_auth_proxy.ROOT: str(tmp_path),
    }

    def ask(user: str) -> dict:  # as rclone asks it: JSON on stdin, the backend's JSON on stdout
        question = json.dumps({"user": user, "client_ip": "127.0.0.1"})
        program = [sys.executable, "-I", s3_auth_proxy.__file__]
        done = subprocess.run(program, input=question, env=env, capture_output=True, text=True, check=True)
        return json.loads(done.stdout)

    backend = {"type": "local", "_root": str(tmp_path)}
    assert ask("AKGENERATED") == {**backend, "_secret_access_key": "the-generated-secret"}
    for other in ("AKOTHER", "", "akgenerated", "AKGENERATED "):
        assert ask(other) == backend  # no secret: rclone refuses every request signed with that key ID


@pytest.mark.servers
def test_an_s3_server_that_answers_unsigned_requests_otherwise_than_403_is_refused(
    server_settings, tmp_path, monkeypatch
):
    # The real rclone as it ran before its auth proxy (--auth-key) answers 400 UnsupportedAlgorithm:
    # the start, pointed at it, must refuse to go on.
    keys = {"s3_access_key_id": "AKGENERATED", "s3_secret_access_key": "the-generated-secret"}
    (port,) = servers.free_ports(1)
    env = {**os.environ, "RCLONE_CONFIG": os.devnull, "RCLONE_AUTH_KEY": '"AKGENERATED,the-generated-secret"'}
    with_auth_key = servers.Service("rclone-with-auth-key", tmp_path)
    address = f"{servers.HOST}:{port}"
    command = [servers._rclone_program(), "serve", "s3", "--addr", address, f":local:{tmp_path}"]
    with_auth_key.start(command, env=env)
    folder = tmp_path / "scenario3"
    stack = dataclasses.replace(servers.scenario3_stack(), folder=folder)
    try:
        monkeypatch.setattr(servers.Stack, "s3_endpoint", property(lambda stack: f"http://{address}"))
        with pytest.raises(servers.ServerError, match="answered an unsigned request 400, not 403"):
            servers._start_s3(stack, keys)
    finally:
        servers.Service("s3", folder).stop()
        with_auth_key.stop()
    assert servers.port_is_free(port) and servers.port_is_free(server_settings["WEEK2_S3_PORT"])


@pytest.mark.servers
def test_data_without_its_secrets_is_refused_in_one_line_and_kept(server_settings):
    pgdata = servers.scenario3_folder() / "pgdata"
    pgdata.mkdir(parents=True)
    try:
        with pytest.raises(servers.ServerError, match="not its secrets.json.*DELETE=1"):
            servers.start_scenario3()
        assert pgdata.is_dir()  # not this start's to delete

        servers.secrets_path().write_text('{"admin_password": "cut short')
        with pytest.raises(servers.ServerError, match="is damaged"):
            servers.start_scenario3()
        assert pgdata.is_dir() and servers.secrets_path().is_file()
    finally:
        servers.stop_scenario3(delete=True)
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


def permission_notebook_08_names_for_moving_an_alias() -> str:
    """The level notebook 08's governance section says moving `champion` needs ("needs the permission X")."""
    notebook = json.loads((REPO_ROOT / "notebooks" / "08-scenario-3-remote-server.ipynb").read_text())
    text = " ".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    (level,) = re.findall(r"moving it needs the permission (\w+)", " ".join(text.split()))
    return level


@pytest.mark.servers
def test_the_permission_notebook_08_names_lets_the_student_move_an_alias_and_read_does_not(
    scenario3, student_run
):
    name, level = "scenario-3-delegated", permission_notebook_08_names_for_moving_an_alias()
    client = MlflowClient(scenario3)
    with servers.signed_in(servers.ADMIN):
        version = mlflow.register_model(student_run.model_uri, name).version
        servers.auth_client().grant_user_permission(servers.STUDENT, "registered_model", name, level)
    with servers.signed_in(servers.STUDENT):
        client.set_registered_model_alias(name, "champion", version)
        assert client.get_model_version_by_alias(name, "champion").version == version

    with servers.signed_in(servers.ADMIN):
        servers.auth_client().revoke_user_permission(servers.STUDENT, "registered_model", name)
    with servers.signed_in(servers.STUDENT), pytest.raises(MlflowException) as refused:
        client.set_registered_model_alias(name, "champion", version)
    assert refused.value.get_http_status_code() == 403  # back to the server's default, READ


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
    assert any(k.endswith("/model.skops") for k in model_keys), keys  # skops, the safe format


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


def _s3_client_with(access_key_id: str, secret_access_key: str):
    return boto3.client(
        "s3",
        endpoint_url=servers.s3_endpoint(),
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        region_name=servers.REGION,
    )


def _s3_error_code(answer: requests.Response) -> str | None:
    """The <Code> of an S3 error answer, None if it has none."""
    try:
        return ElementTree.fromstring(answer.content).findtext("Code")
    except ElementTree.ParseError:
        return None


@pytest.mark.servers
def test_the_s3_endpoint_refuses_anonymous_requests_and_wrong_keys(scenario3):
    bucket, keys = servers.BUCKET, servers.read_secrets()
    servers.s3_client().put_object(Bucket=bucket, Key="probe/kept.txt", Body=b"kept")
    objects = f"{servers.s3_endpoint()}/{bucket}"

    anonymous = [
        requests.get(f"{objects}?list-type=2", timeout=10),
        requests.get(f"{objects}/probe/kept.txt", timeout=10),
        requests.put(f"{objects}/probe/anonymous.txt", data=b"written", timeout=10),
        requests.delete(f"{objects}/probe/kept.txt", timeout=10),
    ]
    # As AWS answers an unsigned request to a private bucket: 403 AccessDenied, nothing served.
    assert [(a.status_code, _s3_error_code(a)) for a in anonymous] == [(403, "AccessDenied")] * 4
    assert not any(b"kept" in answer.content or b"probe/" in answer.content for answer in anonymous)

    wrong_secret = _s3_client_with(keys["s3_access_key_id"], "not-the-secret-access-key-at-all")
    unknown_key = _s3_client_with("AKNOTTHEGENERATEDKEY", keys["s3_secret_access_key"])
    # AWS would name the cause (SignatureDoesNotMatch, InvalidAccessKeyId); rclone behind an auth
    # proxy, which is what answers unsigned requests 403, gives the one answer S3 gives when denied.
    for client, code in ((wrong_secret, "AccessDenied"), (unknown_key, "AccessDenied")):
        for attempt in (
            lambda c: c.list_objects_v2(Bucket=bucket),
            lambda c: c.get_object(Bucket=bucket, Key="probe/kept.txt"),
            lambda c: c.put_object(Bucket=bucket, Key="probe/wrong-key.txt", Body=b"written"),
            lambda c: c.delete_object(Bucket=bucket, Key="probe/kept.txt"),
        ):
            with pytest.raises(ClientError) as refused:
                attempt(client)
            answer = refused.value.response
            assert (answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]["Code"]) == (403, code)

    # With the generated keys: the object is whole, and nothing the refused requests sent was stored.
    listing = servers.s3_client().list_objects_v2(Bucket=bucket, Prefix="probe/")
    assert [o["Key"] for o in listing["Contents"]] == ["probe/kept.txt"]
    assert servers.s3_client().get_object(Bucket=bucket, Key="probe/kept.txt")["Body"].read() == b"kept"


@pytest.mark.servers
def test_logs_secrets_and_data_are_readable_by_their_owner_only(scenario3, student_run):
    folder = servers.scenario3_folder()
    # When we are root, PostgreSQL runs as its own account and keeps its data out of this folder.
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("secrets.json", "basic_auth.ini", "mlflow.log", "s3.log", "postgres.log", "mlflow.pid"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((folder / "pgdata").stat().st_mode) == 0o700  # here, or where its link points
    # A link's own mode means nothing (always 777); what it points to is checked above.
    modes = {path: stat.S_IMODE(path.lstat().st_mode) for path in folder.rglob("*") if not path.is_symlink()}
    assert any(path.name == "MLmodel" for path in modes)  # the bucket's objects are among them
    exposed = {str(path): oct(mode) for path, mode in modes.items() if mode & 0o077}
    assert not exposed


@pytest.fixture(scope="module")
def admin_run(scenario3):
    """A finished run with a tag and a param in an experiment the admin created."""
    client = MlflowClient(scenario3)
    with servers.signed_in(servers.ADMIN):
        experiment_id = client.create_experiment("scenario-3-admin")
        run = client.create_run(experiment_id, tags={"owner": "admin"})
        client.log_param(run.info.run_id, "alpha", "0.1")
        client.set_terminated(run.info.run_id)
    return run


STUDENT_CHANGES = {
    "delete_experiment": lambda client, run: client.delete_experiment(run.info.experiment_id),
    "rename_experiment": lambda client, run: client.rename_experiment(run.info.experiment_id, "taken"),
    "set_tag": lambda client, run: client.set_tag(run.info.run_id, "owner", "student"),
    "log_param": lambda client, run: client.log_param(run.info.run_id, "beta", "1"),
    "delete_run": lambda client, run: client.delete_run(run.info.run_id),
}


@pytest.mark.servers
@pytest.mark.parametrize("change", STUDENT_CHANGES)
def test_the_student_may_not_change_the_admins_experiment_or_runs(scenario3, admin_run, change):
    client = MlflowClient(scenario3)
    with servers.signed_in(servers.STUDENT):
        assert client.get_run(admin_run.info.run_id).data.tags["owner"] == "admin"  # reading is allowed
        with pytest.raises(MlflowException) as refused:
            STUDENT_CHANGES[change](client, admin_run)
    assert refused.value.get_http_status_code() == 403

    with servers.signed_in(servers.ADMIN):
        experiment = client.get_experiment(admin_run.info.experiment_id)
        run = client.get_run(admin_run.info.run_id)
    assert (experiment.name, experiment.lifecycle_stage) == ("scenario-3-admin", "active")
    assert run.info.lifecycle_stage == "active"
    assert (run.data.tags["owner"], run.data.params) == ("admin", {"alpha": "0.1"})


def _bucket_objects() -> dict[str, str]:
    listing = servers.s3_client().list_objects_v2(Bucket=servers.BUCKET, Prefix="artifacts/")
    return {o["Key"]: o["ETag"] for o in listing.get("Contents", [])}


@pytest.mark.servers
def test_restarts_keep_runs_artifacts_and_secrets_even_after_a_failed_one(
    scenario3, server_settings, student_run, monkeypatch
):
    secrets_before, objects_before = servers.secrets_path().read_text(), _bucket_objects()
    with servers.signed_in(servers.STUDENT):
        metrics_before = MlflowClient(scenario3).get_run(student_run.run_id).data.metrics
    assert any(student_run.model_id in key for key in objects_before)

    stopped = run_week2("scenario3-stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "stay in" in stopped.stdout and "DELETE=1" in stopped.stdout
    assert all(servers.port_is_free(port) for port in server_settings.values())

    # A start that fails half-way stops what it started and deletes nothing of the earlier data.
    def mlflow_fails_to_start(folder, keys):
        raise servers.ServerError("injected: MLflow did not start")

    monkeypatch.setattr(servers, "_start_mlflow_with_auth", mlflow_fails_to_start)
    with pytest.raises(servers.ServerError, match="injected"):
        servers.start_scenario3()
    monkeypatch.undo()
    assert all(servers.port_is_free(port) for port in server_settings.values())
    assert servers.secrets_path().read_text() == secrets_before

    started = run_week2("scenario3")
    assert started.returncode == 0, started.stderr
    assert servers.secrets_path().read_text() == secrets_before
    assert _bucket_objects() == objects_before
    with servers.signed_in(servers.STUDENT):  # the same password still signs the student in
        run = MlflowClient(scenario3).get_run(student_run.run_id)
        model = mlflow.pyfunc.load_model(student_run.model_uri)  # read back from the bucket
    assert (run.info.status, run.data.metrics) == ("FINISHED", metrics_before)
    trips = pd.DataFrame({"PULocationID": [1, 2], "DOLocationID": [3, 4], "trip_distance": [1.0, 8.0]})
    assert np.all(np.isfinite(model.predict(trips)))


def test_make_scenario3_stop_deletes_only_when_asked_with_delete_1():
    def make(*args: str) -> subprocess.CompletedProcess:
        # -o: take the venv as up to date, so that make never reinstalls it here.
        command = ["make", "-s", "-o", ".venv/.installed", "scenario3-stop", *args]
        return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)

    assert make("-n").stdout.split()[-1] == "scenario3-stop"
    assert make("-n", "DELETE=1").stdout.split()[-2:] == ["scenario3-stop", "--delete"]
    refused = make("DELETE=yes")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines()[0].startswith("error: DELETE=yes: write DELETE=1")


def test_scenario3_stop_takes_only_delete():
    refused = run_week2("scenario3-stop", "--remove")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "--delete" in refused.stderr


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
