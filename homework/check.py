"""The grader: each question answered from what the scripts left behind, and checked.

An answer comes from the installed MLflow, the files preprocess_data.py wrote, or the runs one
`make homework` session left in the tracking store, never from a number written down here. Its
problems say what is missing or wrong, and its hint which file and TODO to look at; an answer
with a value and no problems is a pass.
"""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from common import PICKLES, SEARCH_BOUNDS, SEARCH_SPACE, session_filter
from mlflow.entities import Run
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer

from week2 import config

ARTIFACT_OPTION = "--default-artifact-root"
"""Q4, the option the course expects (homework/README.md says why, and what --artifacts-destination does)."""
AUTOLOG_TAG = "estimator_class"
"""A tag scikit-learn autolog puts on every run it logs a fit into."""
SOURCE_TAG = "mlflow.source.name"
PARENT_TAG = "mlflow.parentRunId"


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


def session_runs(session: str) -> list[Run]:
    """The active runs that carry the session's tag, in every experiment, oldest first."""
    return mlflow.search_runs(
        search_all_experiments=True,
        filter_string=session_filter(session),
        order_by=["attributes.start_time ASC"],
        max_results=5000,
        output_format="list",
    )


def started_by(runs: list[Run], script: str) -> list[Run]:
    """The runs `script` started (MLflow records the script as `mlflow.source.name`)."""
    return [run for run in runs if Path(run.data.tags.get(SOURCE_TAG, "")).name == script]


def experiment_name(run: Run) -> str:
    return mlflow.get_experiment(run.info.experiment_id).name


# --- a crash, in one line -------------------------------------------------------------------------------

MESSAGE_LIMIT = 200
"""Characters of an exception's message shown in a FAIL line; the script's log has all of it."""
PITFALLS = [
    (
        r"unexpected keyword argument 'squared'",
        "scikit-learn 1.6 removed mean_squared_error's squared=: compute the RMSE with "
        "root_mean_squared_error(y_true, y_pred), from sklearn.metrics",
    ),
    (
        r"untrusted types",
        "MLflow saves scikit-learn models with skops, which refuses the forest's trees: autolog already "
        'logs the model (drop your log_model call), or pass serialization_format="cloudpickle"',
    ),
    (
        r"Unable to find a logged_model with artifact_path (\S+) under run (\w+)",
        "run {2} logged no model called {1}: keep mlflow.sklearn.autolog() on while the forest is "
        "trained (it logs the model), and register models:/<model_id> of a run that has one",
    ),
    (
        r"The '(\w+)' parameter of \w+ must be .* Got '[^']*' instead",
        "MLflow stores parameters as strings: turn each back into a number, e.g. int(params[{1!r}]), "
        "before you pass it to the forest",
    ),
    (
        r"The '(\w+)' parameter of \w+ must be an int.* Got [0-9.]+ instead",
        "the forest takes whole numbers: wrap the choice in scope.int(hp.quniform(...)) or convert it "
        "with int(...)",
    ),
    (
        r"Connection refused|Max retries exceeded|Failed to establish a new connection",
        "no tracking server answers the address in your script: delete its set_tracking_uri line, "
        "make homework sets the store",
    ),
]
"""Known ways a homework script crashes under today's libraries: a pattern of the exception's message,
and the one-line tip shown with it ({1}, {2}: the pattern's groups)."""


@dataclass
class Crash:
    """The exception that ended a script (homework/harness.py reports it) and where it was raised."""

    type: str
    message: str
    file: str
    line: int | None

    def where(self) -> str:
        return f"{repo_label(self.file)}, line {self.line}" if self.line else repo_label(self.file)

    def summary(self) -> str:
        """`Type: message`, on one line and cut to MESSAGE_LIMIT characters."""
        message = self.message if len(self.message) <= MESSAGE_LIMIT else self.message[:MESSAGE_LIMIT] + "…"
        return f"{self.type}: {message}" if message else self.type

    def tip(self) -> str | None:
        for pattern, tip in PITFALLS:
            found = re.search(pattern, self.message, re.IGNORECASE)
            if found:
                return tip.format(None, *found.groups())
        return None


@dataclass
class Ending:
    """How a script's run under `make homework` ended, as homework/harness.py reported it."""

    crash: Crash | None = None
    elsewhere: list[dict] = field(default_factory=list)
    """The script's own tracking URIs on another machine (`uri`, `line`): its runs went there."""

    @classmethod
    def read(cls, report: Path) -> Ending:
        """The harness's report; an empty Ending when the script was killed before writing it."""
        try:
            content = json.loads(Path(report).read_text())
        except (OSError, ValueError):
            return cls()
        crash = content.get("crash")
        return cls(Crash(**crash) if crash else None, content.get("kept", []))

    def explains(self, answer: Answer, script: str, file: Path) -> bool:
        """Put this ending in `answer` when it is why the question fails (a crash, runs sent away)."""
        if self.crash:
            answer.problems.append(f"{script} crashed: {self.crash.summary()}")
            if tip := self.crash.tip():
                answer.problems.append(f"tip: {tip}")
            answer.hint = f"look at {self.crash.where()}"
            return True
        if self.elsewhere:
            uri, line = self.elsewhere[0]["uri"], self.elsewhere[0]["line"]
            answer.problems.append(
                f"{script} sent its runs to {uri}, another machine, not to the store make homework grades"
            )
            answer.hint = f"look at {repo_label(file)}, line {line}: delete that set_tracking_uri"
            return True
        return False


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


def repo_label(path: Path) -> str:
    """`path` from the repository's root when it is inside it (`homework/train.py`), else whole."""
    path = Path(path).absolute()
    return str(path.relative_to(config.REPO_ROOT) if path.is_relative_to(config.REPO_ROOT) else path)


def script_label(scripts: Path, name: str) -> str:
    """`homework/train.py` or `homework/solution/train.py`: the file a hint points to."""
    return repo_label(scripts / name)


def q3_min_samples_split(session: str, scripts: Path, ending: Ending | None = None) -> Answer:
    """The run train.py autologged in this session, in whatever experiment the student chose."""
    answer = Answer(
        "q3",
        "min_samples_split that autolog recorded",
        None,
        hint=f"look at {script_label(scripts, 'train.py')}, TODO (Q3)",
    )
    if ending and ending.explains(answer, "train.py", scripts / "train.py"):
        return answer
    runs = started_by(session_runs(session), "train.py")
    autologged = [run for run in runs if AUTOLOG_TAG in run.data.tags]
    candidates = autologged or runs
    if len(candidates) != 1:
        answer.problems = [
            f"expected 1 run of train.py, found {len(candidates)}"
            + (": train the forest inside `with mlflow.start_run():`" if not candidates else "")
        ]
        return answer
    (run,) = candidates
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
    answer.evidence = f"run {run.info.run_id} in {experiment_name(run)}: {len(logged)} parameters autologged"
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


def trial_runs(session: str) -> list[Run]:
    """The runs hpo.py started, one per trial; a parent run that holds nested trials is not one."""
    runs = started_by(session_runs(session), "hpo.py")
    parents = {run.data.tags.get(PARENT_TAG) for run in runs}
    return [run for run in runs if run.info.run_id not in parents]


def counted(problems: list[str], total: int) -> list[str]:
    """Each distinct problem once, with how many of the `total` runs have it."""
    return [
        f"{count} of {total} runs: {problem}" if total > 1 else problem
        for problem, count in Counter(problems).items()
    ]


def q5_best_val_rmse(session: str, trials: int, scripts: Path, ending: Ending | None = None) -> Answer:
    answer = Answer(
        "q5",
        "best validation RMSE of the search",
        None,
        hint=f"look at {script_label(scripts, 'hpo.py')}, TODO (Q5)",
    )
    if ending and ending.explains(answer, "hpo.py", scripts / "hpo.py"):
        return answer
    runs = trial_runs(session)
    if len(runs) != trials:
        answer.problems.append(f"expected {trials} runs of hpo.py, one per trial, found {len(runs)}")
    scored = [run for run in runs if "rmse" in run.data.metrics]
    if runs and not scored:
        others = sorted({name for run in runs for name in run.data.metrics if "rmse" in name.lower()})
        answer.problems.append(
            f"the trials log the validation RMSE as {', '.join(map(repr, others))}: log it as 'rmse' "
            "(register_model.py orders the search by metrics.rmse)"
            if others
            else 'no trial logs the validation RMSE: mlflow.log_metric("rmse", rmse) in each trial\'s run'
        )
    problems = [problem for run in runs for problem in space_problems(run.data.params)]
    problems += ['no metric "rmse"' for run in runs if scored and run not in scored]
    problems += [
        "autologged: log the params and rmse yourself, without autolog"
        for run in runs
        if AUTOLOG_TAG in run.data.tags
    ]
    answer.problems += counted(problems, len(runs))
    if scored:
        best = min(scored, key=lambda run: run.data.metrics["rmse"])
        answer.value = round(best.data.metrics["rmse"], 3)
        answer.evidence = f"run {best.info.run_id}, best of {len(runs)} in {experiment_name(best)}"
    return answer


def retrained_runs(session: str) -> list[Run]:
    """The runs that retrained trials: those register_model.py started, and any with a test_rmse."""
    runs = session_runs(session)
    ours = {run.info.run_id for run in started_by(runs, "register_model.py")}
    return [run for run in runs if run.info.run_id in ours or "test_rmse" in run.data.metrics]


def q6_registered_test_rmse(
    session: str,
    top_n: int,
    trials: int,
    scripts: Path,
    ending: Ending | None = None,
    search: Answer | None = None,
) -> Answer:
    """The retrained run with the lowest test RMSE, and the model version registered from it.

    `search`: Q5's answer; register_model.py retrains the search's best trials, so when Q5 failed
    this question says to look there first rather than blame register_model.py.
    """
    answer = Answer(
        "q6",
        "test RMSE of the registered model",
        None,
        hint=f"look at {script_label(scripts, 'register_model.py')}, TODO (Q6)",
    )
    see_q5 = "register_model.py retrains the best trials of the search: see Q5 first"
    if ending and ending.explains(answer, "register_model.py", scripts / "register_model.py"):
        answer.problems += [see_q5] if search is not None and not search.passed else []
        return answer
    if search is not None and not search.passed:
        answer.problems.append(see_q5)
        answer.hint = search.hint
        return answer
    runs = retrained_runs(session)
    tested = [run for run in runs if "test_rmse" in run.data.metrics]
    tested.sort(key=lambda run: run.data.metrics["test_rmse"])
    expected = min(top_n, trials)
    if len(tested) != expected:
        answer.problems.append(
            f"expected {expected} retrained runs with a test_rmse, found {len(tested)}"
            + (f" ({len(runs)} runs of register_model.py)" if len(runs) != len(tested) else "")
        )
        return answer
    client = mlflow.MlflowClient()
    by_id = {run.info.run_id: run for run in tested}
    versions = [
        version for run_id in by_id for version in client.search_model_versions(f"run_id = '{run_id}'")
    ]
    best = tested[0]
    if not versions:
        answer.problems.append(
            "no model version comes from this session's retrained runs: register the best one "
            "with mlflow.register_model"
        )
        return answer
    version = max(versions, key=lambda v: int(v.creation_timestamp))
    registered = by_id[version.run_id]
    if registered.info.run_id != best.info.run_id:
        chosen, lowest = registered.data.metrics["test_rmse"], best.data.metrics["test_rmse"]
        answer.problems.append(
            f"registered run {registered.info.run_id} (test_rmse {chosen:.3f}), "
            f"but run {best.info.run_id} has the lowest ({lowest:.3f}): "
            'order search_runs by "metrics.test_rmse ASC"'
        )
    if not (registered.outputs and registered.outputs.model_outputs):
        answer.problems.append(
            f"{version.name} version {version.version} comes from run {registered.info.run_id}, which "
            "logged no model: keep mlflow.sklearn.autolog() on while the forest is retrained"
        )
    answer.value = round(registered.data.metrics["test_rmse"], 3)
    answer.evidence = (
        f"run {registered.info.run_id} in {experiment_name(registered)}, "
        f"{version.name} version {version.version}"
    )
    return answer
