"""The grader: each question answered from what the scripts left behind, and checked.

An answer comes from the installed MLflow, the files preprocess_data.py wrote, or the runs one
`make homework` session left in the tracking store, never from a number written down here. Its
problems say what is missing or wrong, and its hint which file and TODO to look at; an answer
with a value and no problems is a pass.
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
    PICKLES,
    SEARCH_BOUNDS,
    SEARCH_SPACE,
    TRAIN_EXPERIMENT,
    session_filter,
)
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer

from week2 import config

ARTIFACT_OPTION = "--default-artifact-root"
"""Q4, the option the course expects (homework/README.md says why, and what --artifacts-destination does)."""
AUTOLOG_TAG = "estimator_class"
"""A tag scikit-learn autolog puts on every run it logs a fit into."""


@dataclass
class Answer:
    key: str
    question: str
    value: str | int | float | None
    evidence: str = ""
    problems: list[str] = field(default_factory=list)
    hint: str = ""
    """Where to look when the answer fails: a file and its TODO."""

    @property
    def passed(self) -> bool:
        return self.value is not None and not self.problems


def session_runs(experiment: str, session: str, order_by: list[str] | None = None) -> list:
    """The active runs of `experiment` that carry the session's tag, in `order_by` order."""
    return mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=session_filter(session),
        order_by=order_by,
        max_results=1000,
        output_format="list",
    )


def runs_elsewhere(session: str, script: str, experiment: str) -> list[str]:
    """A problem naming the experiments where `script` left this session's runs, if not in `experiment`."""
    runs = mlflow.search_runs(
        search_all_experiments=True, filter_string=session_filter(session), output_format="list"
    )
    ids = {
        run.info.experiment_id
        for run in runs
        if Path(run.data.tags.get("mlflow.source.name", "")).name == script
    }
    names = sorted(mlflow.get_experiment(i).name for i in ids)
    names = [name for name in names if name != experiment]
    return (
        [f"{script} logged into {', '.join(names)}: use mlflow.set_experiment({experiment!r})"]
        if names
        else []
    )


# --- Q1, Q2, Q4: no MLflow code of yours ----------------------------------------------------------------


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
    problems = [] if version == pinned else [f"MLflow {version} is installed, the course pins {pinned}"]
    return Answer(
        "q1", "installed MLflow version", version, f"`mlflow --version`: {printed}", problems, "run make venv"
    )


def file_stamps(folder: Path) -> dict[str, int]:
    """A snapshot of a folder: each file's name and modification time."""
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}


def files_written(folder: Path, before: dict[str, int]) -> list[str]:
    """Names of the files in `folder` that are new or changed since the snapshot `before`."""
    return sorted(name for name, stamp in file_stamps(folder).items() if before.get(name) != stamp)


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


def q2_preprocessed_files(folder: Path, before: dict[str, int], scripts: Path) -> Answer:
    written = files_written(folder, before)
    problems = (
        [] if written == sorted(PICKLES) else [f"expected {', '.join(PICKLES)} to be written, got {written}"]
    )
    if not problems:
        problems = pickle_problems(folder)
    return Answer(
        "q2",
        "files preprocess_data.py writes",
        len(written) or None,
        f"{folder}: {', '.join(written)}",
        problems,
        f"look at {script_label(scripts, 'preprocess_data.py')} and its output above",
    )


def q4_artifact_option() -> Answer:
    from mlflow.cli import server

    options = {option for parameter in server.params for option in parameter.opts}
    missing = [option for option in (ARTIFACT_OPTION, "--artifacts-destination") if option not in options]
    problems = [f"`mlflow server` has no {option}" for option in missing]
    return Answer(
        "q4",
        "`mlflow server` option for the artifacts",
        ARTIFACT_OPTION,
        "`mlflow server --help`",
        problems,
        "run make venv",
    )


# --- Q3, Q5, Q6: from the runs your code logged ---------------------------------------------------------


def script_label(scripts: Path, name: str) -> str:
    """`homework/train.py` or `homework/solution/train.py`: the file a hint points to."""
    return str((scripts / name).relative_to(config.REPO_ROOT))


def q3_min_samples_split(session: str, scripts: Path) -> Answer:
    answer = Answer(
        "q3",
        "min_samples_split that autolog recorded",
        None,
        hint=f"look at {script_label(scripts, 'train.py')}, TODO (Q3)",
    )
    runs = session_runs(TRAIN_EXPERIMENT, session)
    if len(runs) != 1:
        answer.problems = [f"expected 1 run of train.py in {TRAIN_EXPERIMENT}, found {len(runs)}"]
        answer.problems += runs_elsewhere(session, "train.py", TRAIN_EXPERIMENT)
        return answer
    (run,) = runs
    logged = run.data.params
    if AUTOLOG_TAG not in run.data.tags:
        answer.problems.append(f"run {run.info.run_id} was not autologged: call mlflow.sklearn.autolog()")
    expected = RandomForestRegressor(max_depth=10, random_state=0).get_params()
    answer.problems += [
        f"{name}={logged.get(name)} logged, {value} expected (keep the forest's hyperparameters)"
        for name, value in expected.items()
        if logged.get(name) != str(value)
    ]
    if not (run.outputs and run.outputs.model_outputs):
        answer.problems.append("the run has no model: autolog logs it when fit() runs inside the run")
    if "min_samples_split" in logged:
        answer.value = int(logged["min_samples_split"])
    answer.evidence = f"run {run.info.run_id}: {len(logged)} parameters autologged"
    return answer


def space_problems(params: dict[str, str]) -> list[str]:
    """Where a trial's logged hyperparameters leave the homework's search space."""
    if set(params) != set(SEARCH_SPACE):
        return [
            f"logged {sorted(params)}, the space has {sorted(SEARCH_SPACE)}: log the params hyperopt passed"
        ]
    problems = []
    if params["random_state"] != str(SEARCH_SPACE["random_state"]):
        problems.append(f"random_state={params['random_state']}")
    for name, (low, high) in SEARCH_BOUNDS.items():
        if not (params[name].isdigit() and low <= int(params[name]) <= high):
            problems.append(f"{name}={params[name]} outside {low}..{high}")
    return problems


def q5_best_val_rmse(session: str, trials: int, scripts: Path) -> Answer:
    answer = Answer(
        "q5",
        "best validation RMSE of the search",
        None,
        hint=f"look at {script_label(scripts, 'hpo.py')}, TODO (Q5)",
    )
    runs = session_runs(HPO_EXPERIMENT, session, order_by=["metrics.rmse ASC"])
    if len(runs) != trials:
        answer.problems.append(
            f"expected {trials} runs of hpo.py in {HPO_EXPERIMENT}, one per trial, found {len(runs)}"
        )
        answer.problems += runs_elsewhere(session, "hpo.py", HPO_EXPERIMENT)
    for run in runs:
        problems = space_problems(run.data.params)
        if "rmse" not in run.data.metrics:
            problems.append('no metric "rmse"')
        if AUTOLOG_TAG in run.data.tags:
            problems.append("autologged: log the params and rmse yourself, without autolog")
        answer.problems += [f"run {run.info.run_id}: {problem}" for problem in problems]
    if runs and "rmse" in runs[0].data.metrics:
        answer.value = round(runs[0].data.metrics["rmse"], 3)
        answer.evidence = f"run {runs[0].info.run_id}, best of {len(runs)} in {HPO_EXPERIMENT}"
    return answer


def q6_registered_test_rmse(session: str, top_n: int, trials: int, scripts: Path) -> Answer:
    answer = Answer(
        "q6",
        "test RMSE of the registered model",
        None,
        hint=f"look at {script_label(scripts, 'register_model.py')}, TODO (Q6)",
    )
    runs = session_runs(BEST_MODELS_EXPERIMENT, session, order_by=["metrics.test_rmse ASC"])
    expected = min(top_n, trials)
    if len(runs) != expected or any("test_rmse" not in run.data.metrics for run in runs):
        answer.problems.append(
            f"expected {expected} runs with a test_rmse in {BEST_MODELS_EXPERIMENT}, found {len(runs)}"
            + (" (they come after the search: see Q5 first)" if not runs else "")
        )
        return answer
    client = mlflow.MlflowClient()
    by_id = {run.info.run_id: run for run in runs}
    versions = [
        version for run_id in by_id for version in client.search_model_versions(f"run_id = '{run_id}'")
    ]
    best = runs[0]
    if not versions:
        answer.problems.append("no model version comes from this session's runs: register the best one")
        return answer
    registered = by_id[max(versions, key=lambda v: int(v.creation_timestamp)).run_id]
    if registered.info.run_id != best.info.run_id:
        chosen, lowest = registered.data.metrics["test_rmse"], best.data.metrics["test_rmse"]
        answer.problems.append(
            f"registered run {registered.info.run_id} (test_rmse {chosen:.3f}), "
            f"but run {best.info.run_id} has the lowest ({lowest:.3f}): "
            'order search_runs by "metrics.test_rmse ASC"'
        )
    version = next(v for v in versions if v.run_id == registered.info.run_id)
    answer.value = round(registered.data.metrics["test_rmse"], 3)
    answer.evidence = f"run {registered.info.run_id}, {version.name} version {version.version}"
    return answer
