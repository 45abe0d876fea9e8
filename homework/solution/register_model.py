"""Q6, solved: the retrained trial with the lowest test RMSE, found with search_runs, is registered.

python solution/register_model.py --data_path ./output --top_n 5
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import mlflow
from mlflow import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # homework/, shared with the starters
from common import (  # noqa: E402
    BEST_MODELS_EXPERIMENT,
    best_trials,
    data_path_option,
    load_datasets,
    rebuild_params,
    run_cli,
    session_filter,
    sparse_for_autolog,
    top_n_option,
    train_and_log_model,
)

MODEL_NAME = "random-forest-best-model"


@click.command()
@data_path_option
@top_n_option
def run_register_model(data_path: Path, top_n: int) -> None:
    """Retrain the top_n trials, log their val and test RMSE, register the best on test."""
    data = dict(zip(("train", "val", "test"), load_datasets(data_path, "train", "val", "test"), strict=True))
    # Autolog would make a dense copy of the training matrix after each fit (3 GB twice for a real
    # month, MLflow 3.17); in this form it cannot: see common.sparse_for_autolog.
    data["train"] = (sparse_for_autolog(data["train"][0]), data["train"][1])

    client = MlflowClient()  # the store comes from MLFLOW_TRACKING_URI
    trials = best_trials(client, top_n)
    experiment_id = mlflow.set_experiment(BEST_MODELS_EXPERIMENT).experiment_id
    mlflow.sklearn.autolog(log_datasets=False)
    for trial in trials:
        train_and_log_model(data, rebuild_params(trial.data.params), trial.info.run_id)

    best_run = client.search_runs(
        experiment_ids=[experiment_id],
        filter_string=session_filter(),
        order_by=["metrics.test_rmse ASC"],
        max_results=1,
    )[0]
    model_id = best_run.outputs.model_outputs[0].model_id  # the model autolog logged in that run
    version = mlflow.register_model(f"models:/{model_id}", MODEL_NAME)
    click.echo(
        f"registered {MODEL_NAME} version {version.version} from run {best_run.info.run_id} "
        f"(test_rmse {best_run.data.metrics['test_rmse']:.3f})"
    )


if __name__ == "__main__":
    sys.exit(run_cli(run_register_model))
