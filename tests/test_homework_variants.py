"""The grader on homework written the way students write it (tests/homework_variants/README.md).

Each variant replaces the starters in a copy of homework/ and is graded by `make homework`'s runner
on the sample, in a store and a working folder of its own: a correct solution passes as written,
a wrong one fails with its real cause and a tip. Below them, the harness that runs each script
(homework/harness.py): the one store, the crash report, and autolog's dense copy avoided.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from test_homework import HOMEWORK, MONTHS, SAMPLE_TOP_N, SAMPLE_TRIALS, HomeworkRun, verdict_block, verdicts

from week2.config import store_settings

VARIANTS = Path(__file__).parent / "homework_variants"
SCRIPTS = ("train.py", "hpo.py", "register_model.py")


def start_variant(variant: str, folder: Path, data_dir: Path):
    """Grade `variant` in `folder` (its scripts, store, output and working folder); return a waiter."""
    scripts = folder / "homework"
    shutil.copytree(HOMEWORK, scripts, ignore=shutil.ignore_patterns("solution", "__pycache__", "*.json"))
    for script in SCRIPTS:
        shutil.copy(VARIANTS / variant / script, scripts / script)
    work = folder / "work"  # where the student runs make: a relative URI would land here
    work.mkdir()
    environment = {
        **os.environ,
        **store_settings(folder / "store"),
        "WEEK2_DATA": "sample",
        "WEEK2_DATA_DIR": str(data_dir),
        "WEEK2_SAMPLE_ROWS": "1000",
    }
    (folder / "store").mkdir()
    command = [sys.executable, str(HOMEWORK / "run_homework.py"), "--months", " ".join(MONTHS)]
    command += ["--trials", str(SAMPLE_TRIALS), "--top_n", str(SAMPLE_TOP_N), "--scripts", str(scripts)]
    command += ["--dest_path", str(folder / "output"), "--submission", str(folder / "submission.json")]
    log = folder / "run_homework.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=work, env=environment, stdout=out, stderr=subprocess.STDOUT)

    def finish() -> HomeworkRun:
        try:
            process.wait(timeout=1200)
        finally:
            process.kill()
        return HomeworkRun(folder, log.read_text(), process.returncode, 0.0)

    return finish


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, HomeworkRun]:
    """Every variant graded, all at once; they share the sample's months (made once, first)."""
    data_dir = tmp_path_factory.mktemp("variant-data")
    waiting = {
        variant.name: start_variant(variant.name, tmp_path_factory.mktemp(variant.name), data_dir)
        for variant in sorted(VARIANTS.iterdir())
        if variant.is_dir()
    }
    return {name: finish() for name, finish in waiting.items()}


def line_of(variant: str, script: str, text: str) -> int:
    """The line of a variant's script that holds `text` (so no test hard-codes a line number)."""
    lines = (VARIANTS / variant / script).read_text().splitlines()
    return next(number for number, line in enumerate(lines, start=1) if text in line)


def store_runs(run: HomeworkRun) -> list:
    client = mlflow.MlflowClient(f"sqlite:///{run.folder / 'store' / 'mlflow.db'}")
    experiments = client.search_experiments()
    return client.search_runs([e.experiment_id for e in experiments], max_results=1000)


@pytest.mark.slow
def test_official_style_solution_passes_as_written(graded):
    run = graded["official_style"]
    assert run.returncode == 0, run.output
    assert verdicts(run.output) == [["PASS", f"q{i}"] for i in range(1, 7)]
    assert "Traceback" not in run.output
    # One line per script: its own URI (three local addresses) overridden, and where it is written.
    for script, uri in (
        ("train.py", "http://127.0.0.1:5000"),
        ("hpo.py", "http://localhost:5000"),
        ("register_model.py", "http://127.0.0.1:5001"),
    ):
        line = line_of("official_style", script, "set_tracking_uri")
        overridden = f"mlflow.set_tracking_uri('{uri}') in {script}, line {line} is overridden"
        assert run.output.count(overridden) == 1, run.output
    # Q3 in the student's own experiment, which also holds the five retrained runs: Q6 counts those.
    assert "in random-forest-best-models: 18 parameters autologged" in run.output
    assert "nyc-taxi-rf-best version 1" in run.output
    runs = store_runs(run)
    trials = [r for r in runs if r.data.tags["mlflow.source.name"].endswith("hpo.py")]
    assert run.submission["q5"] == round(min(r.data.metrics["rmse"] for r in trials), 3)
    retrained = [r for r in runs if "test_rmse" in r.data.metrics]
    assert len(retrained) == SAMPLE_TOP_N
    assert run.submission["q6"] == round(min(r.data.metrics["test_rmse"] for r in retrained), 3)
    # Every run reached the graded store, and each experiment keeps its artifacts beside it.
    assert len(runs) == 1 + SAMPLE_TRIALS + SAMPLE_TOP_N
    assert not any((run.folder / "work").iterdir())


@pytest.mark.slow
def test_own_names_pass_q3_and_a_renamed_metric_fails_q5_in_one_line(graded):
    run = graded["own_names"]
    assert run.returncode == 1 and "Traceback" not in run.output
    assert verdicts(run.output)[2:] == [["PASS", "q3"], ["PASS", "q4"], ["FAIL", "q5"], ["FAIL", "q6"]]
    assert "in my-experiment-1: 18 parameters autologged" in run.output
    line = line_of("own_names", "train.py", "set_tracking_uri")
    assert (
        f"mlflow.set_tracking_uri('sqlite:///mlflow.db') in train.py, line {line} is overridden" in run.output
    )
    q5 = verdict_block(run.output, "q5").splitlines()
    assert q5[1:] == [
        "     the trials log the validation RMSE as 'val_rmse': log it as 'rmse' "
        "(register_model.py orders the search by metrics.rmse)",
        f"     look at {run.folder / 'homework' / 'hpo.py'}, TODO (Q5)",
    ]
    assert "see Q5 first" in verdict_block(run.output, "q6")
    assert not (run.folder / "work" / "mlflow.db").exists()  # the relative SQLite URI made no store


@pytest.mark.slow
def test_code_for_older_libraries_fails_with_its_exception_line_and_tip(graded):
    run = graded["old_libraries"]
    assert run.returncode == 1 and "Traceback" not in run.output
    assert verdicts(run.output)[2:] == [["PASS", "q3"], ["PASS", "q4"], ["FAIL", "q5"], ["FAIL", "q6"]]
    scripts = run.folder / "homework"
    q5 = verdict_block(run.output, "q5")
    assert "hpo.py crashed: TypeError: got an unexpected keyword argument 'squared'" in q5
    assert "tip: scikit-learn 1.6 removed mean_squared_error's squared=" in q5
    assert f"look at {scripts / 'hpo.py'}, line {line_of('old_libraries', 'hpo.py', 'squared=False')}" in q5
    assert "runs of hpo.py" not in q5  # the crash is the cause: no count of missing runs beside it
    q6 = verdict_block(run.output, "q6")
    assert (
        "register_model.py crashed: MlflowException: The saved sklearn model references untrusted types" in q6
    )
    assert "autolog already logs the model (drop your log_model call), or pass serialization_format=" in q6
    line = line_of("old_libraries", "register_model.py", "mlflow.sklearn.log_model(")
    assert f"look at {scripts / 'register_model.py'}, line {line}" in q6
    assert "see Q5 first" in q6


# --- the harness, script by script ---------------------------------------------------------------------


def run_harnessed(script: Path, folder: Path, **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Run `script` through homework/harness.py in `folder`; its result, and the harness's report."""
    report = folder / "report.json"
    done = subprocess.run(
        [sys.executable, str(HOMEWORK / "harness.py"), str(report), str(script)],
        cwd=folder,
        env={k: v for k, v in {**os.environ, **env}.items() if k != "MLFLOW_EXPERIMENT_ID"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    return done, json.loads(report.read_text())


@pytest.fixture
def check_module():
    sys.path.insert(0, str(HOMEWORK))
    try:
        import check

        yield check
    finally:
        sys.path.remove(str(HOMEWORK))


@pytest.mark.parametrize(
    ("name", "code", "tip"),
    [
        (
            "registers a run without a model",
            "with mlflow.start_run() as run:\n"
            "    mlflow.log_metric('test_rmse', 5.5)\n"
            "mlflow.register_model(f'runs:/{run.info.run_id}/model', 'best')\n",
            "logged no model called model: keep mlflow.sklearn.autolog() on while the forest is trained",
        ),
        (
            "passes logged parameters on as strings",
            "from sklearn.ensemble import RandomForestRegressor\n"
            "params = {'max_depth': '10', 'n_estimators': '5'}\n"
            "RandomForestRegressor(**params).fit([[0.0], [1.0]], [0.0, 1.0])\n",
            "MLflow stores parameters as strings: turn each back into a number, e.g. int(params['",
        ),
    ],
)
def test_known_crashes_get_the_student_line_and_a_tip(check_module, tmp_path, name, code, tip):
    script = tmp_path / "register_model.py"
    script.write_text("import mlflow\nmlflow.set_tracking_uri('http://127.0.0.1:5000')\n" + code)
    done, report = run_harnessed(script, tmp_path, **store_settings(tmp_path))
    assert done.returncode == 1 and "Traceback" in done.stderr  # the log keeps it, the runner hides it
    crash = check_module.Ending.read(tmp_path / "report.json").crash
    assert crash.file == str(script) and crash.line == len(script.read_text().splitlines())
    assert tip in crash.tip(), crash
    assert report["redirected"] == [
        {"call": "mlflow.set_tracking_uri", "uri": "http://127.0.0.1:5000", "line": 2}
    ]


def test_a_uri_on_another_machine_is_kept_and_named_as_the_cause(check_module, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        "import mlflow\n"
        "mlflow.set_tracking_uri('https://tracking.example.org')\n"
        "print('tracking', mlflow.get_tracking_uri())\n"  # nothing is sent: no run is started
    )
    done, report = run_harnessed(script, tmp_path, **store_settings(tmp_path))
    assert done.returncode == 0 and "tracking https://tracking.example.org" in done.stdout
    assert (
        "set_tracking_uri('https://tracking.example.org') in train.py, line 2 sends the runs to another"
        in (done.stdout)
    )
    assert report["kept"] == [
        {"call": "mlflow.set_tracking_uri", "uri": "https://tracking.example.org", "line": 2}
    ]
    answer = check_module.Answer("q3", "min_samples_split that autolog recorded", None)
    ending = check_module.Ending.read(tmp_path / "report.json")
    assert ending.explains(answer, "train.py", script)
    assert answer.problems == [
        "train.py sent its runs to https://tracking.example.org, another machine, "
        "not to the store make homework grades"
    ]
    assert answer.hint == f"look at {script}, line 2: delete that set_tracking_uri"


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("http://127.0.0.1:5000", True),
        ("http://localhost:5001", True),
        ("HTTP://LOCALHOST:8080/", True),
        ("http://0.0.0.0:5000", True),
        ("http://[::1]:5000", True),
        ("sqlite:///mlflow.db", True),
        ("sqlite:////home/student/week2/mlflow.db", True),
        ("file:///home/student/mlruns", True),
        ("mlruns", True),
        ("postgresql://mlflow@localhost:5432/mlflow", True),
        ("http://tracking.example.org:5000", False),
        ("https://10.1.2.3", False),
        ("databricks", False),
    ],
)
def test_a_local_address_is_told_from_another_machine(uri, local):
    sys.path.insert(0, str(HOMEWORK))
    try:
        from harness import is_local
    finally:
        sys.path.remove(str(HOMEWORK))
    assert is_local(uri) is local


AUTOLOG_A_WIDE_SPARSE_MATRIX = """
import resource, sys
import mlflow, numpy as np
from scipy import sparse
from sklearn.ensemble import RandomForestRegressor

mlflow.set_experiment("wide")
mlflow.sklearn.autolog()  # datasets on, as students leave it
X = sparse.random(6000, 8000, density=0.0005, format="csr", random_state=0)  # 384 MB made dense
y = np.random.default_rng(0).normal(size=6000)
with mlflow.start_run() as run:
    RandomForestRegressor(n_estimators=2, max_depth=3, random_state=0).fit(X, y)
print(run.info.run_id, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_autolog_records_the_same_dataset_without_making_the_matrix_dense(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(AUTOLOG_A_WIDE_SPARSE_MATRIX)
    env = {**os.environ, **store_settings(tmp_path)}
    uri = env["MLFLOW_TRACKING_URI"]
    plain = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    harnessed, report = run_harnessed(script, tmp_path, **env)
    assert harnessed.returncode == 0 and report["crash"] is None, harnessed.stderr
    (plain_id, plain_kib), (harnessed_id, harnessed_kib) = (
        done.stdout.split()[-2:] for done in (plain, harnessed)
    )
    client = mlflow.MlflowClient(uri)

    def recorded(run_id: str):
        run = client.get_run(run_id)
        (dataset,) = [d.dataset for d in run.inputs.dataset_inputs]
        return (dataset.name, dataset.digest, dataset.schema, dataset.profile), run.data.metrics

    assert recorded(harnessed_id) == recorded(plain_id)  # digest, schema, profile and metrics alike
    assert '"features_shape": [6000, 8000]' in recorded(plain_id)[0][3]
    # MLflow's dense copy, 384 MB (and its flattened copy), which the harnessed run never allocates.
    assert int(plain_kib) - int(harnessed_kib) > 300 * 1024, (plain_kib, harnessed_kib)
