"""Every notebook run top to bottom, in order, as a student runs it; every exercise proven both ways.

The notebooks run one test each, in teaching order, in one private store (notebook 04 builds on the
runs of 01–03), through the course runner's own executor, so the executed copies are kept and read:
- each exercise: a copy of its check cell runs before the answer cell and must say "not attempted
  yet"; the answer cell holds the reference solution from notebooks/solutions/; the check cell after
  it must say PASS;
- outputs: no warning (a Python warning or a WARNING log line), traceback or Java stack trace in
  what the notebook shows, nor in what its kernel (and the Spark workers it starts) print to the
  terminal, where the per-run links of Spark workers do not belong either.
The executed copies stay in the suite's scratch folder (`executed/`) for reading a failure.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import REPO_ROOT

from week2 import exercises
from week2.machinery import course

NOTEBOOKS = course.course_notebooks(REPO_ROOT / "notebooks")
WARNINGS = (
    r"\w*Warning\b|\bWARNING\b|Traceback \(most recent call last\)|Exception in thread|^\s+at [\w.$]+\(.*\)$"
)
NOISE = re.compile(WARNINGS, re.MULTILINE)
"""What a student should never see in a notebook: warnings, tracebacks, Java stack frames."""
# The terminal also carries what the kernel's libraries log for the person running `make course`
# (Spark's start-up notices among them): there, tracebacks, Java stack traces and the per-run
# links of Spark workers are what must not show.
TERMINAL_NOISE = re.compile(
    r"Traceback \(most recent call last\)|Exception in thread|^\s+at [\w.$]+\(.*\)$|View run .* at: https?://",
    re.MULTILINE,
)


def latest_run(experiment: str, run_name: str):
    """The newest run called `run_name` in `experiment` of the suite's store."""
    import mlflow

    (run,) = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=f"attributes.run_name = '{run_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return run


def sweep_recorded_its_cost() -> None:
    """Notebook 03's parent run sampled the machine while the sweep ran (log_system_metrics)."""
    parent = latest_run("03-hyperparameter-sweep", "xgboost-sweep")
    system = {key for key in parent.data.metrics if key.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system, system


NOT_NEEDED_TO_PREDICT = {"pyspark", "hyperopt", "psutil"}
INFERRED_EXTRAS = {"psutil", "pytest"}
"""What MLflow's inference lists for notebook 01's models, which log with its defaults: MLflow's
tracing imports psutil, and skops imports pytest through scikit-learn's test helpers. Notebook 01
says so; notebooks 02–03 name or correct their models' requirements."""


def models_of_01_to_03_require_only_what_predicting_needs() -> None:
    """No model 01–03 logged (the exercises' included) requires Spark or hyperopt; only 01's, whose
    requirements MLflow infers, list psutil (and pytest, installed here)."""
    import mlflow

    experiments = mlflow.search_experiments(filter_string="name LIKE '0%'")
    lessons = {e.experiment_id: e.name[:2] for e in experiments if e.name[:2] in ("01", "02", "03")}
    logged = mlflow.search_logged_models(experiment_ids=list(lessons), output_format="list")
    # 01: three baselines and the exercise's; 02: autolog, four families, the exercise's; 03: the sweep's.
    assert len(logged) == 4 + 6 + 1, [m.name for m in logged]
    for model in logged:
        text = Path(mlflow.pyfunc.get_model_dependencies(model.model_uri)).read_text()
        names = {line.split("==")[0].strip().lower() for line in text.splitlines() if line.strip()}
        assert "scikit-learn" in names, (model.name, text)
        allowed = INFERRED_EXTRAS if lessons[model.experiment_id] == "01" else set()
        assert not names & (NOT_NEEDED_TO_PREDICT - allowed), (model.model_uri, text)


TRIPS = {"PULocationID": [74, 41, 1], "DOLocationID": [7, 75, 999], "trip_distance": [1.5, 3.0, 2.0]}
"""Three raw trips to predict, the last from a zone no month has."""
FRESH_PROCESS = """
import json, sys
sys.modules["week2"] = None  # importing the course's code fails: the model must not need it
import mlflow, pandas as pd
trips = pd.DataFrame(json.loads(sys.argv[1]))
for uri in sys.argv[2:]:
    print(mlflow.pyfunc.load_model(uri).predict(trips).tolist())
"""
"""Load each model URI given and print its predictions for the trips given as JSON."""
RAW_TRIP_COLUMNS = [("PULocationID", "long"), ("DOLocationID", "long"), ("trip_distance", "double")]


def notebook_01s_models_use_mlflows_defaults(executed) -> None:
    """01 logged every model with MLflow's defaults: skops with no trusted types, the signature inferred
    from raw trips; each loads by its URI and predicts in a fresh process without the course's code."""
    import mlflow

    (experiment,) = mlflow.search_experiments(filter_string="name = '01-duration-baselines'")
    logged = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id], output_format="list")
    assert len(logged) == 4, [m.name for m in logged]  # three baselines and the exercise's
    uris = [model.model_uri for model in logged]
    for uri in uris:
        info = mlflow.models.get_model_info(uri)
        assert info.flavors["sklearn"]["serialization_format"] == "skops", info.flavors
        assert not info.flavors["sklearn"]["skops_trusted_types"], info.flavors
        assert [(c.name, c.type.name) for c in info.signature.inputs.inputs] == RAW_TRIP_COLUMNS
    fresh = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, json.dumps(TRIPS), *uris],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tempfile.gettempdir(),
    )
    assert fresh.returncode == 0, fresh.stderr
    here = [mlflow.pyfunc.load_model(uri).predict(pd.DataFrame(TRIPS)).tolist() for uri in uris]
    assert [json.loads(line) for line in fresh.stdout.splitlines()] == here  # the same floats, to the bit


def after_the_sweep() -> None:
    sweep_recorded_its_cost()
    models_of_01_to_03_require_only_what_predicting_needs()


def champion_and_challenger_were_evaluated() -> None:
    """Notebook 04 scored both aliases with mlflow.models.evaluate, each in a run under its review run."""
    import mlflow

    review = latest_run("04-model-registry", "candidate-review")
    evaluations = mlflow.search_runs(
        experiment_names=["04-model-registry"],
        filter_string=f"tags.mlflow.parentRunId = '{review.info.run_id}'",
        output_format="list",
    )
    rmse = {run.info.run_name: run.data.metrics["root_mean_squared_error"] for run in evaluations}
    assert set(rmse) == {"evaluate-champion", "evaluate-challenger"}, rmse
    for alias in ("champion", "challenger"):
        assert review.data.metrics[f"{alias}_val_rmse"] == pytest.approx(rmse[f"evaluate-{alias}"])


def notebook_01s_run_was_reproduced_on_the_same_data(executed) -> None:
    """Notebook 10 reproduced a run of notebook 01 from an unchanged checkout: nothing differs."""
    (cell,) = [c for c in executed.cells if c.cell_type == "code" and "reproduce {" in c.source]
    report = shown(cell)
    assert "val_rmse: recorded" in report and "(DIFFERS)" not in report, report
    assert report.count("(same)") >= 3, report  # the commit and both months, and each library


def autolog_run_timed_training_without_logging_the_model() -> None:
    """Notebook 02's autolog run: `fit_seconds` (what 04 compares) leaves out autolog's model logging."""
    metrics = latest_run("02-autolog-model-families", "xgboost-autolog").data.metrics
    # Logging the model (signature, input example, requirements) takes seconds; training on the sample, less.
    assert metrics["fit_seconds"] < metrics["autolog_fit_seconds"], metrics


DECOY_EXPERIMENT = "00-not-tagged-as-candidates"


def plant_an_untagged_experiment_with_the_best_score() -> None:
    """Before notebook 04: an experiment that an old rule (names before "04") would have chosen,
    whose run has the best val_rmse of all and a model, but no `candidates` tag."""
    import mlflow
    from sklearn.dummy import DummyRegressor

    experiment_id = mlflow.MlflowClient().create_experiment(DECOY_EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment_id, run_name="decoy"):
        mlflow.log_metric("val_rmse", 0.0)
        mlflow.sklearn.log_model(
            DummyRegressor().fit([[0.0]], [0.0]), name="model", pip_requirements=["scikit-learn"]
        )


def registry_chose_candidates_by_their_tag() -> None:
    """Notebook 04 took the candidates of the tagged experiments only: the decoy was neither compared
    nor registered."""
    import mlflow

    (decoy,) = mlflow.search_runs(experiment_names=[DECOY_EXPERIMENT], output_format="list")
    review = latest_run("04-model-registry", "candidate-review")
    table = mlflow.artifacts.load_dict(
        f"{review.info.artifact_uri}/candidates.json"
    )  # log_table's columns, data
    compared = {row[table["columns"].index("run_id")] for row in table["data"]}
    assert compared and decoy.info.run_id not in compared, compared
    assert not mlflow.MlflowClient().search_model_versions(f"run_id = '{decoy.info.run_id}'")
    tagged = {e.name for e in mlflow.search_experiments(filter_string="tags.candidates = 'true'")}
    assert {"02-autolog-model-families", "03-hyperparameter-sweep"} <= tagged, tagged


BEFORE_RUNNING = {"04-model-registry": plant_an_untagged_experiment_with_the_best_score}
"""What a notebook's test puts in the store before the notebook runs, for the checks after it."""

AFTER_RUNNING = {
    "01-duration-prediction": notebook_01s_models_use_mlflows_defaults,
    "02-autolog": lambda executed: autolog_run_timed_training_without_logging_the_model(),
    "03-hyperparameter-sweep": lambda executed: after_the_sweep(),
    "04-model-registry": lambda executed: (
        champion_and_challenger_were_evaluated(),
        registry_chose_candidates_by_their_tag(),
    ),
    "10-store-operations": notebook_01s_run_was_reproduced_on_the_same_data,
}
"""What a notebook must have left behind (in the store, in its executed copy), beyond its
exercises, checked after it runs: each is given the executed notebook."""


def _marks(cell) -> tuple[str | None, str | None]:
    marks = cell.get("metadata", {}).get("week2", {})
    return marks.get("exercise"), marks.get("role")


def exercise_keys(notebook) -> list[str]:
    return [key for key, role in map(_marks, notebook.cells) if role == "answer"]


def solved(notebook):
    """A copy of `notebook` with each answer cell solved, and its check cell run before it as well."""
    checks = {key: cell for cell in notebook.cells for key, role in [_marks(cell)] if role == "check"}
    cells = []
    for cell in notebook.cells:
        key, role = _marks(cell)
        if role == "answer":
            before = copy.deepcopy(checks[key])
            before.metadata["week2"] = {"exercise": key, "role": "check-before"}
            before.id = f"{before.id}-before"
            cells.append(before)
            cell = copy.deepcopy(cell)
            cell.source = exercises.EXERCISES[key].solution_path.read_text()
        cells.append(cell)
    notebook = copy.deepcopy(notebook)
    notebook.cells = cells
    return notebook


def shown(cell) -> str:
    """The text a cell printed (stdout and stderr streams)."""
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_every_exercise_has_a_check_a_solution_and_a_notebook():
    used = {}
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        marks = [_marks(c) for c in notebook.cells]
        for key in exercise_keys(notebook):
            assert (key, "check") in marks, f"{path.name}: exercise {key} has no check cell"
            used[key] = path.name
    assert set(used) == set(exercises.EXERCISES), "every exercise defined in week2.exercises is in a notebook"
    for key, exercise in exercises.EXERCISES.items():
        assert exercise.solution_path.is_file(), f"{used[key]}: no reference solution for {key}"
    for number in ("01", "02", "03", "04", "05"):
        assert any(key.startswith(number) for key in used), f"notebook {number} has no exercise"


@pytest.fixture(scope="module")
def executed_dir(private_store) -> Path:
    folder = Path(os.environ.get("WEEK2_TEST_SCRATCH", private_store)) / "executed"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def needs(path: Path) -> list[pytest.MarkDecorator]:
    """The markers of a notebook's run: all take a while; some start servers, one starts Spark."""
    source = path.read_text()
    marks = [pytest.mark.slow]
    if "servers.start_" in source or "servers.ensure_" in source:
        marks.append(pytest.mark.servers)
    if "java" in nbformat.reads(source, as_version=4).metadata.get("week2", {}).get("requires", []):
        marks.append(pytest.mark.spark)
    return marks


@pytest.mark.parametrize("path", [pytest.param(p, marks=needs(p), id=p.stem) for p in NOTEBOOKS])
def test_notebook_runs_quietly_and_its_exercises_check_both_ways(path, executed_dir, capfd):
    notebook = nbformat.read(path, as_version=4)
    keys = exercise_keys(notebook)
    # The solved copy is kept out of the checkout, and runs from the notebook's folder as a student's would.
    target = executed_dir.parent / "solved" / path.name
    target.parent.mkdir(exist_ok=True)
    nbformat.write(solved(notebook), target)
    if path.stem in BEFORE_RUNNING:
        BEFORE_RUNNING[path.stem]()
    try:
        capfd.readouterr()
        course.execute_notebook(target, executed_dir, folder=path.parent)
    finally:
        terminal = capfd.readouterr()
    result = nbformat.read(executed_dir / target.name, as_version=4)

    for cell in result.cells:
        key, role = _marks(cell)
        if role == "check-before":
            assert f"{key} {exercises.NOT_ATTEMPTED}" in shown(cell), shown(cell)
        elif role == "check":
            assert f"{key} {exercises.PASS}" in shown(cell), shown(cell)
    assert len([c for c in result.cells if _marks(c)[1] == "check"]) == len(keys)

    if path.stem in AFTER_RUNNING:
        AFTER_RUNNING[path.stem](result)

    noisy = [(i, m.group(0)) for i, c in enumerate(result.cells) for m in NOISE.finditer(shown(c))]
    assert not noisy, f"{path.name} shows what a student should not see (cell, text): {noisy[:5]}"
    printed = [m.group(0) for m in TERMINAL_NOISE.finditer(terminal.out + terminal.err)]
    assert not printed, f"{path.name}'s kernel printed to the terminal: {printed[:5]}"
