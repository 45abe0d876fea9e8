"""What the homework's scripts share, and nothing of the MLflow code you write.

The starters (`homework/*.py`) and the reference solution (`homework/solution/*.py`) import this
module as `common`: names of files and experiments, the search space, the pickles, a careful
command line, and the one trick that keeps autolog from making the training matrix dense.
Importing it makes no MLflow call.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import re
import sys
from pathlib import Path

import click
import mlflow
import numpy as np
from hyperopt import Trials, fmin, hp, tpe
from hyperopt.pyll import scope
from mlflow import MlflowClient
from mlflow.entities import ViewType
from scipy import sparse
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import root_mean_squared_error

from week2.errors import Week2Error

HOMEWORK_DIR = Path(__file__).resolve().parent
HOMEWORK_MONTHS = ("2023-01", "2023-02", "2023-03")
"""The 2025 homework's data: green taxi trips, January (train), February (val) and March (test) 2023."""
PICKLES = ("dv.pkl", "train.pkl", "val.pkl", "test.pkl")

TRAIN_EXPERIMENT = "random-forest-train"
HPO_EXPERIMENT = "random-forest-hyperopt"
BEST_MODELS_EXPERIMENT = "random-forest-best-models"
SUBMISSIONS_EXPERIMENT = "homework-submissions"
"""On a class server: one run per `make homework CLASS=…`, the session's record (run_homework.py)."""
SESSION_TAG = "homework_session"
"""Tag naming one `make homework`, so that its runs can be told from earlier ones in the same store.

`make homework` puts it on every run its scripts start through MLflow's `MLFLOW_RUN_CONTEXT`
(tags MLflow adds to each new run): your code does not have to set it.
"""

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
"""The homework's random-forest search space; every one of its parameters is a whole number."""


# --- data -------------------------------------------------------------------------------------------


def dump_pickle(obj, path: Path) -> None:
    with open(path, "wb") as f_out:
        pickle.dump(obj, f_out)


def load_datasets(data_path: Path, *names: str) -> list:
    """The `(X, y)` tuples preprocess_data.py pickled as `<name>.pkl` in `data_path`."""
    return [load_pickle(data_path / f"{name}.pkl") for name in names]


def load_pickle(path: Path):
    if not path.is_file():
        raise click.ClickException(
            f"{path} not found: run preprocess_data.py --dest_path {path.parent} first."
        )
    with open(path, "rb") as f_in:
        return pickle.load(f_in)


class SparseOnly(sparse.csr_matrix):
    """A CSR matrix that refuses to be made dense; everything else is a plain CSR matrix."""

    def toarray(self, order=None, out=None):
        raise TypeError("this training matrix is kept sparse on purpose (see common.sparse_for_autolog)")


def sparse_for_autolog(X: sparse.spmatrix) -> SparseOnly:
    """The training matrix, unchanged, in a form MLflow's scikit-learn autolog does not make dense.

    After every autologged `fit`, MLflow 3.17 builds a dataset from the training matrix to tie the
    training metrics to it (`_create_dataset` in mlflow/sklearn/__init__.py), even with
    `log_datasets=False`: a sparse matrix is made dense there (`X.toarray()`), then copied once more
    to fingerprint it. For January 2023 (65,946 trips x 5,702 features) that is 3 GB twice, and
    train.py peaked at 6.25 GB. No autolog option turns this step off. This matrix cannot be made
    dense, so that one step gives up (MLflow catches it and logs it at debug level) and autolog
    records everything else as before: the parameters (min_samples_split, Q3), the training
    metrics, the model and its signature. Only the metrics' link to a dataset is missing, a
    dataset that log_datasets=False does not log anyway. The forest is the same: it sees the same
    numbers. Peak with it: about 0.4 GB.
    """
    return SparseOnly(X)


def search(objective, num_trials: int, trials=None):
    """hyperopt's TPE over SEARCH_SPACE for `num_trials`, seeded as the homework is; the trials."""
    trials = Trials() if trials is None else trials
    fmin(
        fn=objective,
        space=SEARCH_SPACE,
        algo=tpe.suggest,
        max_evals=num_trials,
        trials=trials,
        rstate=np.random.default_rng(42),  # the homework's seed: the same trials everywhere
    )
    return trials


# --- models -----------------------------------------------------------------------------------------


def parse_logged_value(text: str):
    """A logged parameter string back to its Python value: 'True', 'None', '10', '0.5' or plain text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):  # a bare word such as 'squared_error'
        return text


def rebuild_params(logged: dict[str, str]) -> dict:
    """RandomForestRegressor arguments from a run's logged parameters, whatever logged them.

    MLflow stores every parameter as a string. Passing 'True' on (as the course's old script did
    with runs autolog had made) crashes the forest; each value is parsed instead, the search
    space's parameters become whole numbers ('10.0' included), and names the forest does not take
    are left out.
    """
    accepted = RandomForestRegressor().get_params()
    params = {}
    for name, text in logged.items():
        if name not in accepted:
            continue
        value = parse_logged_value(text)
        if name in SEARCH_SPACE and value is not None:
            value = int(float(value))
        params[name] = value
    return params


def this_session() -> str:
    """The `make homework` session this process runs in ('' when you run a script by hand)."""
    try:
        return str(json.loads(os.environ.get("MLFLOW_RUN_CONTEXT") or "{}").get(SESSION_TAG, ""))
    except (ValueError, AttributeError):  # not a JSON object: not ours
        return ""


def session_filter(session: str | None = None) -> str:
    """A search_runs filter for the runs of `session` (default this one); '' (all runs) outside one."""
    session = this_session() if session is None else session
    return f"tags.{SESSION_TAG} = '{session}'" if session else ""


def train_and_log_model(data: dict, params: dict, hpo_run_id: str) -> None:
    """Retrain one trial (autolog records it) and log its validation and test RMSE."""
    (X_train, y_train), (X_val, y_val), (X_test, y_test) = data["train"], data["val"], data["test"]
    with mlflow.start_run(tags={"hpo_run_id": hpo_run_id}):
        # n_jobs only spreads the trees over the cores: the forest is the same as with one.
        rf = RandomForestRegressor(**{"n_jobs": -1, **params})
        rf.fit(X_train, y_train)
        mlflow.log_metric("val_rmse", root_mean_squared_error(y_val, rf.predict(X_val)))
        mlflow.log_metric("test_rmse", root_mean_squared_error(y_test, rf.predict(X_test)))


def best_trials(client: MlflowClient, top_n: int) -> list:
    """The top_n runs of the search (of this `make homework` only, when run by it), best first."""
    experiment = client.get_experiment_by_name(HPO_EXPERIMENT)
    runs = []
    if experiment is not None:
        runs = client.search_runs(
            experiment_ids=[experiment.experiment_id],
            filter_string=session_filter(),
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=top_n,
            order_by=["metrics.rmse ASC"],
        )
    if not runs:
        raise click.ClickException(
            f"no runs in {HPO_EXPERIMENT} to retrain: do the TODO (Q5) in hpo.py and run it first."
        )
    return runs


# --- command line -----------------------------------------------------------------------------------


_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])", re.ASCII)


def month_problem(text: str) -> str | None:
    """Why `text` is not a month YYYY-MM (ASCII digits, no spaces, year 1 or later), or None."""
    if not _MONTH.fullmatch(text):
        return f"{text!r} is not a month YYYY-MM"
    if text.startswith("0000"):
        return f"{text!r} has year 0"
    return None


class Month(click.ParamType):
    """A month YYYY-MM."""

    name = "YYYY-MM"

    def convert(self, value, param, ctx):
        problem = month_problem(value)
        if problem:
            self.fail(
                f"{problem}: write it with ASCII digits and no spaces, e.g. {param.default}.", param, ctx
            )
        return value


class Months(click.ParamType):
    """Three months, train, validation and test, separated by single spaces (or commas)."""

    name = "'YYYY-MM YYYY-MM YYYY-MM'"

    def __init__(self, make_variable: str):
        self.make_variable = make_variable

    def convert(self, value, param, ctx):
        if isinstance(value, list | tuple):
            return list(value)
        months = re.split(r"[ ,]", value)
        problems = [
            month_problem(month) if month else f"{value!r} has a stray space or comma" for month in months
        ]
        if len(months) != 3 or any(problems):
            problem = next(filter(None, problems), f"{value!r} is not three months")
            self.fail(
                f"{problem}: write the train, validation and test months as YYYY-MM separated by single "
                f'spaces, e.g. {self.make_variable}="{" ".join(HOMEWORK_MONTHS)}".',
                param,
                ctx,
            )
        return months


class WholeNumber(click.ParamType):
    """A whole number of at least `minimum`, in ASCII digits."""

    name = "N"

    def __init__(self, minimum: int = 1, make_variable: str | None = None):
        self.minimum = minimum
        self.make_variable = make_variable

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        if re.fullmatch(r"[0-9]+", value, re.ASCII) and int(value) >= self.minimum:
            return int(value)
        example = f"{self.make_variable}={param.default}" if self.make_variable else param.default
        self.fail(
            f"{value!r} is not a whole number of {self.minimum} or more: write e.g. {example}.", param, ctx
        )


class Folder(click.ParamType):
    """A folder; `writable` ones must be creatable or writable, and no path may name a file."""

    name = "FOLDER"

    def __init__(self, purpose: str, writable: bool = False):
        self.purpose = purpose
        self.writable = writable

    def convert(self, value, param, ctx):
        path = Path(value)
        if path.exists() and not path.is_dir():
            self.fail(f"{value!r} is a file: give {self.purpose}.", param, ctx)
        if self.writable:
            existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
            if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
                self.fail(
                    f"{str(existing)!r} is not a folder you can write to: give {self.purpose}.", param, ctx
                )
        return path


class OutputFile(click.ParamType):
    """A file to write; it may not be a folder, and its folder must be writable."""

    name = "FILE"

    def convert(self, value, param, ctx):
        path = Path(value)
        if path.is_dir():
            self.fail(f"{value!r} is a folder: give the file to write, e.g. submission.json.", param, ctx)
        Folder("a folder you can write to", writable=True).convert(str(path.parent), param, ctx)
        return path


def data_path_option(command):
    """Add --data_path, the folder preprocess_data.py wrote its pickles to, to a script's command line."""
    return click.option(
        "--data_path",
        type=Folder("the folder preprocess_data.py wrote its pickles to, e.g. ./output"),
        default="output",
        show_default=True,
        help="Folder where preprocess_data.py wrote its pickles.",
    )(command)


def num_trials_option(command):
    """Add hpo.py's --num_trials."""
    return click.option(
        "--num_trials",
        type=WholeNumber(minimum=1),
        default=15,
        show_default=True,
        help="The number of parameter evaluations for the optimizer to explore.",
    )(command)


def session_options(command):
    """Add the homework session's --months, --trials and --top_n (make: MONTHS, TRIALS) to a command."""
    for option in reversed(
        [
            click.option(
                "--months",
                type=Months("MONTHS"),
                default=" ".join(HOMEWORK_MONTHS),
                show_default=True,
                help="Train, validation and test months (green taxi), separated by spaces (make: MONTHS).",
            ),
            click.option(
                "--trials",
                type=WholeNumber(minimum=1, make_variable="TRIALS"),
                default=15,
                show_default=True,
                help="Hyperopt trials (make: TRIALS).",
            ),
            click.option(
                "--top_n",
                type=WholeNumber(minimum=1),
                default=5,
                show_default=True,
                help="Trials to retrain and test.",
            ),
        ]
    ):
        command = option(command)
    return command


def top_n_option(command):
    """Add register_model.py's --top_n."""
    return click.option(
        "--top_n",
        type=WholeNumber(minimum=1),
        default=5,
        show_default=True,
        help="Number of top models that need to be evaluated to decide which one to promote.",
    )(command)


def run_cli(command: click.Command, args: list[str] | None = None) -> int:
    """Run a script's command; a wrong option or a missing step is one line on stderr and status 2.

    (Click alone prints a usage block for a wrong option and uses status 1 for other errors.)
    """
    try:
        return command.main(args, prog_name=Path(sys.argv[0]).name, standalone_mode=False) or 0
    except click.UsageError as error:
        message = error.format_message()
    except (click.ClickException, Week2Error) as error:
        message = error.format_message() if isinstance(error, click.ClickException) else str(error)
    except click.Abort:
        message = "stopped (Ctrl+C)"
    click.echo(f"error: {' '.join(message.split())}", err=True)
    return 2
