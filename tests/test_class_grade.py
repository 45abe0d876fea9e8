"""A cohort on the class server: students submit with `make homework CLASS=…`, the instructor grades.

One class server for the module, three students enrolled: alice submits the reference solution,
bob the untouched starters, carol nothing. `make class-grade`'s grader then runs the reference in
the instructor's workspace and writes grades.csv and grades.png. A submission that cannot count
(a wrong password, another's workspace, the server down, the deadline passed) is one line and
exit status 2, with nothing written.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import run_week2, skip_without_postgres
from test_homework import HOMEWORK, MONTHS, SAMPLE_TOP_N, SAMPLE_TRIALS, verdicts

from week2.machinery import class_server

STUDENTS = ("alice", "bob", "carol")


def homework(folder: Path, *options: str, **env: str) -> subprocess.Popen:
    """`make homework` (the runner) with `options`, its output folder and log in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(HOMEWORK / "run_homework.py"), "--months", " ".join(MONTHS)]
    command += ["--trials", str(SAMPLE_TRIALS), "--top_n", str(SAMPLE_TOP_N), *options]
    command += ["--dest_path", str(folder / "output"), "--submission", str(folder / "submission.json")]
    environment = {**os.environ, "WEEK2_DATA": "sample", "WEEK2_SAMPLE_ROWS": "1000", **env}
    log = open(folder / "log", "w")  # noqa: SIM115 (closed with the process, by the caller's wait)
    return subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def cohort(server_settings, tmp_path_factory):
    """The class server with three students; alice and bob submitted; the class graded."""
    skip_without_postgres()
    build = tmp_path_factory.mktemp("build")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WEEK2_BUILD_DIR", str(build))
        patch.setenv("WEEK2_DATA_DIR", str(build / "data"))  # one sample for every process
        patch.setenv("WEEK2_CLASS_WORKERS", "1")  # lean: one worker serves a cohort of three
        try:
            assert run_week2("class-server").returncode == 0
            roster = build / "roster.csv"
            roster.write_text("username\n" + "\n".join(STUDENTS) + "\n")
            assert run_week2("class-enroll", str(roster)).returncode == 0
            credentials = class_server.credentials_folder()
            submissions = {
                "alice": homework(
                    build / "alice", "--solution", "1", "--class", str(credentials / "alice.env")
                ),
                "bob": homework(build / "bob", "--class", str(credentials / "bob.env")),
            }
            codes = {name: process.wait(timeout=900) for name, process in submissions.items()}
            command = [sys.executable, str(HOMEWORK / "grade_class.py"), "--months", " ".join(MONTHS)]
            command += ["--trials", str(SAMPLE_TRIALS), "--top_n", str(SAMPLE_TOP_N)]
            env = {**os.environ, "WEEK2_DATA": "sample", "WEEK2_SAMPLE_ROWS": "1000"}
            graded = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=900, check=False
            )
            yield {"build": build, "codes": codes, "graded": graded}
        finally:
            assert run_week2("class-server-stop", "--delete").returncode == 0


def output_of(cohort, name: str) -> str:
    return (cohort["build"] / name / "log").read_text()


@pytest.mark.servers
@pytest.mark.slow
def test_students_submit_with_their_credentials_file(cohort):
    alice, bob = output_of(cohort, "alice"), output_of(cohort, "bob")
    assert cohort["codes"] == {"alice": 0, "bob": 1}, alice + bob
    url = class_server.class_url()
    assert f"submitted to {url} as alice at " in alice and "in workspace alice" in alice
    assert f"submitted to {url} as bob at " in bob
    assert verdicts(alice) == [["PASS", f"q{i}"] for i in range(1, 7)]
    assert [v for v in verdicts(bob) if v[1] in ("q3", "q5", "q6")] == [
        ["FAIL", "q3"],
        ["FAIL", "q5"],
        ["FAIL", "q6"],
    ]


@pytest.mark.servers
@pytest.mark.slow
def test_class_grade_grades_each_student_against_the_reference(cohort):
    graded = cohort["graded"]
    assert graded.returncode == 0, graded.stdout + graded.stderr
    folder = cohort["build"] / "class"
    with open(folder / "grades.csv") as rows:
        grades = {row["username"]: row for row in csv.DictReader(rows)}
    assert sorted(grades) == list(STUDENTS)  # the instructor's workspace is no student's
    alice, bob, carol = (grades[name] for name in STUDENTS)
    reference = (folder / "reference" / "submission.json").read_text()
    assert [alice[f"{q}_verdict"] for q in ("q3", "q5", "q6")] == ["PASS"] * 3
    assert f'"q5": {alice["q5"]}' in reference and f'"q6": {alice["q6"]}' in reference  # the same numbers
    assert alice["session"] in output_of(cohort, "alice") and alice["late"] == "no"
    assert [bob[f"{q}_verdict"].split(":")[0] for q in ("q3", "q5", "q6")] == ["FAIL"] * 3
    assert "expected 1 run of train.py, found 0" in bob["q3_verdict"]
    assert bob["session"] and not carol["session"]  # bob's session is on the server, if empty
    # Q1, Q2 and Q4 are answered on the student's machine: the session's record says its verdicts.
    assert [alice[f"{q}_local"] for q in ("q1", "q2", "q4")] == ["PASS"] * 3
    assert bob["q2_local"] == "PASS" and carol["q1_local"] == ""
    assert "nothing submitted (1): carol" in graded.stdout
    assert (folder / "grades.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.servers
@pytest.mark.slow
def test_runs_after_the_deadline_do_not_count(cohort, monkeypatch):
    sys.path.insert(0, str(HOMEWORK))
    try:
        import grade_class
    finally:
        sys.path.remove(str(HOMEWORK))
    import mlflow

    for name, value in class_server.admin_settings().items():
        monkeypatch.setenv(name, value)
    mlflow.set_workspace("alice")
    try:
        before, late = grade_class.homework_sessions(datetime.now(UTC) - timedelta(days=1))
        after, in_time = grade_class.homework_sessions(datetime.now(UTC) + timedelta(days=1))
    finally:
        mlflow.set_workspace(None)
    assert (before, late) == ({}, True)
    assert len(after) == 1 and not in_time


def credentials(name: str, **changes: str) -> dict[str, str]:
    lines = (class_server.credentials_folder() / f"{name}.env").read_text().splitlines()
    return {**dict(line.split("=", 1) for line in lines), **changes}


@pytest.mark.servers
@pytest.mark.slow
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"MLFLOW_TRACKING_PASSWORD": "not-her-password"}, "refused alice's username or password"),
        ({"MLFLOW_WORKSPACE": "bob"}, "has no workspace 'bob' that alice may use"),
        ({"MLFLOW_WORKSPACE": "nobody"}, "has no workspace 'nobody' that alice may use"),
        (
            {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
            "the class server http://127.0.0.1:9 does not answer",
        ),
        ({"WEEK2_CLASS_DEADLINE": "2026-01-01T00:00:00Z"}, "the deadline, 2026-01-01T00:00:00Z, has passed"),
    ],
)
def test_a_submission_that_cannot_count_is_one_line_and_writes_nothing(cohort, tmp_path, changes, message):
    settings = credentials("alice", **changes)
    env_file = tmp_path / "alice.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    process = homework(tmp_path / "run", "--class", str(env_file))
    assert process.wait(timeout=120) == 2
    output = (tmp_path / "run" / "log").read_text()
    assert output.count("\n") == 1 and output.startswith("error: ") and message in output, output
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["log"]  # nothing else written
