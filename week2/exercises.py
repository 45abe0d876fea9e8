"""Your turn: the exercises at the end of notebooks 01–05, each checked against the tracking store.

An exercise asks you to write MLflow code yourself. Its check cell reads what your code left in the
tracking store (runs, datasets, logged models, registered versions) and prints one line:

    01.1 PASS: …
    01.1 not attempted yet: …            (nothing of yours found: the notebook still runs on)
    01.1 not yet: <what is missing>. Hint: …

Your runs for an exercise carry the tag `exercise=<key>` (for example `exercise=01.1`), so the check
finds them among the notebook's own runs. `exercises.hint(key)` repeats the hint and
`exercises.solution(key)` prints the reference solution from `notebooks/solutions/`.

Each notebook's exercises are defined here with `@exercise(key, task, hint)` over a function that
takes an MlflowClient and returns None when nothing of the student's is in the store yet, [] when
everything is there, or the list of what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.models import get_model_info

from week2.config import REPO_ROOT, rmse_threshold

EXERCISE_TAG = "exercise"
SOLUTIONS_DIR = REPO_ROOT / "notebooks" / "solutions"
PASS, NOT_ATTEMPTED, NOT_YET = "PASS", "not attempted yet", "not yet"

Inspection = Callable[[MlflowClient], "list[str] | None"]


@dataclass(frozen=True)
class Verdict:
    key: str
    status: str  # PASS, NOT_ATTEMPTED or NOT_YET
    message: str

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def __str__(self) -> str:
        return f"{self.key} {self.status}: {self.message}"


@dataclass(frozen=True)
class Exercise:
    key: str
    task: str
    hint: str
    inspect: Inspection

    @property
    def solution_path(self) -> Path:
        return SOLUTIONS_DIR / f"{self.key.replace('.', '-')}.py"

    def verdict(self, client: MlflowClient | None = None) -> Verdict:
        """Read the store and judge; a store that cannot be read is a NOT_YET, never a traceback."""
        try:
            missing = self.inspect(client or MlflowClient())
        except MlflowException as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            return Verdict(
                self.key, NOT_YET, f"the check could not read the store ({first}). Hint: {self.hint}"
            )
        if missing is None:
            return Verdict(self.key, NOT_ATTEMPTED, f"{self.task} (tag your runs exercise={self.key})")
        if missing:
            return Verdict(self.key, NOT_YET, f"{'; '.join(missing)}. Hint: {self.hint}")
        return Verdict(self.key, PASS, self.task)


EXERCISES: dict[str, Exercise] = {}


def exercise(key: str, task: str, hint: str) -> Callable[[Inspection], Inspection]:
    """Register the decorated inspection as exercise `key`."""

    def register(inspect: Inspection) -> Inspection:
        EXERCISES[key] = Exercise(key, task, hint, inspect)
        return inspect

    return register


def check(key: str) -> None:
    """Print the verdict of exercise `key`: what a check cell calls (`.verdict()` returns it instead)."""
    print(EXERCISES[key].verdict())


def hint(key: str) -> None:
    print(f"{key} hint: {EXERCISES[key].hint}")


def solution(key: str) -> None:
    print(EXERCISES[key].solution_path.read_text())


def tagged_runs(client: MlflowClient, key: str) -> list[Run]:
    """The runs of every experiment that carry `exercise=key`, newest first."""
    experiment_ids = [e.experiment_id for e in client.search_experiments()]
    if not experiment_ids:
        return []
    return client.search_runs(
        experiment_ids,
        filter_string=f"tags.{EXERCISE_TAG} = '{key}'",
        order_by=["attributes.start_time DESC"],
    )


# --- Notebook 01: tracking by hand ---------------------------------------------------------------


def dataset_contexts(run: Run) -> set[str]:
    """The contexts (training, validation, …) of the datasets a run logged."""
    return {
        tag.value
        for dataset in run.inputs.dataset_inputs
        for tag in dataset.tags
        if tag.key == "mlflow.data.context"
    }


def model_signatures(run: Run) -> list:
    """The signature of each model the run logged (None for a model logged without one)."""
    outputs = run.outputs.model_outputs if run.outputs else []
    return [get_model_info(f"models:/{output.model_id}").signature for output in outputs]


@exercise(
    "01.1",
    task="Log one more model in a run tagged exercise=01.1, with both months as datasets, "
    "its val_rmse and the model",
    hint="in mlflow.start_run(tags={'exercise': '01.1', …}): mlflow.log_input for train_dataset "
    "(context='training') and val_dataset (context='validation'), mlflow.log_metric('val_rmse', …), then "
    "mlflow.sklearn.log_model with name='model' and an input_example of raw trips (X_train.head(5)), "
    "from which MLflow infers the signature",
)
def _one_more_model(client):
    runs = tagged_runs(client, "01.1")
    if not runs:
        return None
    run = runs[0]
    contexts = dataset_contexts(run)
    missing = [f"no dataset with context '{c}'" for c in ("training", "validation") if c not in contexts]
    if "val_rmse" not in run.data.metrics:
        missing.append("no metric val_rmse")
    signatures = model_signatures(run)
    if not signatures:
        missing.append("no logged model")
    elif None in signatures:
        missing.append("the model has no signature (pass input_example=X_train.head(5): MLflow infers it)")
    return missing


# --- Notebook 02: autolog and model families -----------------------------------------------------

NOTEBOOK_02_FAMILIES = (
    "XGBRegressor",
    "RandomForestRegressor",
    "GradientBoostingRegressor",
    "ExtraTreesRegressor",
    "LinearSVR",
)


@exercise(
    "02.1",
    task="Autolog a model family notebook 02 did not train, in a run tagged exercise=02.1, "
    "and find it with search_runs",
    hint="mlflow.sklearn.autolog(); in mlflow.start_run(tags={'exercise': '02.1', …}) fit "
    "utils.make_pipeline(DecisionTreeRegressor(max_depth=10)); then "
    "mlflow.search_runs(experiment_names=[EXPERIMENT], filter_string=\"tags.exercise = '02.1'\")",
)
def _autolog_another_family(client):
    runs = tagged_runs(client, "02.1")
    if not runs:
        return None
    run = runs[0]
    missing = []
    if "estimator_class" not in run.data.tags:
        missing.append("the run was not recorded by autolog (call mlflow.sklearn.autolog() before fit)")
    family = run.data.params.get("model", "").split("(")[0]
    if not family:
        missing.append("autolog recorded no pipeline step 'model' (fit utils.make_pipeline(estimator))")
    elif family in NOTEBOOK_02_FAMILIES:
        missing.append(f"{family} was trained in the notebook already: pick another family")
    if "training_root_mean_squared_error" not in run.data.metrics:
        missing.append("no training metrics (fit inside the run, with autolog on)")
    if not (run.outputs and run.outputs.model_outputs):
        missing.append("no logged model (leave autolog's log_models on)")
    return missing


# --- Notebook 03: the sweep -----------------------------------------------------------------------

NOTEBOOK_03_SPACE = ("max_depth", "learning_rate", "min_child_weight", "reg_alpha", "reg_lambda")
"""The parameters notebook 03's sweep searches (week2.sweep.SEARCH_SPACE): the exercise adds one."""


def child_runs(client: MlflowClient, parent: Run) -> list[Run]:
    """The finished child runs of `parent`, best val_rmse first."""
    return client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}' and attributes.status = 'FINISHED'",
        order_by=["metrics.val_rmse ASC"],
    )


@exercise(
    "03.1",
    task="Sweep a space with one more parameter in a parent run tagged exercise=03.1, "
    "and tag it best_child=<the best child run's id>",
    hint="space = {**sweep.SEARCH_SPACE, 'subsample': hp.uniform('subsample', 0.5, 1.0)}; in "
    "mlflow.start_run(tags={'exercise': '03.1'}) run fmin with an objective that opens "
    "mlflow.start_run(nested=True) and logs params and val_rmse; then mlflow.search_runs(…, "
    "filter_string=\"tags.mlflow.parentRunId = '<parent id>'\", order_by=['metrics.val_rmse ASC']) "
    "and client.set_tag(parent_id, 'best_child', best_child_id)",
)
def _sweep_one_more_parameter(client):
    parents = [run for run in tagged_runs(client, "03.1") if "mlflow.parentRunId" not in run.data.tags]
    if not parents:
        return None
    parent = parents[0]
    children = [child for child in child_runs(client, parent) if "val_rmse" in child.data.metrics]
    if len(children) < 2:
        return [f"{len(children)} finished child run(s) with a val_rmse: run at least 2 nested trials"]
    missing = []
    if not all(set(child.data.params) - set(NOTEBOOK_03_SPACE) for child in children):
        missing.append("the trials log no parameter beyond notebook 03's space: add one to the space")
    best = parent.data.tags.get("best_child")
    if best is None:
        missing.append("the parent has no tag best_child")
    elif best != children[0].info.run_id:
        missing.append(
            f"best_child is {best}, but the child with the lowest val_rmse is {children[0].info.run_id}"
        )
    return missing


# --- Notebook 04: the registry --------------------------------------------------------------------


EXERCISE_ALIAS = "exercise-04"


def tagged_versions(client: MlflowClient, key: str) -> list:
    """The registered model versions that carry the version tag `exercise=key`, newest first."""
    found = client.search_model_versions(f"tags.{EXERCISE_TAG} = '{key}'")
    return sorted(found, key=lambda v: v.creation_timestamp, reverse=True)


@exercise(
    "04.1",
    task="Register one more candidate that passes the gate as a version with the version tag "
    f"exercise=04.1 and a description, and point the alias {EXERCISE_ALIAS} at it",
    hint="take a candidate not registered above whose val_rmse is at most THRESHOLD (the gate: "
    "a version that fails it must never reach the registry); version = mlflow.register_model("
    "f'models:/{model_id}', MODEL_NAME, tags={'exercise': '04.1'}), then "
    "client.update_model_version(MODEL_NAME, version.version, description=...) and "
    f"client.set_registered_model_alias(MODEL_NAME, '{EXERCISE_ALIAS}', version.version)",
)
def _version_with_an_alias(client):
    versions = tagged_versions(client, "04.1")
    if not versions:
        return None
    newest = versions[0]
    missing = []
    threshold = rmse_threshold()
    val_rmse = client.get_run(newest.run_id).data.metrics.get("val_rmse") if newest.run_id else None
    if val_rmse is None:
        missing.append(f"version {newest.version} comes from no run with a val_rmse: register a candidate")
    elif val_rmse > threshold:
        missing.append(
            f"version {newest.version} has val_rmse {val_rmse:.3f}, above the gate's {threshold}: "
            "register a candidate that passes the gate"
        )
    if not newest.description:
        missing.append(f"version {newest.version} of {newest.name} has no description")
    target = client.get_registered_model(newest.name).aliases.get(EXERCISE_ALIAS)
    tagged = {str(v.version) for v in versions if v.name == newest.name}
    if target is None:
        missing.append(f"{newest.name} has no alias {EXERCISE_ALIAS}")
    elif str(target) not in tagged:
        missing.append(f"@{EXERCISE_ALIAS} points at version {target}, which lacks the tag exercise=04.1")
    return missing


# --- Notebook 05: the custom model ----------------------------------------------------------------

FLAGGED_COLUMNS = ("predicted_duration", "clipped")


def _extreme_trips(trips):
    """The trips plus a zero-mile and a 500-mile one, which any model clips to its trained range."""
    import pandas as pd

    first = trips.head(1)
    return pd.concat(
        [trips, first.assign(trip_distance=0.0), first.assign(trip_distance=500.0)], ignore_index=True
    )


@exercise(
    "05.1",
    task="Log a custom model from code whose predict returns a DataFrame with the columns "
    "predicted_duration and clipped, in a run tagged exercise=05.1",
    hint="in a file written with Path(...).write_text, subclass week2.duration_model.DurationModel, "
    "make predict return pd.DataFrame({'predicted_duration': clipped, 'clipped': clipped != minutes}), "
    "end with mlflow.models.set_model(YourModel()), and pass the file as python_model= to "
    "mlflow.pyfunc.log_model",
)
def _custom_model_with_a_clipped_flag(client):
    import mlflow
    import pandas as pd

    runs = tagged_runs(client, "05.1")
    if not runs:
        return None
    run = runs[0]
    if not (run.outputs and run.outputs.model_outputs):
        return [f"run {run.info.run_name!r} logged no model"]
    model = mlflow.pyfunc.load_model(f"models:/{run.outputs.model_outputs[0].model_id}")
    if model.input_example is None:
        return ["the model has no input example: pass input_example= to log_model"]
    bounds = model.model_config or {}
    if not {"min_minutes", "max_minutes"} <= set(bounds):
        return ["the model has no min_minutes and max_minutes: pass model_config=model_config"]
    answer = model.predict(_extreme_trips(model.input_example))
    if not isinstance(answer, pd.DataFrame):
        return [f"predict returns a {type(answer).__name__}, not a DataFrame"]
    missing = [f"the answer has no column {column!r}" for column in FLAGGED_COLUMNS if column not in answer]
    if missing:
        return missing
    minutes = answer["predicted_duration"]
    on_a_bound = (minutes <= float(bounds["min_minutes"])) | (minutes >= float(bounds["max_minutes"]))
    if answer["clipped"].astype(bool).tolist() != on_a_bound.tolist():
        missing.append("clipped is not True exactly where the prediction was clipped to the trained range")
    return missing
