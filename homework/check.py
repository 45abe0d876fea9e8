"""The homework's answers, each read from where it lives, and a check of what each question required.

An answer comes from the installed MLflow, the files preprocess_data.py wrote, or the runs of one
`make homework` session in the tracking store, never from a number written down here. Its check
says what is missing or wrong; an empty list of problems is a pass.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from common import (
    BEST_MODELS_EXPERIMENT,
    HPO_EXPERIMENT,
    MODEL_NAME,
    PICKLES,
    SEARCH_BOUNDS,
    SEARCH_SPACE,
    TRAIN_EXPERIMENT,
    session_runs,
)
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer

from week2 import config

ARTIFACT_OPTION = "--default-artifact-root"
"""Q4, the option the course expects (homework/README.md says why, and what --artifacts-destination does)."""


@dataclass
class Answer:
    key: str
    question: str
    value: str | int | float | None
    evidence: str
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.value is not None and not self.problems


def pinned_version(package: str) -> str | None:
    """The version requirements.txt pins `package` to, if it does."""
    for line in (config.REPO_ROOT / "requirements.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return version.split()[0]
    return None


def q1_mlflow_version() -> Answer:
    printed = subprocess.run(
        [sys.executable, "-m", "mlflow", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()  # "mlflow, version 3.17.2"
    version = printed.rsplit(" ", 1)[-1]
    pinned = pinned_version("mlflow")
    problems = (
        []
        if version == pinned
        else [f"MLflow {version} is installed, the course pins {pinned}: run make venv"]
    )
    return Answer("q1", "installed MLflow version", version, f"`mlflow --version`: {printed}", problems)


def files_written(folder: Path, before: dict[str, int]) -> list[str]:
    """Names of the files in `folder` that are new or changed since the snapshot `before`."""
    return sorted(name for name, stamp in file_stamps(folder).items() if before.get(name) != stamp)


def file_stamps(folder: Path) -> dict[str, int]:
    """A snapshot of a folder: each file's name and modification time."""
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}


def pickle_problems(folder: Path) -> list[str]:
    """What is wrong with the pickles: the vectorizer, and an (X, y) per month that fit it."""
    with open(folder / "dv.pkl", "rb") as f_in:
        dv = pickle.load(f_in)
    if not isinstance(dv, DictVectorizer):
        return [f"dv.pkl holds a {type(dv).__name__}, not a DictVectorizer"]
    problems = []
    for name in ("train", "val", "test"):
        with open(folder / f"{name}.pkl", "rb") as f_in:
            X, y = pickle.load(f_in)
        if X.shape != (len(y), len(dv.feature_names_)):
            problems.append(
                f"{name}.pkl: X is {X.shape} for {len(y)} targets and {len(dv.feature_names_)} features"
            )
    return problems


def q2_preprocessed_files(folder: Path, before: dict[str, int]) -> Answer:
    written = files_written(folder, before)
    problems = (
        [] if written == sorted(PICKLES) else [f"expected {', '.join(PICKLES)} to be written, got {written}"]
    )
    if not problems:
        problems = pickle_problems(folder)
    return Answer(
        "q2", "files preprocess_data.py writes", len(written), f"{folder}: {', '.join(written)}", problems
    )


def q3_autolog_params(session: str) -> Answer:
    question = "parameters autolog records"
    runs = session_runs(TRAIN_EXPERIMENT, session)
    if len(runs) != 1:
        return Answer(
            "q3", question, None, "", [f"expected 1 run of train.py in {TRAIN_EXPERIMENT}, found {len(runs)}"]
        )
    run = runs[0]
    logged = run.data.params
    expected = {
        name: str(value)
        for name, value in RandomForestRegressor(max_depth=10, random_state=0).get_params().items()
    }
    problems = [
        f"{name}={logged.get(name)} logged, {value} expected"
        for name, value in expected.items()
        if logged.get(name) != value
    ]
    if "val_rmse" not in run.data.metrics:
        problems.append("no val_rmse metric")
    if not (run.outputs and run.outputs.model_outputs):
        problems.append("autolog logged no model")
    evidence = f"run {run.info.run_id} (min_samples_split={logged.get('min_samples_split')})"
    return Answer("q3", question, len(logged), evidence, problems)


def q4_artifact_option() -> Answer:
    from mlflow.cli import server

    options = {option for parameter in server.params for option in parameter.opts}
    missing = [option for option in (ARTIFACT_OPTION, "--artifacts-destination") if option not in options]
    problems = [f"`mlflow server` has no {option}" for option in missing]
    return Answer(
        "q4", "`mlflow server` option for artifacts", ARTIFACT_OPTION, "`mlflow server --help`", problems
    )


def space_problems(params: dict[str, str]) -> list[str]:
    """Where a trial's logged hyperparameters leave the course's search space."""
    if set(params) != set(SEARCH_SPACE):
        return [f"logged {sorted(params)}, the space has {sorted(SEARCH_SPACE)}"]
    problems = (
        [f"random_state={params['random_state']}"]
        if params["random_state"] != str(SEARCH_SPACE["random_state"])
        else []
    )
    for name, (low, high) in SEARCH_BOUNDS.items():
        if not (params[name].isdigit() and low <= int(params[name]) <= high):
            problems.append(f"{name}={params[name]} outside {low}..{high}")
    return problems


def q5_best_val_rmse(session: str, trials: int) -> Answer:
    question = "best validation RMSE of the search"
    runs = session_runs(HPO_EXPERIMENT, session, order_by=["metrics.rmse ASC"])
    problems = (
        [] if len(runs) == trials else [f"expected {trials} runs in {HPO_EXPERIMENT}, found {len(runs)}"]
    )
    for run in runs:
        problems += [f"run {run.info.run_id}: {p}" for p in space_problems(run.data.params)]
        if "rmse" not in run.data.metrics:
            problems.append(f"run {run.info.run_id} has no rmse")
    if not runs or "rmse" not in runs[0].data.metrics:
        return Answer("q5", question, None, "", problems)
    best = runs[0]
    value = round(best.data.metrics["rmse"], 3)
    return Answer(
        "q5", question, value, f"run {best.info.run_id} of {len(runs)} in {HPO_EXPERIMENT}", problems
    )


def q6_registered_test_rmse(session: str, top_n: int, trials: int) -> Answer:
    question = "test RMSE of the registered model"
    runs = session_runs(BEST_MODELS_EXPERIMENT, session, order_by=["metrics.test_rmse ASC"])
    top_trials = {
        t.info.run_id: t for t in session_runs(HPO_EXPERIMENT, session, ["metrics.rmse ASC"], top_n)
    }
    expected = min(top_n, trials)
    problems = (
        []
        if len(runs) == expected
        else [f"expected {expected} runs in {BEST_MODELS_EXPERIMENT}, found {len(runs)}"]
    )
    for run in runs:
        trial = top_trials.get(run.data.tags.get("hpo_run_id", ""))
        if trial is None:
            problems.append(f"run {run.info.run_id} retrained a trial outside the top {top_n}")
        elif abs(run.data.metrics.get("val_rmse", -1) - trial.data.metrics["rmse"]) > 1e-9:
            problems.append(f"run {run.info.run_id} does not reproduce its trial's validation rmse")
    if not runs or "test_rmse" not in runs[0].data.metrics:
        return Answer("q6", question, None, "", [*problems, "no run with a test_rmse"])
    best = runs[0]
    versions = mlflow.MlflowClient().search_model_versions(
        f"name = '{MODEL_NAME}' and run_id = '{best.info.run_id}'"
    )
    if not versions:
        problems.append(f"no version of {MODEL_NAME} comes from the best run {best.info.run_id}")
    registered = f", {MODEL_NAME} version {versions[0].version}" if versions else ""
    value = round(best.data.metrics["test_rmse"], 3)
    return Answer("q6", question, value, f"run {best.info.run_id}{registered}", problems)
