"""`python -m week2 reproduce RUN_ID`: which code, data and libraries made a run; does it come out the same?

It reads what the run recorded (the `git_commit` tag of `tracking.run_tags`, the digests of its dataset
inputs, the library versions in its logged model's requirements.txt), compares each with what is here
now, retrains the estimator from the logged parameters on the same files, and ends with

    val_rmse: recorded <x>, reproduced <y>, difference <d>

Exit status 0 when the validation RMSE comes out within `TOLERANCE`, 1 when it does not, 2 when the run
cannot be reproduced at all (unknown id, or a record it needs is missing).
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from week2 import config, tracking, utils
from week2.errors import Week2Error

TOLERANCE = 1e-6
"""How close the reproduced validation RMSE must come to the recorded one (minutes)."""

USAGE = "usage: python -m week2 reproduce RUN_ID (find an id in `make ui` or with mlflow.search_runs)"


class ReproduceError(Week2Error):
    """The run cannot be reproduced: unknown id, or a record the retraining needs is missing."""


@dataclass(frozen=True)
class Comparison:
    """One recorded fact beside its present value."""

    what: str
    recorded: str
    present: str

    @property
    def same(self) -> bool:
        return self.recorded == self.present

    def line(self) -> str:
        verdict = "same" if self.same else "DIFFERS"
        return f"{self.what}: recorded {self.recorded}, present {self.present} ({verdict})"


@dataclass
class Reproduction:
    run: Run
    comparisons: list[Comparison] = field(default_factory=list)
    estimator: str = ""
    recorded_rmse: float = float("nan")
    reproduced_rmse: float = float("nan")

    @property
    def difference(self) -> float:
        return abs(self.reproduced_rmse - self.recorded_rmse)

    @property
    def reproduced(self) -> bool:
        return self.difference <= TOLERANCE

    def report(self) -> str:
        info = self.run.info
        lines = [f"run {info.run_id} ({info.run_name})"]
        lines += [comparison.line() for comparison in self.comparisons]
        lines.append(f"retrained: {self.estimator} from the logged parameters")
        lines.append(
            f"val_rmse: recorded {self.recorded_rmse:.6f}, reproduced {self.reproduced_rmse:.6f}, "
            f"difference {self.difference:.1e}"
        )
        return "\n".join(lines)


def find_run(client: MlflowClient, run_id: str) -> Run:
    try:
        return client.get_run(run_id)
    except MlflowException:
        raise ReproduceError(
            f"no run {run_id!r} in {config.tracking_uri()}: "
            "copy a run id from `make ui` or find one with mlflow.search_runs."
        ) from None


def git_comparison(run: Run) -> Comparison:
    """The commit the run recorded (course tag, else MLflow's own source tag) beside this checkout's."""
    tags = run.data.tags
    recorded = tags.get("git_commit") or tags.get("mlflow.source.git.commit") or "not recorded"
    return Comparison("git commit", recorded, tracking.git_tags()["git_commit"])


def local_path(dataset_input) -> Path:
    """The file a dataset input was read from (its source URI, a local path)."""
    uri = getattr(mlflow.data.get_source(dataset_input), "uri", "")
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise ReproduceError(f"dataset {dataset_input.dataset.name} comes from {uri}, not a local file.")
    return Path(unquote(parsed.path))


def digest(df: pd.DataFrame) -> str:
    """The digest MLflow records for a pandas dataset (it depends on the rows, not on name or source)."""
    with warnings.catch_warnings():
        # Same hints tracking.log_dataset silences: zone IDs are never missing, and without a source
        # MLflow says it infers one; neither changes the digest.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        warnings.filterwarnings("ignore", message="Failed to infer the source")
        return mlflow.data.from_pandas(df).digest


@dataclass
class Month:
    context: str
    path: Path
    frame: pd.DataFrame
    comparison: Comparison


def read_month(dataset_input) -> Month:
    """Read a dataset input's file the course way and compare its digest with the recorded one."""
    tags = {tag.key: tag.value for tag in dataset_input.tags}
    context = tags.get("mlflow.data.context", "unknown")
    path = local_path(dataset_input)
    what = f"data {context} {dataset_input.dataset.name} ({path})"
    if not path.is_file():
        raise ReproduceError(f"{what} is gone: get the month again (make data) or restore the file.")
    frame = utils.read_dataframe(path)
    recorded, present = dataset_input.dataset.digest, digest(frame[utils.SEEN_COLUMNS])
    # The course's runs log the columns the pipeline reads; another run may have logged the whole
    # prepared month, or the file as it is.
    for whole in (lambda: frame, lambda: pd.read_parquet(path)):
        if present != recorded and digest(whole()) == recorded:
            present = recorded
    return Month(context, path, frame, Comparison(what, recorded, present))


def library_comparisons(run: Run) -> list[Comparison]:
    """Each `name==version` of the run's logged model's requirements.txt beside the installed version."""
    if not run.outputs or not run.outputs.model_outputs:
        return []
    model = MlflowClient().get_logged_model(run.outputs.model_outputs[0].model_id)
    requirements = mlflow.artifacts.download_artifacts(f"{model.artifact_location}/requirements.txt")
    comparisons = []
    for line in Path(requirements).read_text().splitlines():
        name, _, version = line.partition("==")
        if not version:
            continue
        try:
            present = importlib.metadata.version(name.split("[")[0])
        except importlib.metadata.PackageNotFoundError:
            present = "not installed"
        comparisons.append(Comparison(f"library {name}", version, present))
    return comparisons


def _value(text: str):
    """A logged parameter back as the Python value it was (MLflow stores every parameter as text)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a plain string such as "auto"


def estimator_from_params(params: dict[str, str]):
    """A fresh estimator of the logged class (`estimator` parameter) with the logged parameters."""
    from sklearn.utils import all_estimators

    name = params.get("estimator")
    classes = dict(all_estimators(type_filter="regressor"))
    if name == "XGBRegressor":
        from xgboost import XGBRegressor

        classes[name] = XGBRegressor
    if name not in classes:
        raise ReproduceError(
            f"the run's parameter 'estimator' is {name!r}, not a regressor this command knows: "
            "it reproduces runs logged as notebook 01 does (mlflow.log_params with the estimator's class)."
        )
    estimator = classes[name]()
    known = estimator.get_params()
    return estimator.set_params(**{key: _value(text) for key, text in params.items() if key in known})


def reproduce(run_id: str) -> Reproduction:
    """Compare the run's recorded code, data and libraries with today's, retrain, and score again."""
    mlflow.set_tracking_uri(config.tracking_uri())
    run = find_run(MlflowClient(), run_id)
    result = Reproduction(run)
    if "val_rmse" not in run.data.metrics:
        raise ReproduceError(f"run {run_id} has no val_rmse metric to reproduce.")
    result.recorded_rmse = run.data.metrics["val_rmse"]
    months = {month.context: month for month in map(read_month, run.inputs.dataset_inputs)}
    missing = [context for context in ("training", "validation") if context not in months]
    if missing:
        raise ReproduceError(
            f"run {run_id} logged no {' and no '.join(missing)} dataset: nothing to retrain it on."
        )
    estimator = estimator_from_params(run.data.params)
    result.estimator = repr(estimator)
    result.comparisons = [
        git_comparison(run),
        *(month.comparison for month in months.values()),
        *library_comparisons(run),
    ]

    X_train, y_train = utils.split_xy(months["training"].frame)
    X_val, y_val = utils.split_xy(months["validation"].frame)
    pipeline = utils.make_pipeline(estimator).fit(X_train, y_train)
    result.reproduced_rmse = utils.rmse(y_val, pipeline.predict(X_val))
    return result


def main_reproduce(argv: list[str]) -> int:
    if len(argv) != 1:
        raise ReproduceError(USAGE)
    result = reproduce(argv[0])
    print(result.report())
    return 0 if result.reproduced else 1


if __name__ == "__main__":
    sys.exit(main_reproduce(sys.argv[1:]))
