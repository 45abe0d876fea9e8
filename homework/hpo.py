"""Q5: tune the random forest with hyperopt, one MLflow run per trial.

Each trial logs its hyperparameters and its validation RMSE (`rmse`) in the experiment
`random-forest-hyperopt`; no autologging, as the homework asks. TPE with `rstate` seeded 42
makes the trials the same on every machine.

    python hpo.py --data_path ./output --num_trials 15
"""

from __future__ import annotations

from pathlib import Path

import click
import mlflow
import numpy as np
from common import (
    HPO_EXPERIMENT,
    SEARCH_SPACE,
    data_path_option,
    load_pickle,
    run_tags,
    start_tracking,
    tracking_options,
)
from hyperopt import STATUS_OK, Trials, fmin, tpe
from sklearn.ensemble import RandomForestRegressor

from week2 import config, spark, utils


@click.command()
@data_path_option
@click.option(
    "--num_trials",
    type=click.IntRange(min=1),
    default=15,
    show_default=True,
    help="The number of parameter evaluations for the optimizer to explore.",
)
@click.option(
    "--backend",
    type=click.Choice(config.SWEEP_BACKENDS),
    default=None,
    help="Where the trials run: here, or in Spark workers logging to a tracking server "
    "(default WEEK2_SWEEP_BACKEND, else local).",
)
@tracking_options
def run_optimization(
    data_path: Path, num_trials: int, backend: str | None, tracking_uri: str | None, session: str
) -> None:
    """Search the course's random-forest space; log every trial as a run."""
    X_train, y_train = load_pickle(data_path / "train.pkl")
    X_val, y_val = load_pickle(data_path / "val.pkl")
    experiment_id = start_tracking(HPO_EXPERIMENT, tracking_uri)
    backend = backend or config.sweep_backend()
    # Spark workers get the server and credentials explicitly (and refuse a SQLite file); trials run
    # side by side there, so each forest keeps to one core. n_jobs only spreads the trees over the
    # cores: the forest is the same with one or many.
    worker = spark.WorkerTracking.here() if backend == "spark" else None
    n_jobs = 1 if backend == "spark" else -1
    tags = run_tags(session)  # computed here: the workers cannot import homework/common.py

    def objective(params: dict) -> dict:
        if worker is not None:
            worker.apply()
        with mlflow.start_run(experiment_id=experiment_id, tags=tags):
            mlflow.log_params(params)
            rf = RandomForestRegressor(**params, n_jobs=n_jobs)
            rf.fit(X_train, y_train)
            rmse = utils.rmse(y_val, rf.predict(X_val))
            mlflow.log_metric("rmse", rmse)
        return {"loss": rmse, "status": STATUS_OK}

    trials = spark.trials() if backend == "spark" else Trials()
    fmin(
        fn=objective,
        space=SEARCH_SPACE,
        algo=tpe.suggest,
        max_evals=num_trials,
        trials=trials,
        rstate=np.random.default_rng(42),  # the course's seed: the same trials everywhere
    )
    click.echo(f"{num_trials} trials; best validation rmse {trials.best_trial['result']['loss']:.3f}")


if __name__ == "__main__":
    run_optimization()
