"""One tracking store for every notebook and script, and the small helpers around it.

`setup_mlflow` points MLflow at the configured tracking URI (an absolute SQLite file at the
repository root by default) and creates the experiment with an absolute artifact location, so a
notebook sees the same runs whatever its working directory is.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import mlflow
import pandas as pd
from mlflow.entities import Run
from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
from mlflow.exceptions import MlflowException
from mlflow.models.model import ModelInfo

from week2 import config

UNKNOWN_GIT = "unknown (not a git checkout)"


def uses_server(uri: str) -> bool:
    """True when the tracking URI names a tracking server rather than a local store."""
    return uri.startswith(("http://", "https://"))


def setup_mlflow(experiment: str) -> str:
    """Use the configured tracking store and experiment `experiment`; return its id.

    With a local store (SQLite) the experiment gets an absolute artifact location under
    `config.artifacts_dir()`; a tracking server chooses its own (it proxies artifacts).
    """
    uri = config.tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        found = mlflow.get_experiment_by_name(experiment)
    except MlflowException as error:
        if error.get_http_status_code() == 401:
            raise config.ConfigError(
                f"{uri} refused the credentials: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
                "to your account (scenario 3: the secrets file `make scenario3` printed)."
            ) from None
        raise
    if found is None:
        location = None if uses_server(uri) else (config.artifacts_dir() / experiment).as_uri()
        experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
    else:
        experiment_id = found.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=config.REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout
        return None
    return result.stdout.strip() or None


def git_tags() -> dict[str, str]:
    """The commit and branch the code came from, or a clear 'unknown' outside a git checkout."""
    return {
        "git_commit": _git("rev-parse", "HEAD") or UNKNOWN_GIT,
        "git_branch": _git("rev-parse", "--abbrev-ref", "HEAD") or UNKNOWN_GIT,
    }


def run_tags(**extra: str) -> dict[str, str]:
    """Tags every course run carries: who ran it and from which code, plus `extra`."""
    return {"developer": config.developer(), **git_tags(), **{k: str(v) for k, v in extra.items()}}


def log_dataset(df: pd.DataFrame, path: str | Path, context: str, name: str) -> None:
    """Log a month as an MLflow dataset input of the active run (`context`: training, validation…)."""
    with warnings.catch_warnings():
        # MLflow 3.17 registers its local-file source class twice and warns that a path "can be
        # interpreted in multiple ways" by the same class; the source it picks is the right one.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        # Zone IDs are never missing, so MLflow's hint about integer columns and NaN does not apply.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        dataset = mlflow.data.from_pandas(df, source=str(path), targets="duration", name=name)
    mlflow.log_input(dataset, context=context)


# MLflow infers a model's requirements by loading it in a fresh Python process, seconds per model.
# Pipelines built on the same libraries need the same packages, so a process infers them once per
# set of libraries and hands them to the next log_model of the same kind.
_requirements_by_libraries: dict[tuple[str, ...], list[str]] = {}


def log_pipeline(pipeline, example: pd.DataFrame, name: str = "model", **kwargs) -> ModelInfo:
    """Log a fitted preprocessing+estimator pipeline as one self-contained model.

    The input example is a DataFrame of raw trip columns, so the signature says what a caller
    sends; `week2` travels with the model (`code_paths`) because the pipeline calls into it;
    cloudpickle because skops, the default, refuses tree ensembles it does not trust.
    """
    libraries = tuple(sorted({type(step).__module__.partition(".")[0] for _, step in pipeline.steps}))
    infer = not {"pip_requirements", "extra_pip_requirements", "conda_env"} & kwargs.keys()
    if infer and libraries in _requirements_by_libraries:
        kwargs["pip_requirements"] = _requirements_by_libraries[libraries]
    with warnings.catch_warnings():
        # Zone IDs are never missing, so MLflow's hint about integer columns and NaN does not apply.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        info = mlflow.sklearn.log_model(
            pipeline,
            name=name,
            input_example=example.head(5),
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            code_paths=[str(config.REPO_ROOT / "week2")],
            **kwargs,
        )
    if infer and libraries not in _requirements_by_libraries:
        _requirements_by_libraries[libraries] = model_requirements(info)
    return info


def model_requirements(info: ModelInfo) -> list[str]:
    """The pip requirements a logged model was saved with (its requirements.txt)."""
    location = mlflow.get_logged_model(info.model_id).artifact_location
    # One small file: no "Downloading artifacts" bar in the notebook that logged the model.
    quiet = {MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name: "false"}
    with tempfile.TemporaryDirectory() as folder, mock.patch.dict(os.environ, quiet):
        path = mlflow.artifacts.download_artifacts(f"{location}/requirements.txt", dst_path=folder)
        return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def best_run(experiment_names: list[str] | str, metric: str = "val_rmse", filter_string: str = "") -> Run:
    """The finished run with the lowest `metric` across the named experiments."""
    names = [experiment_names] if isinstance(experiment_names, str) else list(experiment_names)
    runs = mlflow.search_runs(
        experiment_names=names,
        filter_string=" and ".join(f for f in (f"metrics.{metric} >= 0", filter_string) if f),
        order_by=[f"metrics.{metric} ASC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        raise LookupError(f"No run in {names} has metric {metric!r}: run the notebook that logs it first.")
    return runs[0]
