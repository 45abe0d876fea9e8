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

from week2.config import REPO_ROOT

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
            return Verdict(self.key, NOT_YET, f"the check could not read the store ({first}). Hint: {self.hint}")
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


def check(key: str) -> Verdict:
    """Print and return the verdict of exercise `key` (the check cells call this)."""
    verdict = EXERCISES[key].verdict()
    print(verdict)
    return verdict


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
        experiment_ids, filter_string=f"tags.{EXERCISE_TAG} = '{key}'", order_by=["attributes.start_time DESC"]
    )


# --- Notebook 01: tracking by hand ---------------------------------------------------------------


# --- Notebook 02: autolog and model families -----------------------------------------------------


# --- Notebook 03: the sweep -----------------------------------------------------------------------


# --- Notebook 04: the registry --------------------------------------------------------------------


EXERCISE_ALIAS = "exercise-04"


def tagged_versions(client: MlflowClient, key: str) -> list:
    """The registered model versions that carry the version tag `exercise=key`, newest first."""
    found = client.search_model_versions(f"tags.{EXERCISE_TAG} = '{key}'")
    return sorted(found, key=lambda v: v.creation_timestamp, reverse=True)


@exercise(
    "04.1",
    task=f"Register one more version with the version tag exercise=04.1 and a description, "
    f"and point the alias {EXERCISE_ALIAS} at it",
    hint="version = mlflow.register_model(f'models:/{model_id}', MODEL_NAME, tags={'exercise': '04.1'}), "
    "then client.update_model_version(MODEL_NAME, version.version, description=...) and "
    f"client.set_registered_model_alias(MODEL_NAME, '{EXERCISE_ALIAS}', version.version)",
)
def _version_with_an_alias(client):
    versions = tagged_versions(client, "04.1")
    if not versions:
        return None
    newest = versions[0]
    missing = []
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
    hint="in a file written with Path(...).write_text, subclass week2.duration_model.DurationModel, make predict "
    "return pd.DataFrame({'predicted_duration': clipped, 'clipped': clipped != minutes}), end with "
    "mlflow.models.set_model(YourModel()) and pass the file as python_model= to mlflow.pyfunc.log_model",
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
