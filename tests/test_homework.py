"""The homework: its scripts run, answer the six questions and pass their self-check.

`make homework`'s runner is run as a student runs it, in a process of its own with a private
tracking store: on the synthetic sample with few trials and small months, and on real mirrored
months when this machine has them. Deprecations our scripts or `week2` trigger fail those
processes (PYTHONWARNINGS), as the suite's filters do in this one.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import REPO_ROOT, real_month, use_store
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_extraction import DictVectorizer

from week2.config import store_settings

HOMEWORK = REPO_ROOT / "homework"
MONTHS = ("2023-01", "2023-02", "2023-03")
SAMPLE_TRIALS, SAMPLE_TOP_N = 3, 2
OUR_MODULES = ("__main__", "common", "check", "week2.config", "week2.data", "week2.utils", "week2.tracking")
STRICT_WARNINGS = ",".join(
    f"error::{category}:{module}"
    for category in ("DeprecationWarning", "FutureWarning")
    for module in OUR_MODULES
)


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

    def pickle(self, name: str):
        with open(self.folder / "output" / name, "rb") as f_in:
            return pickle.load(f_in)


def run_homework(folder: Path, data_mode: str, trials: int, top_n: int, **env: str) -> HomeworkRun:
    """`python homework/run_homework.py` in its own process, store and output folder under `folder`."""
    environment = {
        **os.environ,
        **store_settings(folder),
        "WEEK2_DATA": data_mode,
        "PYTHONWARNINGS": STRICT_WARNINGS,
        **env,
    }
    command = [sys.executable, str(HOMEWORK / "run_homework.py"), "--months", " ".join(MONTHS)]
    command += ["--trials", str(trials), "--top_n", str(top_n), "--dest_path", str(folder / "output")]
    command += ["--submission", str(folder / "submission.json")]
    started = time.monotonic()
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=900, check=False)
    return HomeworkRun(folder, done.stdout + done.stderr, done.returncode, time.monotonic() - started)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> HomeworkRun:
    folder = tmp_path_factory.mktemp("homework-sample")
    run = run_homework(
        folder,
        "sample",
        SAMPLE_TRIALS,
        SAMPLE_TOP_N,
        WEEK2_DATA_DIR=str(folder / "data"),  # its own small months, not the suite's sample
        WEEK2_SAMPLE_ROWS="1500",
    )
    assert run.returncode == 0, run.output
    return run


@pytest.fixture(scope="module")
def scripts():
    """The homework's modules, imported as the scripts import each other (their folder on the path)."""
    sys.path.insert(0, str(HOMEWORK))
    try:
        names = ("common", "check", "preprocess_data", "train", "hpo", "register_model", "run_homework")
        yield {name: importlib.import_module(name) for name in names}
    finally:
        sys.path.remove(str(HOMEWORK))


@pytest.fixture
def store_of(monkeypatch):
    """Point this process at a homework run's store; restore the default afterwards."""

    def use(run: HomeworkRun) -> mlflow.MlflowClient:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", run.uri)
        mlflow.set_tracking_uri(run.uri)
        return mlflow.MlflowClient()

    yield use
    mlflow.set_tracking_uri(None)


def session_of(run: HomeworkRun) -> str:
    return run.output.split("; session ", 1)[1].split()[0]


def assert_complete_submission(submission: dict) -> None:
    assert list(submission) == ["q1", "q2", "q3", "q4", "q5", "q6"]
    assert submission["q1"] == mlflow.__version__
    assert submission["q2"] == 4 and type(submission["q2"]) is int
    assert submission["q3"] == len(RandomForestRegressor().get_params()) and type(submission["q3"]) is int
    assert submission["q4"] == "--default-artifact-root"
    for key in ("q5", "q6"):
        assert type(submission[key]) is float and 0 < submission[key] < 60, submission


def verdicts(output: str) -> list[str]:
    return [line.split()[:2] for line in output.splitlines() if line.startswith(("PASS", "FAIL"))]


# --- on the synthetic sample ----------------------------------------------------------------------


@pytest.mark.slow
def test_sample_homework_answers_every_question_and_passes_its_self_check(sample_run):
    assert verdicts(sample_run.output) == [["PASS", f"q{i}"] for i in range(1, 7)]
    assert "data: sample" in sample_run.output
    assert "these answers come from the synthetic sample" in sample_run.output  # said, not hidden
    assert_complete_submission(sample_run.submission)


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
def test_preprocessing_writes_the_homework_pickles_exactly(sample_run):
    sample = sample_run.folder / "data" / "sample"
    assert_pickles_follow_the_homework_steps(
        sample_run, [sample / f"green_tripdata_{month}.parquet" for month in MONTHS]
    )


@pytest.mark.slow
def test_store_holds_the_runs_each_question_needs(sample_run, store_of, scripts):
    client = store_of(sample_run)
    common = scripts["common"]
    session = session_of(sample_run)
    submission = sample_run.submission

    (train_run,) = common.session_runs(common.TRAIN_EXPERIMENT, session)
    assert len(train_run.data.params) == submission["q3"] == 18
    assert train_run.data.params["max_depth"] == "10" and train_run.data.params["random_state"] == "0"
    assert train_run.outputs.model_outputs, "autolog logged the model"

    trials = common.session_runs(common.HPO_EXPERIMENT, session, order_by=["metrics.rmse ASC"])
    assert len(trials) == SAMPLE_TRIALS
    assert {tuple(sorted(t.data.params)) for t in trials} == {tuple(sorted(common.SEARCH_SPACE))}
    assert round(trials[0].data.metrics["rmse"], 3) == submission["q5"]

    retrained = common.session_runs(
        common.BEST_MODELS_EXPERIMENT, session, order_by=["metrics.test_rmse ASC"]
    )
    assert {r.data.tags["hpo_run_id"] for r in retrained} == {t.info.run_id for t in trials[:SAMPLE_TOP_N]}
    best = retrained[0]
    assert round(best.data.metrics["test_rmse"], 3) == submission["q6"]
    assert all(r.data.tags["data_source"] == "sample" for r in [train_run, *trials, *retrained])

    (version,) = client.search_model_versions(f"name = '{common.MODEL_NAME}'")
    assert version.run_id == best.info.run_id
    # The registered model is the one that scored q6: load it and score the test month again.
    model = mlflow.sklearn.load_model(f"models:/{common.MODEL_NAME}/{version.version}")
    X_test, y_test = sample_run.pickle("test.pkl")
    rmse = float(np.sqrt(np.mean((model.predict(X_test) - y_test) ** 2)))
    assert rmse == pytest.approx(best.data.metrics["test_rmse"], rel=1e-9)


@pytest.mark.slow
def test_self_check_fails_when_the_store_does_not_hold_what_was_asked(sample_run, store_of, scripts):
    store_of(sample_run)
    check, session = scripts["check"], session_of(sample_run)
    assert check.q5_best_val_rmse(session, SAMPLE_TRIALS).passed

    more_trials = check.q5_best_val_rmse(session, SAMPLE_TRIALS + 1)
    assert not more_trials.passed and f"expected {SAMPLE_TRIALS + 1} runs" in more_trials.problems[0]
    assert not check.q3_autolog_params("no-such-session").passed
    assert not check.q6_registered_test_rmse("no-such-session", SAMPLE_TOP_N, SAMPLE_TRIALS).passed
    output = sample_run.folder / "output"
    nothing_new = check.q2_preprocessed_files(output, check.file_stamps(output))
    assert not nothing_new.passed and nothing_new.value == 0


# --- the scripts' contract ------------------------------------------------------------------------


def test_register_model_rebuilds_logged_parameters_without_the_course_crash(scripts):
    rebuild_params = scripts["register_model"].rebuild_params
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


def test_scripts_have_help_and_make_no_mlflow_call_at_import(tmp_path):
    uri_file = tmp_path / "untouched.db"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import mlflow\n"
        "for name in ('preprocess_data', 'train', 'hpo', 'register_model', 'run_homework', 'check'):\n"
        "    __import__(name)\n"
        "from mlflow.tracking._tracking_service.utils import _tracking_uri\n"
        "print('set' if _tracking_uri else 'unset')\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{uri_file}", "PYTHONWARNINGS": STRICT_WARNINGS}
    done = subprocess.run(
        [sys.executable, "-c", code, str(HOMEWORK)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "unset" and not uri_file.exists()


@pytest.mark.parametrize(
    ("script", "options"),
    [
        ("preprocess_data", ["--raw_data_path", "--dest_path", "--dataset", "--train_month", "--test_month"]),
        ("train", ["--data_path", "--tracking-uri"]),
        ("hpo", ["--data_path", "--num_trials", "--tracking-uri"]),
        ("register_model", ["--data_path", "--top_n", "--tracking-uri"]),
        ("run_homework", ["--months", "--trials", "--submission"]),
    ],
)
def test_each_script_explains_its_options(scripts, script, options):
    module = scripts[script]
    command = next(obj for obj in vars(module).values() if obj.__class__.__name__ == "Command")
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0
    assert all(option in result.output for option in options), result.output


@pytest.mark.parametrize(
    ("script", "arguments", "message"),
    [
        ("preprocess_data", ["--val_month", "2023-2"], "--val_month='2023-2' is not a month; write it as"),
        ("preprocess_data", ["--raw_data_path", "{tmp}/nowhere"], "not found: download it into"),
        ("train", ["--data_path", "{tmp}"], "train.pkl not found: run preprocess_data.py --dest_path"),
        ("hpo", ["--data_path", "{tmp}", "--num_trials", "0"], "0 is not in the range x>=1"),
        ("run_homework", ["--months", "2023-01 2023-02"], "give three months, train, validation and test"),
        ("run_homework", ["--months", "2023-01 2023-02 23-03"], "test='23-03' is not a month"),
    ],
)
def test_bad_input_gets_a_one_line_error_that_says_what_to_do(scripts, tmp_path, script, arguments, message):
    module = scripts[script]
    command = next(obj for obj in vars(module).values() if obj.__class__.__name__ == "Command")
    result = CliRunner().invoke(command, [a.format(tmp=tmp_path) for a in arguments])
    assert result.exit_code != 0
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and message in error_lines[0], result.output


@pytest.mark.slow
def test_register_model_without_a_search_says_to_run_hpo_first(sample_run, scripts, tmp_path, monkeypatch):
    empty_store = use_store(monkeypatch, tmp_path)
    try:
        result = CliRunner(env={"MLFLOW_TRACKING_URI": empty_store}).invoke(
            scripts["register_model"].run_register_model,
            ["--data_path", str(sample_run.folder / "output"), "--tracking-uri", empty_store],
        )
    finally:
        mlflow.set_tracking_uri(None)
    assert result.exit_code == 1
    assert "Error: no runs in random-forest-hyperopt: run hpo.py first." in result.output


def test_make_homework_passes_months_and_trials_through():
    done = subprocess.run(
        ["make", "-n", "homework", "MONTHS=2022-01 2022-02 2022-03", "TRIALS=7"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert 'homework/run_homework.py --months "2022-01 2022-02 2022-03" --trials 7' in done.stdout


# --- on the real months ---------------------------------------------------------------------------


@pytest.mark.real_data
@pytest.mark.slow
def test_real_months_run_end_to_end(tmp_path):
    """The whole homework on the real 2023 months: one trial and one retrained model keep it to
    about two minutes on two cores (autolog over a real month is most of it)."""
    paths = [real_month(month) for month in MONTHS]
    run = run_homework(tmp_path, "real", trials=1, top_n=1)
    print(f"real homework run: {run.seconds:.0f} s")
    assert run.returncode == 0, run.output
    assert "data: real 2023-01, 2023-02, 2023-03" in run.output
    assert verdicts(run.output) == [["PASS", f"q{i}"] for i in range(1, 7)]
    submission = run.submission
    assert_complete_submission(submission)
    assert run.pickle("train.pkl")[0].shape[0] > 50_000  # a real month, not the sample
    assert_pickles_follow_the_homework_steps(run, paths)  # the real files' schema changes in 2023
