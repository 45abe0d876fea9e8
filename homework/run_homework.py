"""`make homework`: run your four scripts, grade each question from what they left, write the submission.

The scripts run in order as separate processes, exactly as you would run them by hand, in one
session: MLflow puts the session's tag on every run they start (`MLFLOW_RUN_CONTEXT`), so earlier
runs in the same tracking store do not count. Each question is then answered from the store or
the files and graded: PASS, or FAIL with what is missing and the file and TODO to look at. The
exit status is 1 when a question fails. `--solution 1` (`make homework SOLUTION=1`) runs the
reference solution in homework/solution/ through the same grader.

    python homework/run_homework.py --months "2023-01 2023-02 2023-03" --trials 15
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import click
import mlflow
from check import (
    Ending,
    file_stamps,
    q1_mlflow_version,
    q2_preprocessed_files,
    q3_min_samples_split,
    q4_artifact_option,
    q5_best_val_rmse,
    q6_registered_test_rmse,
    repo_label,
    session_runs,
)
from common import (
    BEST_MODELS_EXPERIMENT,
    HOMEWORK_DIR,
    HPO_EXPERIMENT,
    SESSION_TAG,
    SUBMISSIONS_EXPERIMENT,
    TRAIN_EXPERIMENT,
    Folder,
    OutputFile,
    run_cli,
    session_options,
)
from mlflow.exceptions import MlflowException

from week2 import config, data, tracking
from week2.files import write_text_atomically
from week2.machinery import class_server
from week2.machinery.servers import ServerError

BUILD_DIR = config.REPO_ROOT / "build" / "homework"
HARNESS = HOMEWORK_DIR / "harness.py"
TRACEBACK_START = "Traceback (most recent call last):"


def run_script(
    step: int, script: Path, args: list[str], env: dict[str, str], log_dir: Path
) -> tuple[bool, Ending]:
    """Run one script with this Python through homework/harness.py, its output shown as it comes.

    Whether it succeeded, and how it ended (a crash, runs sent elsewhere). A traceback is kept out
    of the terminal: the exception is shown in one line, the whole output is in the log.
    """
    click.echo(click.style(f"[{step}/4] python {repo_label(script)} {' '.join(args)}", bold=True))
    log = log_dir / f"{script.stem}.log"
    report = log_dir / f"{script.stem}.json"
    report.unlink(missing_ok=True)
    started = time.monotonic()
    last_line, in_traceback = "", False
    process = subprocess.Popen(
        [sys.executable, str(HARNESS), str(report), str(script), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    with open(log, "w") as log_file, process.stdout:
        for line in process.stdout:
            log_file.write(line)
            in_traceback = in_traceback or line.startswith(TRACEBACK_START)
            if not in_traceback:
                click.echo(line, nl=False)
            if line.strip():
                last_line = line.strip()
    peak = wait_with_peak_memory(process)
    seconds = time.monotonic() - started
    ending = Ending.read(report)
    if process.returncode == 0:
        click.echo(f"[{step}/4] {script.name} done in {seconds:.0f} s{peak}\n")
        return True, ending
    if crash := ending.crash:
        reason = f"{crash.summary()} ({crash.where()})"
    else:
        reason = f"it crashed with {last_line}" if in_traceback else "see its error above"
    click.echo(
        click.style(f"[{step}/4] {script.name} failed (exit {process.returncode}): ", fg="red")
        + f"{reason}; its whole output is in {log}\n"
    )
    return False, ending


def wait_with_peak_memory(process: subprocess.Popen) -> str:
    """Wait for `process`; return ', peak memory X GB' (its maximum resident set), where the OS says."""
    if not hasattr(os, "wait4"):  # Windows
        process.wait()
        return ""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    kib = usage.ru_maxrss / 1024 if sys.platform == "darwin" else usage.ru_maxrss  # macOS counts bytes
    return f", peak memory {kib / 1024**2:.2f} GB"


def tag_session_runs(session: str, tags: dict[str, str]) -> None:
    """Add the data tags every course run carries; only this runner knows the months and source."""
    client = mlflow.MlflowClient()
    for run in session_runs(session):
        for key, value in tags.items():
            client.set_tag(run.info.run_id, key, value)


def record_submission(session: str, answers, tags: dict[str, str]) -> None:
    """On the class server, the session's record: a run of its own that says it was submitted, and
    what this machine's grader said (Q1, Q2 and Q4 are answered here, not on the server)."""
    for answer in answers:
        tags[f"{answer.key}.answer"] = "" if answer.value is None else str(answer.value)
        tags[f"{answer.key}.verdict"] = "PASS" if answer.passed else "FAIL"
    experiment_id = tracking.setup_mlflow(SUBMISSIONS_EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"make homework {session}", tags=tags):
        mlflow.set_tags({SESSION_TAG: session, "mlflow.source.name": "run_homework.py"})


def print_table(answers) -> None:
    rows = [("", "question", "answer", "evidence")]
    rows += [(a.key, a.question, "-" if a.value is None else str(a.value), a.evidence) for a in answers]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    click.echo()
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3]
        )


def print_verdicts(answers) -> None:
    for answer in answers:
        if answer.passed:
            click.echo(f"{click.style('PASS', fg='green')} {answer.key} {answer.question}")
            continue
        click.echo(f"{click.style('FAIL', fg='red')} {answer.key} {answer.question}")
        for line in [
            *answer.problems,
            *(["the script did not give an answer"] if not answer.problems else []),
        ]:
            click.echo(f"     {line}")
        click.echo(f"     {answer.hint}")


@click.command()
@session_options
@click.option(
    "--solution",
    type=click.Choice(["0", "1"]),
    default="0",
    show_default=True,
    help="1: run the reference solution in homework/solution/ instead of your scripts (make: SOLUTION=1).",
)
@click.option(
    "--scripts",
    "scripts_folder",
    type=Folder("the folder of your four scripts"),
    default=None,
    help="Grade the four scripts of this folder instead (an instructor grading a student's copy).",
)
@click.option(
    "--dest_path",
    type=Folder("a folder for the pickles", writable=True),
    default=None,
    help="Folder for the pickles; default build/homework/<student or solution>/output.",
)
@click.option(
    "--submission",
    type=OutputFile(),
    default=None,
    help="Where the answers are written; default homework/submission.json "
    "(build/homework/solution/submission.json for the solution).",
)
@click.option(
    "--tracking-uri", default=None, help="Tracking store; default MLFLOW_TRACKING_URI, else mlflow.db."
)
@click.option(
    "--class",
    "class_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Submit to the class server: the credentials file your instructor sent you (make: CLASS=alice.env); "
    "its four MLFLOW_ variables in the environment do the same.",
)
def run_homework(
    months: list[str],
    trials: int,
    top_n: int,
    solution: str,
    scripts_folder: Path | None,
    dest_path: Path | None,
    submission: Path | None,
    tracking_uri: str | None,
    class_file: Path | None,
) -> None:
    """Run preprocess_data.py, train.py, hpo.py and register_model.py; grade Q1-Q6."""
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri  # for this process and the four scripts
    try:
        classroom = class_server.submission_settings(class_file, dict(os.environ))
        os.environ.update(classroom)  # the server, the account and the workspace, for the scripts too
        if classroom:
            class_server.check_submission(classroom)
    except ServerError as error:
        raise click.ClickException(str(error)) from None
    who = "solution" if solution == "1" else "student"
    scripts = (scripts_folder or (HOMEWORK_DIR / "solution" if who == "solution" else HOMEWORK_DIR)).resolve()
    dest_path = (dest_path or BUILD_DIR / who / "output").resolve()
    if submission is None:
        submission = (
            BUILD_DIR / "solution" / "submission.json"
            if who == "solution"
            else HOMEWORK_DIR / "submission.json"
        )
    try:
        source, paths = data.resolve_months(months, warn=False)  # its banner says it
    except (config.ConfigError, data.DataError) as error:
        raise click.ClickException(str(error)) from None

    session = uuid.uuid4().hex[:12]
    uri = config.tracking_uri()
    click.echo(f"data: {source} {', '.join(months)}; tracking store: {uri}; session {session}")
    click.echo(f"scripts: {repo_label(scripts)}/\n")
    # The experiments are made here, with the course's artifact location; your set_experiment finds them.
    try:
        for experiment in (TRAIN_EXPERIMENT, HPO_EXPERIMENT, BEST_MODELS_EXPERIMENT):
            tracking.setup_mlflow(experiment)
    except MlflowException as error:
        raise click.ClickException(f"the tracking store {uri} refused to open: {error.message}") from None
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_RUN_CONTEXT": json.dumps({SESSION_TAG: session})}
    # setup_mlflow made an experiment active here through MLFLOW_EXPERIMENT_ID: a script that chooses
    # none must log where it would by hand (MLflow's Default), not into the runner's last one.
    for inherited in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(inherited, None)
    log_dir = dest_path.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    before = file_stamps(dest_path)
    train, val, test = months
    steps = [
        ("preprocess_data.py", ["--raw_data_path", str(paths[0].parent), "--dest_path", str(dest_path),
                                "--train_month", train, "--val_month", val, "--test_month", test]),
        ("train.py", ["--data_path", str(dest_path)]),
        ("hpo.py", ["--data_path", str(dest_path), "--num_trials", str(trials)]),
        ("register_model.py", ["--data_path", str(dest_path), "--top_n", str(top_n)]),
    ]  # fmt: skip
    endings = {}
    for step, (name, args) in enumerate(steps, start=1):
        succeeded, endings[name] = run_script(step, scripts / name, args, env, log_dir)
        if step == 1 and not succeeded:
            click.echo("the other scripts need its pickles: not run\n")
            break

    tag_session_runs(
        session, {"data_source": source, "train_month": train, "val_month": val, "test_month": test}
    )
    search = q5_best_val_rmse(session, trials, scripts, endings.get("hpo.py"))
    answers = [
        q1_mlflow_version(),
        q2_preprocessed_files(dest_path, before, scripts),
        q3_min_samples_split(session, scripts, endings.get("train.py")),
        q4_artifact_option(),
        search,
        q6_registered_test_rmse(session, top_n, trials, scripts, endings.get("register_model.py"), search),
    ]
    print_table(answers)
    write_text_atomically(submission, json.dumps({a.key: a.value for a in answers}, indent=2) + "\n")
    click.echo(f"\nwrote {submission} ({'the solution' if who == 'solution' else 'your'} answers)\n")
    if source == "sample":
        click.echo("NOTE: these answers come from the synthetic sample, not the homework's months.\n")
    print_verdicts(answers)
    if classroom:
        record_submission(session, answers, {"data_source": source, "months": " ".join(months)})
        click.echo(
            f"\nsubmitted to {classroom['MLFLOW_TRACKING_URI']} as {classroom['MLFLOW_TRACKING_USERNAME']} "
            f"at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC: session {session} in workspace "
            f"{classroom['MLFLOW_WORKSPACE']} is what your instructor grades"
        )
    if not all(answer.passed for answer in answers):
        sys.exit(1)


if __name__ == "__main__":
    sys.exit(run_cli(run_homework))
