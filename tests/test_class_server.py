"""The class tracking server, tried the way a student would attack it.

One class server for the module (`make class-server` as a command, in a private folder and on free
ports), two students enrolled from a roster; alice logs an experiment, a run with a metric, a param,
a dataset input and an artifact, a logged model and a registered model version; bob, with his own
valid account, tries every way of reaching them: MLflow's REST API, the UI's AJAX routes, GraphQL,
the artifact proxy and the client's search_* calls, from his workspace and from alice's. Each read
is refused (401/403/404) or answers without anything of alice's; each change is refused, and
alice's things are found unchanged at the end.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import REPO_ROOT, run_week2, skip_without_postgres
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput
from mlflow.exceptions import MlflowException

from week2.machinery import class_server, servers

STUDENTS = ("alice", "bob")


@pytest.fixture(scope="module")
def class_server_url(server_settings, tmp_path_factory):
    """The class server started as `make class-server` does, alice and bob enrolled; deleted afterwards."""
    skip_without_postgres()
    build = tmp_path_factory.mktemp("build")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WEEK2_BUILD_DIR", str(build))
        patch.setenv("WEEK2_CLASS_WORKERS", "1")  # lean: one worker serves two students
        # A stray setting in the instructor's shell that would switch GraphQL's authorization off.
        patch.setenv("MLFLOW_SERVER_ENABLE_GRAPHQL_AUTH", "false")
        started = run_week2("class-server")
        pgdata = (class_server.class_stack().folder / "pgdata").resolve()
        try:
            assert started.returncode == 0, started.stderr
            assert "class server started" in started.stdout
            roster = build / "roster.csv"
            roster.write_text("username\n" + "\n".join(STUDENTS) + "\n")
            enrolled = run_week2("class-enroll", str(roster))
            assert enrolled.returncode == 0, enrolled.stderr
            assert "2 new, 0 kept" in enrolled.stdout
            yield class_server.class_url()
        finally:
            stopped = run_week2("class-server-stop", "--delete")
            assert stopped.returncode == 0, stopped.stderr
            assert not class_server.class_stack().folder.exists() and not pgdata.exists()
            assert not class_server.credentials_folder().exists()


def student_env(name: str) -> dict[str, str]:
    """The variables of `name`'s credentials file, as a student puts them into their environment."""
    lines = (class_server.credentials_folder() / f"{name}.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def admin_env() -> dict[str, str]:
    password = servers.read_secrets(class_server.class_stack())["admin_password"]
    return {"MLFLOW_TRACKING_USERNAME": servers.ADMIN, "MLFLOW_TRACKING_PASSWORD": password}


@pytest.fixture(scope="module")
def alices(class_server_url, tmp_path_factory):
    """What alice logs in her workspace; the values that would betray a leak of it."""
    folder = tmp_path_factory.mktemp("alice")
    (folder / "notes.txt").write_text("alice-artifact-content")
    with servers.environment(student_env("alice")):
        client = MlflowClient()
        experiment_id = client.create_experiment("alice-homework-experiment")
        run = client.create_run(experiment_id, run_name="alice-run")
        run_id = run.info.run_id
        client.log_metric(run_id, "rmse", 4.2424242)
        client.log_param(run_id, "alpha", "alice-param-value")
        dataset = Dataset("alice-dataset", "d1g3st", "local", '{"uri": "alice-source"}')
        client.log_inputs(run_id, [DatasetInput(dataset)])
        client.log_artifact(run_id, str(folder / "notes.txt"))
        model = client.create_logged_model(experiment_id, name="alice-logged-model", source_run_id=run_id)
        client.create_registered_model("alice-registered-model")
        version = client.create_model_version(
            "alice-registered-model", f"models:/{model.model_id}", run_id=run_id, model_id=model.model_id
        )
        client.set_terminated(run_id)
    return {
        "experiment_id": experiment_id,
        "run_id": run_id,
        "model_id": model.model_id,
        "version": version.version,
        "artifact_path": run.info.artifact_uri.removeprefix("mlflow-artifacts:/") + "/notes.txt",
    }


def markers(things: dict[str, str]) -> list[str]:
    """Strings that appear only in alice's things: none may reach bob."""
    return [
        things["run_id"], things["model_id"], "alice-homework-experiment", "alice-run", "4.2424242",
        "alice-param-value", "alice-dataset", "alice-artifact-content", "alice-logged-model",
        "alice-registered-model",
    ]  # fmt: skip


# (method, path, JSON body or query parameters): `{run_id}`, `{model}` and friends are alice's.
READS = {
    "get experiment": ("GET", "{api}/experiments/get", {"experiment_id": "{experiment_id}"}),
    "experiment by name": (
        "GET", "{api}/experiments/get-by-name", {"experiment_name": "alice-homework-experiment"},
    ),
    "search experiments": ("POST", "{api}/experiments/search", {"max_results": 100}),
    "get run": ("GET", "{api}/runs/get", {"run_id": "{run_id}"}),
    "search runs": ("POST", "{api}/runs/search", {"experiment_ids": ["{experiment_id}"]}),
    "metric history": ("GET", "{api}/metrics/get-history", {"run_id": "{run_id}", "metric_key": "rmse"}),
    "list artifacts": ("GET", "{api}/artifacts/list", {"run_id": "{run_id}"}),
    "get logged model": ("GET", "{api}/logged-models/{model_id}", {}),
    "search logged models": ("POST", "{api}/logged-models/search", {"experiment_ids": ["{experiment_id}"]}),
    "get registered model": ("GET", "{api}/registered-models/get", {"name": "{model}"}),
    "search registered models": ("GET", "{api}/registered-models/search", {}),
    "get model version": (
        "GET", "{api}/model-versions/get", {"name": "{model}", "version": "{version}"},
    ),
    "model version download uri": (
        "GET", "{api}/model-versions/get-download-uri",
        {"name": "{model}", "version": "{version}"},
    ),
    "search model versions": ("GET", "{api}/model-versions/search", {}),
    # MLflow's 2026 fix (CVE-2026-2734): a run_id filter named versions of models one may not read.
    "search model versions by run": ("GET", "{api}/model-versions/search", {"filter": "run_id='{run_id}'"}),
    "artifact through the proxy": ("GET", "/api/2.0/mlflow-artifacts/artifacts/{artifact_path}", {}),
    "artifact through the UI": ("GET", "/get-artifact", {"run_id": "{run_id}", "path": "notes.txt"}),
    "model version artifact through the UI": (
        "GET", "/model-versions/get-artifact", {"name": "{model}", "version": "{version}", "path": "x"},
    ),
    "UI: get run": ("GET", "{ajax}/runs/get", {"run_id": "{run_id}"}),
    "UI: search runs": ("POST", "{ajax}/runs/search", {"experiment_ids": ["{experiment_id}"]}),
    "UI: metric history bulk": (
        "GET", "{ajax}/metrics/get-history-bulk", {"run_id": "{run_id}", "metric_key": "rmse"},
    ),
    "UI: metric history bulk interval": (
        "GET", "{ajax}/metrics/get-history-bulk-interval", {"run_ids": "{run_id}", "metric_key": "rmse"},
    ),
    "UI: search datasets": (
        "POST", "{ajax}/experiments/search-datasets", {"experiment_ids": ["{experiment_id}"]},
    ),
    "UI: search registered models": ("GET", "{ajax}/registered-models/search", {}),
    "UI: list workspaces": ("GET", "/ajax-api/3.0/mlflow/workspaces", {}),
}  # fmt: skip

BOBS_DATASET = {"name": "bobs-dataset", "digest": "x", "source_type": "local", "source": "{{}}"}
CHANGES = {
    "rename experiment": (
        "POST", "{api}/experiments/update", {"experiment_id": "{experiment_id}", "new_name": "taken"},
    ),
    "delete experiment": ("POST", "{api}/experiments/delete", {"experiment_id": "{experiment_id}"}),
    "create run in it": ("POST", "{api}/runs/create", {"experiment_id": "{experiment_id}"}),
    "log metric": (
        "POST", "{api}/runs/log-metric", {"run_id": "{run_id}", "key": "rmse", "value": 0.0, "timestamp": 1},
    ),
    "set tag": ("POST", "{api}/runs/set-tag", {"run_id": "{run_id}", "key": "graded", "value": "bob"}),
    "delete run": ("POST", "{api}/runs/delete", {"run_id": "{run_id}"}),
    # MLflow's 2026 fix (CVE-2026-69146): LogInputs did not check that one may change the run.
    "log inputs": (
        "POST", "{api}/runs/log-inputs",
        {"run_id": "{run_id}", "datasets": [{"dataset": BOBS_DATASET}]},
    ),
    "upload artifact through the proxy": ("PUT", "/api/2.0/mlflow-artifacts/artifacts/{artifact_path}", None),
    "delete artifact via the proxy": ("DELETE", "/api/2.0/mlflow-artifacts/artifacts/{artifact_path}", None),
    "delete logged model": ("DELETE", "{api}/logged-models/{model_id}", None),
    "rename registered model": (
        "POST", "{api}/registered-models/rename", {"name": "{model}", "new_name": "taken"},
    ),
    "delete registered model": ("DELETE", "{api}/registered-models/delete", {"name": "{model}"}),
    "set alias": (
        "POST", "{api}/registered-models/alias",
        {"name": "{model}", "alias": "champion", "version": "{version}"},
    ),
    "delete model version": (
        "DELETE", "{api}/model-versions/delete", {"name": "{model}", "version": "{version}"},
    ),
    "create user": ("POST", "{api}/users/create", {"username": "mallory", "password": "a-long-password-1"}),
    "make oneself admin": ("PATCH", "{api}/users/update-admin", {"username": "bob", "is_admin": True}),
    "change alice's password": (
        "PATCH", "{api}/users/update-password", {"username": "alice", "password": "a-long-password-2"},
    ),
    "create workspace": ("POST", "/api/3.0/mlflow/workspaces", {"name": "bobs-second"}),
    "delete alice's workspace": ("DELETE", "/api/3.0/mlflow/workspaces/alice", None),
    "create role in alice's workspace": (
        "POST", "/api/3.0/mlflow/roles/create", {"workspace": "alice", "name": "mine"},
    ),
}  # fmt: skip


def _fill(value, things: dict[str, str]):
    if isinstance(value, str):
        return value.format(**things)
    if isinstance(value, dict):
        return {key: _fill(item, things) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_fill(item, things) for item in value)
    return value


API, AJAX = "/api/2.0/mlflow", "/ajax-api/2.0/mlflow"


def as_bob(url: str, things: dict[str, str], request: tuple, workspace: str) -> requests.Response:
    """Bob's request, from `workspace`."""
    method, path, payload = _fill(
        request, {**things, "api": API, "ajax": AJAX, "model": "alice-registered-model"}
    )
    bob = student_env("bob")
    options = (
        {"params": payload}
        if method == "GET"
        else {"json": payload}
        if payload is not None
        else {"data": b"x"}
    )
    return requests.request(
        method,
        url + path,
        auth=(bob["MLFLOW_TRACKING_USERNAME"], bob["MLFLOW_TRACKING_PASSWORD"]),
        headers={"X-MLFLOW-WORKSPACE": workspace},
        timeout=30,
        **options,
    )


def assert_nothing_of_alices(answer: requests.Response, things: dict[str, str]) -> None:
    """A refusal (whose message may quote what bob asked for), or an answer with nothing of alice's."""
    asked = f"{answer.request.url} {answer.request.body!r}"
    if answer.status_code != 200:
        assert answer.status_code in (401, 403, 404), (answer.status_code, answer.text[:300])
    leaked = [
        m for m in markers(things) if m in answer.text and (answer.status_code == 200 or m not in asked)
    ]
    assert not leaked, f"{answer.status_code}: {answer.text[:300]}"


WORKSPACES = ("bob", "alice", "default")


@pytest.mark.servers
@pytest.mark.parametrize("workspace", WORKSPACES)
def test_bob_reads_nothing_of_alices(class_server_url, alices, workspace):
    answers = {name: as_bob(class_server_url, alices, request, workspace) for name, request in READS.items()}
    for name, answer in answers.items():
        try:
            assert_nothing_of_alices(answer, alices)
        except AssertionError as leak:
            raise AssertionError(f"{name} from workspace {workspace}: {leak}") from None
    # Refusals, not only empty answers, for what names alice's things directly.
    assert answers["get run"].status_code in (403, 404)
    assert answers["artifact through the proxy"].status_code in (403, 404)


@pytest.mark.servers
@pytest.mark.parametrize("workspace", WORKSPACES)
def test_bob_changes_nothing_of_alices_and_creates_no_account_or_workspace(
    class_server_url, alices, workspace
):
    answers = {
        name: as_bob(class_server_url, alices, request, workspace) for name, request in CHANGES.items()
    }
    allowed = {
        name: answer.status_code
        for name, answer in answers.items()
        if answer.status_code not in (401, 403, 404)
    }
    assert not allowed


GRAPHQL = """
query($experimentId: String!, $runId: String!) {
  mlflowGetExperiment(input: {experimentId: $experimentId}) { experiment { name } }
  mlflowGetRun(input: {runId: $runId}) {
    run { info { runName } data { params { value } } modelVersions { name version } }
  }
  mlflowSearchRuns(input: {experimentIds: [$experimentId]}) {
    runs { info { runName } modelVersions { name version } }
  }
  mlflowListArtifacts(input: {runId: $runId}) { files { path } }
  mlflowGetMetricHistoryBulkInterval(input: {runIds: [$runId], metricKey: "rmse"}) { metrics { value } }
  mlflowSearchModelVersions(input: {filter: "name='alice-registered-model'"}) { modelVersions { version } }
}
"""


def graphql(url: str, things: dict[str, str], student: str, workspace: str) -> requests.Response:
    """GRAPHQL about alice's experiment and run, asked by `student` from `workspace`."""
    variables = {"experimentId": things["experiment_id"], "runId": things["run_id"]}
    credentials = student_env(student)
    return requests.post(
        url + "/graphql",
        json={"query": GRAPHQL, "variables": variables},
        auth=(credentials["MLFLOW_TRACKING_USERNAME"], credentials["MLFLOW_TRACKING_PASSWORD"]),
        headers={"X-MLFLOW-WORKSPACE": workspace},
        timeout=30,
    )


@pytest.mark.servers
@pytest.mark.parametrize("workspace", ("bob", "alice"))
def test_graphql_gives_bob_nothing_of_alices_with_its_auth_flag_unset(class_server_url, alices, workspace):
    # MLflow's 2026 fixes: GraphQL without its authorization when MLFLOW_SERVER_ENABLE_GRAPHQL_AUTH was
    # unset, and the model versions nested in a run (GHSA-f253-vggg-rwh8). The server runs without
    # the variable (MLflow's default applies), though the shell that started it said "false".
    mlflow_process = class_server.class_stack().services()["mlflow"].process()
    for process in (mlflow_process, *mlflow_process.children(recursive=True)):
        assert "MLFLOW_SERVER_ENABLE_GRAPHQL_AUTH" not in process.environ()
    assert_nothing_of_alices(graphql(class_server_url, alices, "bob", workspace), alices)
    # The same query as alice finds her things: the query itself is right.
    answer = graphql(class_server_url, alices, "alice", "alice")
    found = answer.json()["data"]
    assert found["mlflowGetRun"]["run"]["modelVersions"] == [
        {"name": "alice-registered-model", "version": "1"}
    ]
    assert found["mlflowGetExperiment"]["experiment"]["name"] == "alice-homework-experiment"


@pytest.mark.servers
@pytest.mark.parametrize("workspace", WORKSPACES)
def test_the_client_search_calls_find_nothing_of_alices_for_bob(class_server_url, alices, workspace):
    with servers.environment({**student_env("bob"), "MLFLOW_WORKSPACE": workspace}):
        client = MlflowClient()
        found = {
            "experiments": client.search_experiments(),
            "runs": _refused_or(lambda: client.search_runs([alices["experiment_id"]])),
            "logged models": _refused_or(lambda: client.search_logged_models([alices["experiment_id"]])),
            "registered models": client.search_registered_models(),
            "model versions": client.search_model_versions(),
            "model versions by run": _refused_or(
                lambda: client.search_model_versions(f"run_id='{alices['run_id']}'")
            ),
        }
    assert all(not things for things in found.values()), found


def _refused_or(search):
    """What `search` finds, or nothing when the server refuses it (403/404)."""
    try:
        return list(search())
    except MlflowException as refused:
        assert refused.get_http_status_code() in (403, 404), refused
        return []


@pytest.mark.servers
def test_alices_things_are_whole_after_bobs_attempts(class_server_url, alices):
    with servers.environment(student_env("alice")):
        client = MlflowClient()
        experiment = client.get_experiment(alices["experiment_id"])
        run = client.get_run(alices["run_id"])
        history = client.get_metric_history(alices["run_id"], "rmse")
        versions = client.search_model_versions("name='alice-registered-model'")
        model = client.get_logged_model(alices["model_id"])
        artifact = client.download_artifacts(alices["run_id"], "notes.txt")
        aliases = client.get_registered_model("alice-registered-model").aliases
    assert (experiment.name, experiment.lifecycle_stage) == ("alice-homework-experiment", "active")
    assert (run.info.lifecycle_stage, run.data.tags.get("graded")) == ("active", None)
    assert [(m.value, m.step) for m in history] == [(4.2424242, 0)]
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["alice-dataset"]
    assert [v.version for v in versions] == [alices["version"]] and aliases == {}
    assert model.name == "alice-logged-model"
    assert Path(artifact).read_text() == "alice-artifact-content"
    with servers.environment(admin_env()):
        client = MlflowClient(class_server_url)
        assert {w.name for w in client.list_workspaces()} == {"default", *STUDENTS}
        with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST|not found"):
            servers.auth_client(class_server_url).get_user("mallory")


@pytest.mark.servers
def test_what_mlflow_tells_by_design_usernames_and_that_a_name_exists(class_server_url, alices):
    # Written in INSTRUCTORS.md: usernames are no secret (hence usernames, not e-mails, in the
    # roster), and 403 against 404 tells that a name exists in another workspace.
    bob = student_env("bob")
    auth = (bob["MLFLOW_TRACKING_USERNAME"], bob["MLFLOW_TRACKING_PASSWORD"])
    headers = {"X-MLFLOW-WORKSPACE": "bob"}  # a member of any workspace may list every account
    users = requests.get(
        class_server_url + "/api/2.0/mlflow/users/list", auth=auth, headers=headers, timeout=30
    )
    assert users.status_code == 200
    listed = {user["username"]: user["roles"] for user in users.json()["users"]}
    assert {"admin", "alice", "bob"} <= set(listed) and listed["alice"] == []  # her roles are not shown

    def by_name(name: str) -> int:
        asked = {"experiment_name": name}
        return as_bob(
            class_server_url, alices, ("GET", "/api/2.0/mlflow/experiments/get-by-name", asked), "alice"
        )

    # Asked in alice's workspace, her experiment's name is refused, a name she does not use is not found.
    assert (by_name("alice-homework-experiment").status_code, by_name("no-such-experiment").status_code) == (
        403,
        404,
    )


@pytest.mark.servers
def test_a_student_client_with_the_env_file_logs_into_their_own_workspace(class_server_url, tmp_path):
    folder = class_server.credentials_folder()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in STUDENTS:
        path = folder / f"{name}.env"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        values = student_env(name)
        password = values["MLFLOW_TRACKING_PASSWORD"]
        assert len(password) >= 12 and values == {
            "MLFLOW_TRACKING_URI": class_server_url,
            "MLFLOW_TRACKING_USERNAME": name,
            "MLFLOW_TRACKING_PASSWORD": password,
            "MLFLOW_WORKSPACE": name,
        }
    # A student's own script, in a process of its own, with nothing but the file's four variables.
    script = (
        "import mlflow\n"
        "mlflow.set_experiment('homework')\n"
        "with mlflow.start_run() as run:\n"
        "    mlflow.log_metric('rmse', 6.5)\n"
        "print(run.info.run_id)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | student_env("bob")
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[-1]
    with servers.environment({**admin_env(), "MLFLOW_WORKSPACE": "bob"}):
        client = MlflowClient(class_server_url)
        run = client.get_run(run_id)
        experiment = client.get_experiment(run.info.experiment_id)
    assert (experiment.name, experiment.workspace, run.data.metrics) == ("homework", "bob", {"rmse": 6.5})
    assert run.info.user_id == "bob"


@pytest.mark.servers
def test_enrolment_is_idempotent_adds_keeps_and_leaves_out(class_server_url, alices, tmp_path):
    passwords = {name: student_env(name)["MLFLOW_TRACKING_PASSWORD"] for name in STUDENTS}
    (class_server.credentials_folder() / "alice.env").unlink()  # lost: the only copy of the password
    roster = tmp_path / "roster.csv"
    roster.write_text("username,name\nalice,Alice A.\ncarol,Carol C.\n")  # bob left out, carol new
    enrolled = run_week2("class-enroll", str(roster))
    assert enrolled.returncode == 0, enrolled.stderr
    assert "1 new, 0 kept" in enrolled.stdout and "alice" in enrolled.stdout and "bob" in enrolled.stdout
    assert student_env("alice")["MLFLOW_TRACKING_PASSWORD"] != passwords["alice"]  # a new one, in a new file
    assert not (class_server.credentials_folder() / "bob.env").exists()

    with servers.environment(student_env("alice")):
        assert MlflowClient().get_run(alices["run_id"]).info.run_name == "alice-run"  # the new password works
    bob_before = {**student_env_of(passwords["bob"], "bob")}
    with servers.environment(bob_before), pytest.raises(MlflowException) as refused:
        MlflowClient(class_server_url).search_experiments()
    assert refused.value.get_http_status_code() == 401  # bob's account is gone ...
    with servers.environment({**admin_env(), "MLFLOW_WORKSPACE": "bob"}):
        kept = MlflowClient(class_server_url).search_experiments(filter_string="name = 'homework'")
    assert [e.name for e in kept] == ["homework"]  # ... not his runs

    # Bob back on the roster: a new account (his file was gone); the others keep their passwords,
    # and nobody holds any role but their own workspace's `user` (MLflow's hidden per-user role,
    # which holds what they created, aside).
    carol = student_env("carol")["MLFLOW_TRACKING_PASSWORD"]
    roster.write_text("username\nalice\nbob\ncarol\n")
    enrolled = run_week2("class-enroll", str(roster))
    assert enrolled.returncode == 0, enrolled.stderr
    assert "1 new, 2 kept" in enrolled.stdout
    assert student_env("carol")["MLFLOW_TRACKING_PASSWORD"] == carol
    with servers.environment(admin_env()):
        auth = servers.auth_client(class_server_url)
        roles = {
            name: [
                (r.workspace, r.name) for r in auth.list_user_roles(name) if not r.name.startswith("__user_")
            ]
            for name in STUDENTS + ("carol",)
        }
    assert roles == {name: [(name, "user")] for name in roles}
    with servers.environment(student_env("bob")):
        assert [e.name for e in MlflowClient().search_experiments()] == ["homework"]  # his runs again


@pytest.mark.servers
def test_a_restart_keeps_accounts_workspaces_runs_and_artifacts(class_server_url, alices):
    stopped = run_week2("class-server-stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "stay in" in stopped.stdout and "DELETE=1" in stopped.stdout
    assert not servers.is_healthy(class_server_url)
    started = run_week2("class-server")
    assert started.returncode == 0, started.stderr
    with servers.environment(student_env("alice")):  # the same password, the same workspace
        client = MlflowClient()
        run = client.get_run(alices["run_id"])
        artifact = Path(client.download_artifacts(alices["run_id"], "notes.txt"))
    assert (run.data.metrics, artifact.read_text()) == ({"rmse": 4.2424242}, "alice-artifact-content")


def student_env_of(password: str, name: str) -> dict[str, str]:
    return {"MLFLOW_TRACKING_USERNAME": name, "MLFLOW_TRACKING_PASSWORD": password, "MLFLOW_WORKSPACE": name}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name\nalice\n", "has no username column"),
        ("username\nAlice@uni.edu\n", "line 2: 'Alice@uni.edu' cannot be a student's username"),
        ("username\nalice\nbob\nalice\n", "line 4: alice is there twice"),
        ("username\nadmin\n", "line 2: 'admin' cannot be"),
        ("username\n", "lists no student"),
        (
            "username\n" + "".join(f"s{i:03}\n" for i in range(501)),
            "lists 501 students, more than WEEK2_CLASS_SIZE=500",
        ),
    ],
)
def test_a_bad_roster_is_refused_with_what_to_fix(tmp_path, monkeypatch, content, message):
    monkeypatch.setenv("WEEK2_CLASS_SIZE", "500")
    roster = tmp_path / "roster.csv"
    roster.write_text(content)
    with pytest.raises(servers.ServerError, match=re.escape(message)):
        class_server.read_roster(roster)


def test_a_bad_roster_is_one_line_and_status_2_before_anything_is_done(tmp_path, monkeypatch):
    monkeypatch.setenv("WEEK2_BUILD_DIR", str(tmp_path / "build"))
    roster = tmp_path / "roster.csv"
    roster.write_text("username\nalice\nAlice@uni.edu\n")
    done = run_week2("class-enroll", str(roster))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: The roster {roster}, line 3: 'Alice@uni.edu' cannot be")
    assert not class_server.credentials_folder().exists()


def test_make_class_enroll_without_a_roster_says_how_to_give_one():
    # -o: take the venv as up to date, so that make never reinstalls it here.
    command = ["make", "-s", "-o", ".venv/.installed", "class-enroll"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines()[0] == (
        "error: no roster: make class-enroll ROSTER=roster.csv (a CSV file with a username column)"
    )


def test_workers_that_would_not_fit_postgresql_are_refused_and_the_pools_fit():
    for workers in (1, 2, 4, 11):
        pools = class_server.pool_settings(workers)
        per_engine = int(pools["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"]) + int(
            pools["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"]
        )
        assert int(pools["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"]) >= 1  # 0 would mean SQLAlchemy's 10
        used = workers * class_server.ENGINES_PER_WORKER * per_engine + class_server.OPERATOR_CONNECTIONS
        assert used <= class_server.POSTGRES_MAX_CONNECTIONS
    with pytest.raises(servers.ServerError, match="WEEK2_CLASS_WORKERS=12.*set it to 11 or fewer"):
        class_server.pool_settings(12)
