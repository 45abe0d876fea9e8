"""Q3, solved: the random forest trained in a run of `random-forest-train`, with autologging on.

python solution/train.py --data_path ./output
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import mlflow
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import root_mean_squared_error

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # homework/, shared with the starters
from common import TRAIN_EXPERIMENT, data_path_option, load_datasets, run_cli, sparse_for_autolog  # noqa: E402


@click.command()
@data_path_option
def run_train(data_path: Path) -> None:
    """Fit RandomForestRegressor(max_depth=10, random_state=0) on train.pkl; print its RMSE on val.pkl."""
    (X_train, y_train), (X_val, y_val) = load_datasets(data_path, "train", "val")
    # Autolog would make a dense copy of this sparse matrix after fitting (3 GB twice for a real
    # month, MLflow 3.17); in this form it cannot. Same numbers, same forest: the docstring of
    # common.sparse_for_autolog says why and what autolog still records.
    X_train = sparse_for_autolog(X_train)

    mlflow.set_experiment(TRAIN_EXPERIMENT)  # the store comes from MLFLOW_TRACKING_URI
    mlflow.sklearn.autolog(log_datasets=False)
    with mlflow.start_run() as run:
        rf = RandomForestRegressor(max_depth=10, random_state=0)
        rf.fit(X_train, y_train)
        y_pred = rf.predict(X_val)
        rmse = root_mean_squared_error(y_val, y_pred)

    params = mlflow.get_run(run.info.run_id).data.params
    click.echo(
        f"validation RMSE {rmse:.3f}; run {run.info.run_id} autologged {len(params)} parameters, "
        f"min_samples_split={params['min_samples_split']}"
    )


if __name__ == "__main__":
    sys.exit(run_cli(run_train))
