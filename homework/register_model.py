"""Q6: retrain the best hyperopt trials, test them, and register the best on the test month.

The `--top_n` runs of `random-forest-hyperopt` with the lowest validation `rmse` are retrained
with autologging on, with their hyperparameters rebuilt from the logged strings; each run logs
`val_rmse` and `test_rmse` in `random-forest-best-models`. The run with the lowest `test_rmse`
is found with `search_runs`, and its autologged model is registered.

    python register_model.py --data_path ./output --top_n 5
"""

from __future__ import annotations

import ast
from pathlib import Path

import click
import mlflow
from common import (
    BEST_MODELS_EXPERIMENT,
    HPO_EXPERIMENT,
    MODEL_NAME,
    SEARCH_SPACE,
    data_path_option,
    enable_autolog,
    load_pickle,
    run_tags,
    session_runs,
    start_tracking,
    tracking_options,
)
from sklearn.ensemble import RandomForestRegressor

from week2 import utils


def parse_logged_value(text: str):
    """A logged parameter string back to its Python value: 'True', 'None', '10', '0.5' or plain text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):  # a bare word such as 'squared_error'
        return text


def rebuild_params(logged: dict[str, str]) -> dict:
    """RandomForestRegressor arguments from a run's logged parameters, whatever logged them.

    MLflow stores every parameter as a string. Passing 'True' on (as the course's script did with
    the runs autolog had made) crashes the forest; each value is parsed instead, the search
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


def train_and_log_model(data: dict, params: dict, hpo_run_id: str, session: str) -> None:
    (X_train, y_train), (X_val, y_val), (X_test, y_test) = data["train"], data["val"], data["test"]
    with mlflow.start_run(tags=run_tags(session, hpo_run_id=hpo_run_id)):
        # n_jobs only spreads the trees over the cores: the forest is the same as with one.
        rf = RandomForestRegressor(**{"n_jobs": -1, **params})
        rf.fit(X_train, y_train)
        mlflow.log_metric("val_rmse", utils.rmse(y_val, rf.predict(X_val)))
        mlflow.log_metric("test_rmse", utils.rmse(y_test, rf.predict(X_test)))


def logged_model_uri(run) -> str:
    """`models:/<model id>` of the model a run logged (MLflow 3 keeps it outside the run's artifacts)."""
    outputs = run.outputs.model_outputs if run.outputs else []
    if not outputs:
        raise click.ClickException(f"run {run.info.run_id} logged no model: is autologging switched off?")
    return f"models:/{outputs[0].model_id}"


@click.command()
@data_path_option
@click.option(
    "--top_n",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Number of top models that need to be evaluated to decide which one to promote.",
)
@click.option(
    "--model_name", default=MODEL_NAME, show_default=True, help="Registered model to add the best to."
)
@tracking_options
def run_register_model(
    data_path: Path, top_n: int, model_name: str, tracking_uri: str | None, session: str
) -> None:
    """Retrain the top_n trials, log their val and test RMSE, register the best on test."""
    data = {name: load_pickle(data_path / f"{name}.pkl") for name in ("train", "val", "test")}
    start_tracking(BEST_MODELS_EXPERIMENT, tracking_uri)

    best_trials = session_runs(HPO_EXPERIMENT, session, order_by=["metrics.rmse ASC"], max_results=top_n)
    if not best_trials:
        raise click.ClickException(
            f"no runs in {HPO_EXPERIMENT}{f' for session {session}' if session else ''}: run hpo.py first."
        )
    enable_autolog()
    for trial in best_trials:
        train_and_log_model(data, rebuild_params(trial.data.params), trial.info.run_id, session)

    best_run = session_runs(
        BEST_MODELS_EXPERIMENT, session, order_by=["metrics.test_rmse ASC"], max_results=1
    )[0]
    version = mlflow.register_model(logged_model_uri(best_run), model_name)
    click.echo(
        f"registered {model_name} version {version.version} from run {best_run.info.run_id} "
        f"(test_rmse {best_run.data.metrics['test_rmse']:.3f})"
    )


if __name__ == "__main__":
    run_register_model()
