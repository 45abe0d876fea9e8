"""Q5: tune the random forest with hyperopt, and track every trial with MLflow.

Your part is the TODO in `objective`: each trial becomes a run of `random-forest-hyperopt` with
the hyperparameters hyperopt chose and the validation RMSE as the metric `rmse`. No autologging
here: log just what Q5 needs. TPE with `rstate` seeded 42 gives the same trials everywhere.

    python hpo.py --data_path ./output --num_trials 15
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from common import data_path_option, load_datasets, num_trials_option, run_cli, search
from hyperopt import STATUS_OK
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import root_mean_squared_error


@click.command()
@data_path_option
@num_trials_option
def run_optimization(data_path: Path, num_trials: int) -> None:
    """Search the homework's random-forest space (common.SEARCH_SPACE) for the lowest validation RMSE."""
    (X_train, y_train), (X_val, y_val) = load_datasets(data_path, "train", "val")

    # TODO (Q5): choose the experiment for the trials, before the search starts:
    #   `import mlflow` at the top, then mlflow.set_experiment("random-forest-hyperopt").
    #   No tracking URI here: MLflow reads MLFLOW_TRACKING_URI (`make homework` sets it).

    def objective(params: dict) -> dict:
        # TODO (Q5): make each trial a run: wrap the lines below in `with mlflow.start_run():`,
        #   log the trial's hyperparameters with mlflow.log_params(params) and, once it is
        #   computed, the validation RMSE with mlflow.log_metric("rmse", rmse).
        # n_jobs=-1 only spreads the trees over your cores: the forest is the same as with one.
        rf = RandomForestRegressor(**params, n_jobs=-1)
        rf.fit(X_train, y_train)
        y_pred = rf.predict(X_val)
        rmse = root_mean_squared_error(y_val, y_pred)
        return {"loss": rmse, "status": STATUS_OK}

    trials = search(objective, num_trials)  # TPE over common.SEARCH_SPACE, seeded 42
    click.echo(f"{num_trials} trials; best validation RMSE {trials.best_trial['result']['loss']:.3f}")


if __name__ == "__main__":
    sys.exit(run_cli(run_optimization))
