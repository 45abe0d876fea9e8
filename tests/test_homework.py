"""The homework: untouched starters fail each MLflow question with a hint, the solution passes.

`make homework`'s runner is run as a student runs it, in a process of its own with a private
tracking store: on the synthetic sample with few trials (the untouched starters, then the reference
solution), and on the real 2023 months when this machine has them (the solution, for the official
answers). Deprecations our scripts or `week2` trigger fail those processes (PYTHONWARNINGS), as
the suite's filters do in this one.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import re
import subprocess
import sys
import time
import tokenize
from dataclasses import dataclass
from pathlib import Path
from token import NAME

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import REPO_ROOT
from scipy import sparse
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer

from week2.config import store_settings

HOMEWORK = REPO_ROOT / "homework"
MONTHS = ("2023-01", "2023-02", "2023-03")
SAMPLE_TRIALS, SAMPLE_TOP_N = 2, 2
OUR_MODULES = ("__main__", "common", "check", "week2.config", "week2.data", "week2.utils", "week2.tracking")
STRICT_WARNINGS = ",".join(
    f"error::{category}:{module}"
    for category in ("DeprecationWarning", "FutureWarning")
    for module in OUR_MODULES
)
TODO_OF = {"q3": "train.py", "q5": "hpo.py", "q6": "register_model.py"}
"""The MLflow questions, and the script whose TODO answers each."""
OFFICIAL_2025 = {"q2": 4, "q3": 2, "q4": "--default-artifact-root", "q5": 5.335, "q6": 5.567}
"""The answers the MLOps Zoomcamp 2025 homework lists for green taxi 2023-01..03 (15 trials, top 5)."""


@dataclass
class HomeworkRun:
    folder: Path
    output: str
    returncode: int
    seconds: float

    @property
    def uri(self) -> str:
        return store_settings(self.folder)["MLFLOW_TRACKING_URI"]

    @property
    def submission(self) -> dict:
        return json.loads((self.folder / "submission.json").read_text())

    @property
    def session(self) -> str:
        return self.output.split("; session ", 1)[1].split()[0]

    def pickle(self, name: str):
        with open(self.folder / "output" / name, "rb") as f_in:
            return pickle.load(f_in)

    def peak_gb(self, script: str) -> float:
        """The peak memory the runner reported for `script`."""
        return float(re.search(rf"{re.escape(script)} done in .*peak memory ([0-9.]+) GB", self.output)[1])


def start_homework(folder: Path, data_mode: str, trials: int, top_n: int, solution: bool, **env: str):
    """Start `python homework/run_homework.py` in its own process, store and output folder under
    `folder`; return the function that waits for it and gives its HomeworkRun."""
    environment = {
        **os.environ,
        **store_settings(folder),
        "WEEK2_DATA": data_mode,
        "PYTHONWARNINGS": STRICT_WARNINGS,
        **env,
    }
    command = [sys.executable, str(HOMEWORK / "run_homework.py"), "--months", " ".join(MONTHS)]
    command += ["--trials", str(trials), "--top_n", str(top_n), "--dest_path", str(folder / "output")]
    command += ["--submission", str(folder / "submission.json"), "--solution", "1" if solution else "0"]
    log = folder / "run_homework.log"  # a file, not a pipe: two runs side by side never wait on a reader
    started = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=subprocess.STDOUT, text=True)

    def finish() -> HomeworkRun:
        try:
            process.wait(timeout=1800)
        finally:
            process.kill()
        return HomeworkRun(folder, log.read_text(), process.returncode, time.monotonic() - started)

    return finish


@pytest.fixture(scope="module")
def sample_runs(tmp_path_factory) -> dict[str, HomeworkRun]:
    """The untouched starters and the solution on the sample, side by side (one core each)."""
    waiting = {}
    for who in ("starters", "solution"):
        folder = tmp_path_factory.mktemp(f"homework-{who}")
        waiting[who] = start_homework(
            folder,
            "sample",
            SAMPLE_TRIALS,
            SAMPLE_TOP_N,
            solution=who == "solution",
            WEEK2_DATA_DIR=str(folder / "data"),  # its own small months, not the suite's sample
            WEEK2_SAMPLE_ROWS="1000",
        )
    return {who: finish() for who, finish in waiting.items()}


@pytest.fixture(scope="module")
def starters_run(sample_runs) -> HomeworkRun:
    return sample_runs["starters"]


@pytest.fixture(scope="module")
def solution_run(sample_runs) -> HomeworkRun:
    run = sample_runs["solution"]
    assert run.returncode == 0, run.output
    return run


@pytest.fixture(scope="module")
def scripts():
    """The starters' modules, imported as the scripts import each other (their folder on the path)."""
    sys.path.insert(0, str(HOMEWORK))
    try:
        names = ("common", "check", "preprocess_data", "train", "hpo", "register_model", "run_homework")
        yield {name: importlib.import_module(name) for name in names}
    finally:
        sys.path.remove(str(HOMEWORK))


def runs_in(check, session: str, experiment: str, metric: str | None = None) -> list:
    """The session's runs in `experiment`, by ascending `metric` when given."""
    runs = [run for run in check.session_runs(session) if check.experiment_name(run) == experiment]
    return sorted(runs, key=lambda run: run.data.metrics[metric]) if metric else runs


@pytest.fixture
def store_of(monkeypatch):
    """Point this process at a homework run's store; restore the default afterwards."""

    def use(run: HomeworkRun) -> mlflow.MlflowClient:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", run.uri)
        mlflow.set_tracking_uri(run.uri)
        return mlflow.MlflowClient()

    yield use
    mlflow.set_tracking_uri(None)


def verdicts(output: str) -> list[list[str]]:
    return [line.split()[:2] for line in output.splitlines() if line.startswith(("PASS", "FAIL"))]


def verdict_block(output: str, key: str) -> str:
    """The FAIL/PASS line of question `key` and the indented lines under it."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] in (["FAIL", key], ["PASS", key]))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("     ")), len(lines))
    return "\n".join(lines[start:end])


# --- the untouched starters ----------------------------------------------------------------------------


@pytest.mark.slow
def test_untouched_starters_fail_each_mlflow_question_with_its_file_and_todo(starters_run):
    output = starters_run.output
    assert starters_run.returncode == 1, output
    assert "Traceback" not in output
    assert verdicts(output) == [
        ["PASS", "q1"], ["PASS", "q2"], ["FAIL", "q3"], ["PASS", "q4"], ["FAIL", "q5"], ["FAIL", "q6"],
    ]  # fmt: skip
    for key, script in TODO_OF.items():
        todo = f"TODO ({key.upper()})"
        assert todo in (HOMEWORK / script).read_text()  # the hints point at TODOs that are there
        if key != "q6":
            assert f"look at homework/{script}, {todo}" in verdict_block(output, key)
    # Q6 retrains the search's trials: with the search missing, it points there, not at its own TODO.
    assert "expected 2 runs of hpo.py, one per trial, found 0" in verdict_block(output, "q5")
    assert "see Q5 first" in verdict_block(output, "q6")
    assert "look at homework/hpo.py, TODO (Q5)" in verdict_block(output, "q6")
    # register_model.py's given part stops in one line when the search logged nothing.
    assert "error: no runs in random-forest-hyperopt to retrain: do the TODO (Q5) in hpo.py" in output
    submission = starters_run.submission
    assert submission["q1"] == mlflow.__version__ and submission["q2"] == 4
    assert submission["q3"] is None and submission["q5"] is None and submission["q6"] is None


def test_a_crashing_script_shows_its_exception_and_line_not_its_traceback(scripts, tmp_path, capsys):
    script = tmp_path / "broken.py"
    script.write_text(
        "def check(answer):\n"
        "    raise ValueError('the student made a typo\\n  over two lines')\n"
        "print('working')\n"
        "check(42)\n"
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    succeeded, ending = scripts["run_homework"].run_script(1, script, [], dict(os.environ), logs)
    crash = ending.crash
    shown = capsys.readouterr().out
    assert not succeeded and "working" in shown and "Traceback" not in shown
    # The exception itself, on one line, where it was raised: not the traceback's last line.
    assert f"ValueError: the student made a typo over two lines ({script}, line 2)" in shown
    assert (crash.type, crash.line, crash.where()) == ("ValueError", 2, f"{script}, line 2")
    assert "Traceback (most recent call last):" in (logs / "broken.log").read_text()


# --- the reference solution on the sample --------------------------------------------------------------


@pytest.mark.slow
def test_solution_passes_every_question_on_the_sample(solution_run):
    assert verdicts(solution_run.output) == [["PASS", f"q{i}"] for i in range(1, 7)]
    assert "scripts: homework/solution/" in solution_run.output and "Traceback" not in solution_run.output
    assert "these answers come from the synthetic sample" in solution_run.output  # said, not hidden
    submission = solution_run.submission
    assert list(submission) == ["q1", "q2", "q3", "q4", "q5", "q6"]
    assert submission["q1"] == mlflow.__version__
    assert submission["q2"] == 4 and submission["q3"] == 2 and submission["q4"] == "--default-artifact-root"
    for key in ("q5", "q6"):
        assert type(submission[key]) is float and 0 < submission[key] < 60, submission


def assert_pickles_follow_the_homework_steps(run: HomeworkRun, paths: list[Path]) -> None:
    """The pickles equal the official homework's steps, written out here independently."""
    assert sorted(p.name for p in (run.folder / "output").iterdir()) == [
        "dv.pkl",
        "test.pkl",
        "train.pkl",
        "val.pkl",
    ]
    frames = []
    for path in paths:
        df = pd.read_parquet(path)
        df["duration"] = (df.lpep_dropoff_datetime - df.lpep_pickup_datetime).apply(
            lambda td: td.total_seconds() / 60
        )
        df = df[(df.duration >= 1) & (df.duration <= 60)].copy()
        df[["PULocationID", "DOLocationID"]] = df[["PULocationID", "DOLocationID"]].astype(str)
        df["PU_DO"] = df["PULocationID"] + "_" + df["DOLocationID"]
        frames.append(df)
    dv = DictVectorizer()
    expected = [dv.fit_transform(frames[0][["PU_DO", "trip_distance"]].to_dict(orient="records"))]
    expected += [dv.transform(df[["PU_DO", "trip_distance"]].to_dict(orient="records")) for df in frames[1:]]

    assert run.pickle("dv.pkl").feature_names_ == dv.feature_names_
    assert "trip_distance" in dv.feature_names_
    assert any(name.startswith("PU_DO=") for name in dv.feature_names_)
    for name, wanted, df in zip(("train", "val", "test"), expected, frames, strict=True):
        written, y = run.pickle(f"{name}.pkl")
        assert written.shape == wanted.shape and (written != wanted).nnz == 0, name
        np.testing.assert_array_equal(y, df.duration.to_numpy())


@pytest.mark.slow
def test_preprocessing_writes_the_homework_pickles_exactly(solution_run):
    sample = solution_run.folder / "data" / "sample"
    assert_pickles_follow_the_homework_steps(
        solution_run, [sample / f"green_tripdata_{month}.parquet" for month in MONTHS]
    )


@pytest.mark.slow
def test_store_holds_the_runs_each_question_needs(solution_run, store_of, scripts):
    client = store_of(solution_run)
    common, check = scripts["common"], scripts["check"]
    session = solution_run.session
    submission = solution_run.submission

    (train_run,) = runs_in(check, session, common.TRAIN_EXPERIMENT)
    assert train_run.data.params["min_samples_split"] == str(submission["q3"]) == "2"
    assert len(train_run.data.params) == len(RandomForestRegressor().get_params())  # older cohorts' Q3
    assert train_run.data.params["max_depth"] == "10" and train_run.data.params["random_state"] == "0"
    assert "training_root_mean_squared_error" in train_run.data.metrics  # autolog's training metrics
    assert train_run.outputs.model_outputs, "autolog logged the model"

    trials = runs_in(check, session, common.HPO_EXPERIMENT, "rmse")
    assert len(trials) == SAMPLE_TRIALS
    assert {tuple(sorted(t.data.params)) for t in trials} == {tuple(sorted(common.SEARCH_SPACE))}
    assert round(trials[0].data.metrics["rmse"], 3) == submission["q5"]

    retrained = runs_in(check, session, common.BEST_MODELS_EXPERIMENT, "test_rmse")
    assert {r.data.tags["hpo_run_id"] for r in retrained} == {t.info.run_id for t in trials[:SAMPLE_TOP_N]}
    for run in retrained:  # the retrained forest is the trial's: same validation RMSE
        trial = next(t for t in trials if t.info.run_id == run.data.tags["hpo_run_id"])
        assert run.data.metrics["val_rmse"] == pytest.approx(trial.data.metrics["rmse"], rel=1e-12)
    best = retrained[0]
    assert round(best.data.metrics["test_rmse"], 3) == submission["q6"]
    assert all(r.data.tags["data_source"] == "sample" for r in [train_run, *trials, *retrained])

    (version,) = client.search_model_versions("name = 'random-forest-best-model'")
    assert version.run_id == best.info.run_id
    # The registered model is the one that scored q6: load it and score the test month again.
    model = mlflow.sklearn.load_model(f"models:/random-forest-best-model/{version.version}")
    X_test, y_test = solution_run.pickle("test.pkl")
    rmse = float(np.sqrt(np.mean((model.predict(X_test) - y_test) ** 2)))
    assert rmse == pytest.approx(best.data.metrics["test_rmse"], rel=1e-9)


@pytest.mark.slow
def test_grader_fails_what_the_store_does_not_hold(solution_run, store_of, scripts):
    store_of(solution_run)
    check, session = scripts["check"], solution_run.session
    solution = HOMEWORK / "solution"
    assert check.q5_best_val_rmse(session, SAMPLE_TRIALS, solution).passed

    more_trials = check.q5_best_val_rmse(session, SAMPLE_TRIALS + 1, solution)
    assert not more_trials.passed and f"expected {SAMPLE_TRIALS + 1} runs" in more_trials.problems[0]
    assert more_trials.hint == "look at homework/solution/hpo.py, TODO (Q5)"
    assert not check.q3_min_samples_split("no-such-session", HOMEWORK).passed
    assert not check.q6_registered_test_rmse("no-such-session", SAMPLE_TOP_N, SAMPLE_TRIALS, HOMEWORK).passed
    output = solution_run.folder / "output"
    nothing_new = check.q2_preprocessed_files(output, check.file_stamps(output), HOMEWORK)
    assert not nothing_new.passed


@pytest.mark.slow
def test_grader_fails_a_model_registered_from_the_wrong_run(solution_run, store_of, scripts):
    """Last of the sample tests: it registers one more version in the solution's store."""
    store_of(solution_run)
    check, common, session = scripts["check"], scripts["common"], solution_run.session
    worst = runs_in(check, session, common.BEST_MODELS_EXPERIMENT, "test_rmse")[-1]
    mlflow.register_model(f"models:/{worst.outputs.model_outputs[0].model_id}", "another-name")
    answer = check.q6_registered_test_rmse(session, SAMPLE_TOP_N, SAMPLE_TRIALS, HOMEWORK)
    assert not answer.passed
    assert f"registered run {worst.info.run_id}" in answer.problems[0]
    assert 'order search_runs by "metrics.test_rmse ASC"' in answer.problems[0]


# --- the memory trick ----------------------------------------------------------------------------------


class CountingDense(sparse.csr_matrix):
    dense_copies = 0

    def toarray(self, order=None, out=None):
        CountingDense.dense_copies += 1
        return super().toarray(order, out)


def test_autolog_records_the_same_from_a_matrix_it_cannot_make_dense(scripts, store):
    common = scripts["common"]
    rng = np.random.default_rng(0)
    X = sparse.random(300, 40, density=0.05, format="csr", random_state=0)
    y = rng.normal(size=300)
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    # An artifact root of its own: by default MLflow would put the artifacts in ./mlruns of the checkout.
    artifacts = (store / "mlartifacts").as_uri()
    experiment_id = mlflow.create_experiment("sparse-autolog", artifact_location=artifacts)
    mlflow.set_experiment(experiment_id=experiment_id)
    mlflow.sklearn.autolog(log_datasets=False)
    try:
        recorded = {}
        for name, matrix in (("plain", CountingDense(X)), ("sparse_only", common.sparse_for_autolog(X))):
            with mlflow.start_run() as run:
                forest = RandomForestRegressor(n_estimators=5, random_state=0).fit(matrix, y)
            recorded[name] = (mlflow.get_run(run.info.run_id), forest)
    finally:
        mlflow.sklearn.autolog(disable=True)
        mlflow.set_tracking_uri(None)
    # Why the trick is there: autolog makes the training matrix dense even with log_datasets=False.
    assert CountingDense.dense_copies >= 1
    (plain, plain_forest), (kept, kept_forest) = recorded["plain"], recorded["sparse_only"]
    assert kept.data.params == plain.data.params and kept.data.params["min_samples_split"] == "2"
    assert set(kept.data.metrics) == set(plain.data.metrics) and "training_score" in kept.data.metrics
    assert kept.data.metrics == pytest.approx(plain.data.metrics)
    assert kept.outputs.model_outputs
    np.testing.assert_array_equal(kept_forest.predict(X), plain_forest.predict(X))
    with pytest.raises(TypeError, match="kept sparse on purpose"):
        common.sparse_for_autolog(X).toarray()


# --- the scripts' contract -----------------------------------------------------------------------------


def test_register_model_rebuilds_logged_parameters_without_the_course_crash(scripts):
    rebuild_params = scripts["common"].rebuild_params
    X, y = np.arange(40.0).reshape(20, 2), np.arange(20.0)
    forest = RandomForestRegressor(max_depth=3, n_estimators=5, random_state=42)
    logged = {name: str(value) for name, value in forest.get_params().items()}  # what autolog stores
    # The course's script passed the strings on: the forest refuses 'True' for bootstrap.
    with pytest.raises(ValueError, match="bootstrap"):
        RandomForestRegressor(**{**logged, **{k: int(logged[k]) for k in ("max_depth", "n_estimators")}}).fit(
            X, y
        )

    params = rebuild_params({**logged, "max_depth": "3.0", "Train-data-path": "./output/train.pkl"})
    assert params == forest.get_params()
    assert type(params["max_depth"]) is int and params["bootstrap"] is True and params["n_jobs"] is None
    RandomForestRegressor(**params).fit(X, y)


def test_scripts_make_no_mlflow_call_at_import_and_write_no_tracking_uri(tmp_path):
    uri_file = tmp_path / "untouched.db"
    code = (
        "import sys, importlib.util; sys.path.insert(0, sys.argv[1]); import mlflow\n"
        "for name in ('preprocess_data', 'train', 'hpo', 'register_model', 'run_homework', 'check'):\n"
        "    __import__(name)\n"
        "for name in ('preprocess_data', 'train', 'hpo', 'register_model'):\n"
        "    path = f'{sys.argv[1]}/solution/{name}.py'\n"
        "    spec = importlib.util.spec_from_file_location(f'solution_{name}', path)\n"
        "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "from mlflow.tracking._tracking_service.utils import _tracking_uri\n"
        "print('set' if _tracking_uri else 'unset')\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{uri_file}", "PYTHONWARNINGS": STRICT_WARNINGS}
    done = subprocess.run(
        [sys.executable, "-c", code, str(HOMEWORK)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "unset" and not uri_file.exists()
    # harness.py is the one file that must name it: it keeps a script's own call on the graded store.
    for script in [*HOMEWORK.glob("*.py"), *HOMEWORK.glob("solution/*.py")]:
        if script.name == "harness.py":
            continue
        with open(script) as source:
            names = {
                token.string for token in tokenize.generate_tokens(source.readline) if token.type == NAME
            }
        assert "set_tracking_uri" not in names, (
            f"{script} sets a tracking URI: MLflow reads it from the environment"
        )


@pytest.mark.parametrize(
    ("script", "options"),
    [
        ("preprocess_data", ["--raw_data_path", "--dest_path", "--train_month", "--test_month"]),
        ("train", ["--data_path"]),
        ("hpo", ["--data_path", "--num_trials"]),
        ("register_model", ["--data_path", "--top_n"]),
        ("run_homework", ["--months", "--trials", "--solution", "--submission"]),
    ],
)
def test_each_script_explains_its_options(scripts, script, options):
    module = scripts[script]
    command = next(obj for obj in vars(module).values() if obj.__class__.__name__ == "Command")
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0
    assert all(option in result.output for option in options), result.output


A_FILE = "{tmp}/a-file"
A_FOLDER = "{tmp}"
ARABIC_2023 = "\u0662\u0660\u0662\u0663"  # "2023" in Arabic-Indic digits, which int() and \d accept


@pytest.mark.parametrize(
    ("script", "arguments", "message"),
    [
        ("run_homework", ["--months", "2023-01 2023-02 2023-03 "], "--months"),
        ("run_homework", ["--months", "2023-01  2023-02 2023-03"], "has a stray space or comma"),
        ("run_homework", ["--months", "2023-01 2023-02\n2023-03"], "--months"),
        ("run_homework", ["--months", f"2023-01 2023-02 {ARABIC_2023}-03"], "--months"),
        ("run_homework", ["--months", "0000-01 2023-02 2023-03"], "has year 0"),
        ("run_homework", ["--months", "2023-01 2023-02"], "is not three months"),
        ("run_homework", ["--trials", "-3"], "'-3' is not a whole number of 1 or more: write e.g. TRIALS=15"),
        ("run_homework", ["--trials", "many"], "--trials"),
        ("run_homework", ["--trials", "\u0661\u0665"], "--trials"),
        ("run_homework", ["--solution", "yes"], "--solution"),
        ("run_homework", ["--dest_path", A_FILE], "is a file"),
        ("run_homework", ["--submission", A_FOLDER], "is a folder"),
        ("preprocess_data", ["--train_month", " 2023-01"], "--train_month"),
        ("preprocess_data", ["--val_month", "2023-2"], "'2023-2' is not a month YYYY-MM"),
        ("preprocess_data", ["--test_month", "0000-03"], "has year 0"),
        ("preprocess_data", ["--raw_data_path", A_FILE], "--raw_data_path"),
        ("preprocess_data", ["--dest_path", A_FILE], "is a file"),
        ("train", ["--data_path", A_FILE], "is a file: give the folder preprocess_data.py wrote"),
        ("hpo", ["--num_trials", "0"], "'0' is not a whole number of 1 or more: write e.g. 15"),
        ("register_model", ["--top_n", "-1"], "--top_n"),
    ],
)
def test_malformed_values_get_one_line_status_2_and_nothing_is_written(
    scripts, tmp_path, monkeypatch, capsys, script, arguments, message
):
    (tmp_path / "a-file").write_text("not a folder\n")
    before = sorted(tmp_path.rglob("*"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    module = scripts[script]
    command = next(obj for obj in vars(module).values() if obj.__class__.__name__ == "Command")
    status = scripts["common"].run_cli(command, [a.format(tmp=tmp_path) for a in arguments])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("error: ") and message in captured.err
    assert sorted(tmp_path.rglob("*")) == before  # no store, no folder, no file


def test_a_missing_step_is_one_line_too(scripts, tmp_path, capsys):
    status = scripts["common"].run_cli(scripts["train"].run_train, ["--data_path", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "train.pkl not found: run preprocess_data.py --dest_path" in err


def test_make_homework_passes_months_trials_and_solution_through():
    done = subprocess.run(
        ["make", "-n", "homework", "MONTHS=2022-01 2022-02 2022-03", "TRIALS=7", "SOLUTION=1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert (
        'homework/run_homework.py --months "2022-01 2022-02 2022-03" --trials "7" --solution "1"'
        in done.stdout
    )


def test_make_homework_refuses_malformed_values_in_one_line(tmp_path):
    # -o: take the venv as up to date; this test must never install anything.
    done = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "homework", "TRIALS=-2"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        check=False,
    )
    ours = [line for line in done.stderr.splitlines() if not line.startswith("make:")]
    assert done.returncode == 2 and ours == [
        "error: Invalid value for '--trials': '-2' is not a whole number of 1 or more: write e.g. TRIALS=15."
    ], done.stderr
    assert not (tmp_path / "mlflow.db").exists()
