"""`make homework`: run the four scripts, answer the six questions, write the submission, self-check.

The scripts run in order as separate processes, exactly as a student would run them, all in one
session (a tag on every run), so earlier runs in the same tracking store do not count. Then each
answer is read back from the store or the files with its evidence, `submission.json` is written
and every question gets a pass/fail line; the exit status is 1 when a check fails.

    python homework/run_homework.py --months "2023-01 2023-02 2023-03" --trials 15
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import click
import mlflow
from check import (
    file_stamps,
    q1_mlflow_version,
    q2_preprocessed_files,
    q3_autolog_params,
    q4_artifact_option,
    q5_best_val_rmse,
    q6_registered_test_rmse,
)
from common import (
    BEST_MODELS_EXPERIMENT,
    HOMEWORK_DIR,
    HOMEWORK_MONTHS,
    HPO_EXPERIMENT,
    TRAIN_EXPERIMENT,
    session_runs,
)

from week2 import config, data


def parse_months(text: str) -> list[str]:
    """'2023-01 2023-02 2023-03' (or with commas) → the three months, each checked."""
    months = text.replace(",", " ").split()
    example = " ".join(HOMEWORK_MONTHS)
    if len(months) != 3:
        raise click.ClickException(
            f'give three months, train, validation and test, not {text!r}: e.g. MONTHS="{example}".'
        )
    try:
        return [
            config.check_month(month, name)
            for month, name in zip(months, ("train", "val", "test"), strict=True)
        ]
    except config.ConfigError as error:
        raise click.ClickException(str(error)) from None


def run_script(step: int, script: str, *args: str) -> None:
    """Run one homework script with this Python; stop with its name if it fails."""
    click.echo(click.style(f"[{step}/4] python homework/{script} {' '.join(args)}", bold=True), err=True)
    started = time.monotonic()
    finished = subprocess.run([sys.executable, str(HOMEWORK_DIR / script), *args], check=False)
    if finished.returncode:
        raise click.ClickException(
            f"{script} failed (exit {finished.returncode}): its output above says why."
        )
    click.echo(f"[{step}/4] {script} done in {time.monotonic() - started:.0f} s", err=True)


def tag_session_runs(session: str, tags: dict[str, str]) -> None:
    """Add the data tags every course run carries; only this runner knows the months and source."""
    client = mlflow.MlflowClient()
    for experiment in (TRAIN_EXPERIMENT, HPO_EXPERIMENT, BEST_MODELS_EXPERIMENT):
        for run in session_runs(experiment, session):
            for key, value in tags.items():
                client.set_tag(run.info.run_id, key, value)


def print_table(answers) -> None:
    rows = [("", "question", "answer", "evidence")]
    rows += [(a.key, a.question, "-" if a.value is None else str(a.value), a.evidence) for a in answers]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    click.echo()
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3]
        )


@click.command()
@click.option(
    "--months",
    default=" ".join(HOMEWORK_MONTHS),
    show_default=True,
    help="Train, validation and test months (green taxi), separated by spaces.",
)
@click.option("--trials", type=click.IntRange(min=1), default=15, show_default=True, help="Hyperopt trials.")
@click.option(
    "--top_n", type=click.IntRange(min=1), default=5, show_default=True, help="Trials to retrain and test."
)
@click.option(
    "--dest_path",
    type=click.Path(file_okay=False, path_type=Path),
    default=config.REPO_ROOT / "build" / "homework" / "output",
    show_default=True,
    help="Folder for the pickles.",
)
@click.option(
    "--submission",
    type=click.Path(dir_okay=False, path_type=Path),
    default=HOMEWORK_DIR / "submission.json",
    show_default=True,
    help="Where the answers are written.",
)
@click.option(
    "--tracking-uri", default=None, help="Tracking store; default MLFLOW_TRACKING_URI, else mlflow.db."
)
def run_homework(
    months: str,
    trials: int,
    top_n: int,
    dest_path: Path,
    submission: Path,
    tracking_uri: str | None,
) -> None:
    """Run preprocess_data.py, train.py, hpo.py and register_model.py; answer and check Q1-Q6."""
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri  # for this process and the four scripts
    months = parse_months(months)
    try:
        source, paths = data.resolve_months(months)
    except (config.ConfigError, data.DataError) as error:
        raise click.ClickException(str(error)) from None
    session = uuid.uuid4().hex[:12]
    click.echo(
        f"data: {source} {', '.join(months)}; tracking store: {config.tracking_uri()}; session {session}",
        err=True,
    )

    dest_path = dest_path.resolve()
    before = file_stamps(dest_path)
    train, val, test = months
    on_session = ("--session", session)
    months_args = ("--train_month", train, "--val_month", val, "--test_month", test)
    raw_data = str(paths[0].parent)
    run_script(
        1, "preprocess_data.py", "--raw_data_path", raw_data, "--dest_path", str(dest_path), *months_args
    )
    run_script(2, "train.py", "--data_path", str(dest_path), *on_session)
    run_script(3, "hpo.py", "--data_path", str(dest_path), "--num_trials", str(trials), *on_session)
    run_script(4, "register_model.py", "--data_path", str(dest_path), "--top_n", str(top_n), *on_session)

    mlflow.set_tracking_uri(config.tracking_uri())
    tag_session_runs(
        session, {"data_source": source, "train_month": train, "val_month": val, "test_month": test}
    )
    answers = [
        q1_mlflow_version(),
        q2_preprocessed_files(dest_path, before),
        q3_autolog_params(session),
        q4_artifact_option(),
        q5_best_val_rmse(session, trials),
        q6_registered_test_rmse(session, top_n, trials),
    ]
    print_table(answers)
    submission.write_text(json.dumps({a.key: a.value for a in answers}, indent=2) + "\n")
    click.echo(f"\nwrote {submission}\n")
    if source == "sample":
        click.echo("NOTE: these answers come from the synthetic sample, not the homework's months.\n")
    for answer in answers:
        verdict = click.style("PASS", fg="green") if answer.passed else click.style("FAIL", fg="red")
        click.echo(
            f"{verdict} {answer.key} {answer.question}" + "".join(f"\n     {p}" for p in answer.problems)
        )
    if not all(answer.passed for answer in answers):
        sys.exit(1)


if __name__ == "__main__":
    run_homework()
