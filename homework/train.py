"""Q3: train a RandomForestRegressor(max_depth=10, random_state=0) with MLflow autologging.

`enable_autolog()` records the estimator's parameters, training metrics and the model;
the script adds the validation RMSE. The run lands in the experiment `random-forest-train`.

    python train.py --data_path ./output
"""

from __future__ import annotations

from pathlib import Path

import click
import mlflow
from common import (
    TRAIN_EXPERIMENT,
    data_path_option,
    enable_autolog,
    load_pickle,
    run_tags,
    start_tracking,
    tracking_options,
)
from sklearn.ensemble import RandomForestRegressor

from week2 import utils


@click.command()
@data_path_option
@tracking_options
def run_train(data_path: Path, tracking_uri: str | None, session: str) -> None:
    """Fit the random forest on train.pkl with autolog on; log its RMSE on val.pkl."""
    X_train, y_train = load_pickle(data_path / "train.pkl")
    X_val, y_val = load_pickle(data_path / "val.pkl")

    start_tracking(TRAIN_EXPERIMENT, tracking_uri)
    enable_autolog()
    with mlflow.start_run(tags=run_tags(session)) as run:
        rf = RandomForestRegressor(max_depth=10, random_state=0)
        rf.fit(X_train, y_train)
        val_rmse = utils.rmse(y_val, rf.predict(X_val))
        mlflow.log_metric("val_rmse", val_rmse)

    logged = mlflow.get_run(run.info.run_id).data.params
    click.echo(f"run {run.info.run_id}: val_rmse {val_rmse:.3f}, {len(logged)} parameters autologged")


if __name__ == "__main__":
    run_train()
