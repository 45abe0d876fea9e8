"""Q5, solved: every hyperopt trial is a run of `random-forest-hyperopt` with its params and `rmse`.

`--backend spark` (or WEEK2_SWEEP_BACKEND=spark) runs the trials in Spark workers instead; they
log to a tracking server (`make server`, then MLFLOW_TRACKING_URI=http://127.0.0.1:5001), never to
a SQLite file.

    python solution/hpo.py --data_path ./output --num_trials 15
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import mlflow
from hyperopt import STATUS_OK
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import root_mean_squared_error

from week2 import config, spark

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # homework/, shared with the starters
from common import (  # noqa: E402
    HPO_EXPERIMENT,
    SESSION_TAG,
    data_path_option,
    load_datasets,
    num_trials_option,
    run_cli,
    search,
    this_session,
)


@click.command()
@data_path_option
@num_trials_option
@click.option(
    "--backend",
    type=click.Choice(config.SWEEP_BACKENDS),
    default=None,
    help="Where the trials run: here, or in Spark workers logging to a tracking server "
    "(default WEEK2_SWEEP_BACKEND, else local).",
)
def run_optimization(data_path: Path, num_trials: int, backend: str | None) -> None:
    """Search the homework's random-forest space (common.SEARCH_SPACE) for the lowest validation RMSE."""
    (X_train, y_train), (X_val, y_val) = load_datasets(data_path, "train", "val")

    experiment_id = mlflow.set_experiment(HPO_EXPERIMENT).experiment_id  # store: MLFLOW_TRACKING_URI
    backend = backend or config.sweep_backend()
    # Spark workers get the server and credentials explicitly (and refuse a SQLite file), and the
    # session tag too: they do not read this process's environment. Trials run side by side there,
    # so each forest keeps to one core; n_jobs only spreads the trees, the forest is the same.
    worker = spark.WorkerTracking.here() if backend == "spark" else None
    tags = {SESSION_TAG: this_session()} if this_session() else None
    n_jobs = 1 if worker else -1

    def objective(params: dict) -> dict:
        if worker is not None:
            worker.apply()
        with mlflow.start_run(experiment_id=experiment_id, tags=tags):
            mlflow.log_params(params)
            rf = RandomForestRegressor(**params, n_jobs=n_jobs)
            rf.fit(X_train, y_train)
            y_pred = rf.predict(X_val)
            rmse = root_mean_squared_error(y_val, y_pred)
            mlflow.log_metric("rmse", rmse)
        return {"loss": rmse, "status": STATUS_OK}

    trials = search(objective, num_trials, spark.trials() if worker else None)
    click.echo(f"{num_trials} trials; best validation RMSE {trials.best_trial['result']['loss']:.3f}")


if __name__ == "__main__":
    sys.exit(run_cli(run_optimization))
