"""What the homework scripts share: file names, experiments, the search space, pickles, tracking.

The scripts import this module as `common` (Python puts a script's own folder first on the path)
and take everything the course shares from `week2`. Importing it makes no MLflow call.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import click
import mlflow
from hyperopt import hp
from hyperopt.pyll import scope

from week2 import tracking

HOMEWORK_DIR = Path(__file__).resolve().parent
HOMEWORK_MONTHS = ("2023-01", "2023-02", "2023-03")
"""The homework's dataset: green taxi trips, January (train), February (val) and March (test) 2023."""
PICKLES = ("dv.pkl", "train.pkl", "val.pkl", "test.pkl")

TRAIN_EXPERIMENT = "random-forest-train"
HPO_EXPERIMENT = "random-forest-hyperopt"
BEST_MODELS_EXPERIMENT = "random-forest-best-models"
MODEL_NAME = "random-forest-best-model"
SESSION_TAG = "homework_session"
"""Tag naming one `make homework`, so its runs can be told from earlier ones in the same store."""

SEARCH_BOUNDS = {
    "max_depth": (1, 20),
    "n_estimators": (10, 50),
    "min_samples_split": (2, 10),
    "min_samples_leaf": (1, 4),
}
SEARCH_SPACE = {
    **{name: scope.int(hp.quniform(name, low, high, 1)) for name, (low, high) in SEARCH_BOUNDS.items()},
    "random_state": 42,
}
"""The course's random-forest search space; every one of its parameters is a whole number."""


def dump_pickle(obj, path: Path) -> None:
    with open(path, "wb") as f_out:
        pickle.dump(obj, f_out)


def load_pickle(path: Path):
    if not path.is_file():
        raise click.ClickException(
            f"{path} not found: run preprocess_data.py --dest_path {path.parent} first."
        )
    with open(path, "rb") as f_in:
        return pickle.load(f_in)


def data_path_option(command):
    """Add --data_path, the folder preprocess_data.py wrote its pickles to, to a script's command line."""
    return click.option(
        "--data_path",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("output"),
        show_default=True,
        help="Folder where preprocess_data.py wrote its pickles.",
    )(command)


def tracking_options(command):
    """Add --tracking-uri and --session to a script's command line."""
    command = click.option(
        "--session",
        default="",
        help=f"Label the runs (tag {SESSION_TAG}); register_model.py then only uses runs with that label.",
    )(command)
    return click.option(
        "--tracking-uri",
        default=None,
        help="Tracking store; default MLFLOW_TRACKING_URI, else the course's mlflow.db.",
    )(command)


def start_tracking(experiment: str, tracking_uri: str | None) -> str:
    """Use the tracking store (the option, else the environment) and `experiment`; return its id."""
    if tracking_uri:
        # week2.config reads the environment, so this makes the option win for the whole process.
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    return tracking.setup_mlflow(experiment)


def enable_autolog() -> None:
    """Switch on `mlflow.sklearn.autolog`, without logging the training matrix as a dataset input.

    To fingerprint a sparse matrix as a dataset MLflow 3.17 makes it dense: for the real months
    that is 66k trips x 5.7k features, 3 GB and about 7 s per copy. The questions need the
    parameters, metrics and model autolog records, not the dataset. (Autolog still makes one dense
    copy after fitting, to link its training metrics to the data; no option turns that off.)
    """
    mlflow.sklearn.autolog(log_datasets=False)


def run_tags(session: str, **extra: str) -> dict[str, str]:
    """The course's run tags, plus the session label when there is one."""
    return tracking.run_tags(model="random-forest", **extra, **({SESSION_TAG: session} if session else {}))


def session_filter(session: str) -> str:
    """A search_runs filter that keeps the runs of `session` (all runs when it is empty)."""
    return f"tags.{SESSION_TAG} = '{session}'" if session else ""


def session_runs(experiment: str, session: str, order_by: list[str] | None = None, max_results: int = 1000):
    """Active runs of `experiment` (of `session` only, when given), in `order_by` order."""
    return mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=session_filter(session),
        order_by=order_by,
        max_results=max_results,
        output_format="list",
    )
