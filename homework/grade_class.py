"""`make class-grade`: grade a cohort from the class server, by the rules `make homework` grades one student.

As the class server's admin, for every student's workspace (those `make class-enroll` made, also of
students since left out of the roster): the student's latest complete homework session, one whose
runs include those of train.py, hpo.py and register_model.py, all started before the deadline (a
session with a run after it does not count, and the row says the student was late), is graded by
check.py's Q3, Q5 and Q6. Each answer is then compared with the reference solution's, run once in
the instructor's workspace on the same months and trials: Q3 exactly, Q5 and Q6 within the course
form's tolerance (±0.01). Q1, Q2 and Q4 are answered on the student's machine, not on the server.

Writes build/class/grades.csv (one row per student) and build/class/grades.png (the pass rate per
question, the spread of the Q5 and Q6 answers), and prints a summary and who submitted nothing.

    python homework/grade_class.py [--deadline 2026-12-20T23:59:00Z] [--months "2023-01 2023-02 2023-03"]
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click
import mlflow
from check import (
    Answer,
    q3_min_samples_split,
    q5_best_val_rmse,
    q6_registered_test_rmse,
    started_by,
)
from common import HOMEWORK_DIR, SESSION_TAG, run_cli, session_options

from week2 import config
from week2.files import atomic_path, write_text_atomically
from week2.machinery import class_server, servers
from week2.machinery.servers import ServerError

SCRIPTS = ("train.py", "hpo.py", "register_model.py")
"""The scripts whose runs make a session complete (preprocess_data.py logs nothing)."""
TOLERANCE = 0.01
"""How far a numeric answer may be from the reference's: the course's form takes the closest option."""
QUESTIONS = ("q3", "q5", "q6")
LOCAL_QUESTIONS = ("q1", "q2", "q4")
"""Answered on the student's machine; the session's record (run_homework.py's run) says its verdicts."""


@dataclass
class Grade:
    """One student's row of grades.csv."""

    username: str
    session: str = ""
    last_run: str = ""
    late: bool = False
    answers: dict[str, Answer] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)
    local: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def submitted(self) -> bool:
        return bool(self.session)

    def row(self) -> dict[str, str]:
        row = {"username": self.username, "session": self.session, "last_run": self.last_run}
        row["late"] = "yes" if self.late else "no"
        row |= {f"{key}_local": self.local.get(key, "") for key in LOCAL_QUESTIONS}
        for key in QUESTIONS:
            answer = self.answers.get(key)
            row[key] = "" if answer is None or answer.value is None else str(answer.value)
            row[f"{key}_verdict"] = self.verdicts.get(key, "")
        row["notes"] = "; ".join(self.notes)
        return row


def homework_sessions(deadline: datetime | None) -> tuple[dict[str, list], bool]:
    """The active workspace's homework sessions (session tag -> runs, the session's record among
    them) that count, and whether any run was started after the deadline."""
    runs = mlflow.search_runs(search_all_experiments=True, max_results=5000, output_format="list")
    by_session = defaultdict(list)
    for run in runs:
        if run.data.tags.get(SESSION_TAG):
            by_session[run.data.tags[SESSION_TAG]].append(run)
    limit = deadline.timestamp() * 1000 if deadline else float("inf")
    late = {session for session, runs in by_session.items() if any(r.info.start_time > limit for r in runs)}
    return {session: runs for session, runs in by_session.items() if session not in late}, bool(late)


def latest_complete(sessions: dict[str, list]) -> str | None:
    """The newest session whose runs come from every script, else the newest session, else None."""
    newest = sorted(sessions, key=lambda s: max(r.info.start_time for r in sessions[s]), reverse=True)
    complete = [s for s in newest if all(started_by(sessions[s], script) for script in SCRIPTS)]
    return (complete or newest or [None])[0]


def server_answers(session: str, trials: int, top_n: int) -> dict[str, Answer]:
    """Q3, Q5 and Q6 of `session` in the active workspace, graded as `make homework` grades them."""
    search = q5_best_val_rmse(session, trials, HOMEWORK_DIR)
    answers = [
        q3_min_samples_split(session, HOMEWORK_DIR),
        search,
        q6_registered_test_rmse(session, top_n, trials, HOMEWORK_DIR, search=search),
    ]
    return {answer.key: answer for answer in answers}


def compare(answer: Answer, reference: Answer) -> str:
    """PASS when the answer passes the grader and agrees with the reference's; else FAIL and why."""
    if not answer.passed:
        return f"FAIL: {answer.problems[0] if answer.problems else 'no answer'}"
    if answer.key == "q3":
        agrees = answer.value == reference.value
    else:
        agrees = abs(float(answer.value) - float(reference.value)) <= TOLERANCE + 1e-9
    return "PASS" if agrees else f"FAIL: {answer.value} against the reference's {reference.value}"


def grade_student(username: str, deadline, reference: dict[str, Answer], trials: int, top_n: int) -> Grade:
    mlflow.set_workspace(username)
    grade = Grade(username)
    sessions, grade.late = homework_sessions(deadline)
    if grade.late:
        grade.notes.append("runs started after the deadline do not count")
    session = latest_complete(sessions)
    if session is None:
        return grade
    grade.session = session
    started = max(run.info.start_time for run in sessions[session])
    grade.last_run = datetime.fromtimestamp(started / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    grade.answers = server_answers(session, trials, top_n)
    grade.verdicts = {key: compare(answer, reference[key]) for key, answer in grade.answers.items()}
    for record in started_by(sessions[session], "run_homework.py"):  # what the student's machine said
        grade.local = {key: record.data.tags.get(f"{key}.verdict", "") for key in LOCAL_QUESTIONS}
    return grade


def run_reference(months: list[str], trials: int, top_n: int, folder: Path) -> dict[str, Answer]:
    """The reference solution, run by `make homework`'s runner in the instructor's workspace; its answers."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "run_homework.log"
    command = [sys.executable, str(HOMEWORK_DIR / "run_homework.py"), "--solution", "1"]
    command += ["--months", " ".join(months), "--trials", str(trials), "--top_n", str(top_n)]
    command += ["--dest_path", str(folder / "output"), "--submission", str(folder / "submission.json")]
    click.echo(f"reference: the solution in workspace {class_server.INSTRUCTOR_WORKSPACE} ({log}) …")
    env = {**os.environ, "MLFLOW_WORKSPACE": class_server.INSTRUCTOR_WORKSPACE}
    with open(log, "w") as out:
        done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise click.ClickException(f"the reference solution did not pass on the class server: see {log}")
    session = log.read_text().split("; session ", 1)[1].split()[0]
    mlflow.set_workspace(class_server.INSTRUCTOR_WORKSPACE)
    return server_answers(session, trials, top_n)


def write_csv(grades: list[Grade], path: Path) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(Grade("").row()))
    writer.writeheader()
    writer.writerows(grade.row() for grade in grades)
    write_text_atomically(path, text.getvalue())


def draw(grades: list[Grade], reference: dict[str, Answer], path: Path) -> None:
    """Pass rate per question, and each student's Q5 and Q6 answers beside the reference's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    submitted = [grade for grade in grades if grade.submitted]
    fig, (rates, spread) = plt.subplots(1, 2, figsize=(10, 3.8))
    passed = [sum(g.verdicts.get(q) == "PASS" for g in submitted) / max(len(grades), 1) for q in QUESTIONS]
    bars = rates.bar([q.upper() for q in QUESTIONS], passed, color="#55A868")
    rates.bar_label(bars, labels=[f"{p:.0%}" for p in passed], padding=2)
    rates.set(ylim=(0, 1.15), ylabel="share of the class", title=f"Pass rate ({len(grades)} students)")
    for x, key in enumerate(("q5", "q6")):
        values = [g.answers[key].value for g in submitted if g.answers[key].value is not None]
        spread.scatter(
            [x] * len(values), values, alpha=0.6, color="#4C72B0", label="students" if x == 0 else None
        )
        spread.hlines(
            reference[key].value, x - 0.25, x + 0.25, color="#C44E52", label="reference" if x == 0 else None
        )
    spread.set(xticks=[0, 1], xticklabels=["Q5 val RMSE", "Q6 test RMSE"], xlim=(-0.6, 1.6), title="Answers")
    spread.legend(loc="best")
    fig.tight_layout()
    with atomic_path(path) as temporary:
        fig.savefig(temporary, format="png", dpi=100)
    plt.close(fig)


def print_summary(grades: list[Grade]) -> None:
    rows = [("student", "session", "last run", "late", *[q.upper() for q in QUESTIONS])]
    for grade in grades:
        if grade.submitted:
            verdicts = [grade.verdicts[q].split(":")[0] for q in QUESTIONS]
            rows.append(
                (grade.username, grade.session, grade.last_run, "yes" if grade.late else "", *verdicts)
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    click.echo()
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    nothing = [grade.username for grade in grades if not grade.submitted]
    if nothing:
        click.echo(f"\nnothing submitted ({len(nothing)}): {', '.join(nothing)}")


@click.command()
@click.option(
    "--deadline", default=None, help="Runs started after it do not count, e.g. 2026-12-20T23:59:00Z."
)
@session_options
def grade_class(deadline: str | None, months: list[str], trials: int, top_n: int) -> None:
    """Grade every student's workspace on the class server; write build/class/grades.csv and .png."""
    try:
        moment = class_server.parse_deadline(deadline) if deadline else None
        admin = class_server.admin_settings()
    except ServerError as error:
        raise click.ClickException(str(error)) from None
    folder = config.build_dir() / "class"
    with servers.environment({**admin, "MLFLOW_WORKSPACE": ""}):
        os.environ.pop("MLFLOW_WORKSPACE")  # the admin sees every workspace; each is chosen below
        client = mlflow.MlflowClient()
        workspaces = sorted(
            w.name for w in client.list_workspaces() if w.description == class_server.STUDENT_WORKSPACE
        )
        if class_server.INSTRUCTOR_WORKSPACE not in {w.name for w in client.list_workspaces()}:
            client.create_workspace(
                class_server.INSTRUCTOR_WORKSPACE, description="Reference solution (make class-grade)"
            )
        reference = run_reference(months, trials, top_n, folder / "reference")
        click.echo(
            "reference answers: "
            + ", ".join(f"{key.upper()} {answer.value}" for key, answer in reference.items())
        )
        grades = [grade_student(name, moment, reference, trials, top_n) for name in workspaces]
        mlflow.set_workspace(None)
    write_csv(grades, folder / "grades.csv")
    draw(grades, reference, folder / "grades.png")
    print_summary(grades)
    click.echo(f"\nwrote {folder / 'grades.csv'} and {folder / 'grades.png'}")


if __name__ == "__main__":
    sys.exit(run_cli(grade_class))
