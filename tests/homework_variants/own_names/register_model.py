import os
import pickle

import click
import mlflow
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import root_mean_squared_error

mlflow.set_tracking_uri("sqlite:///mlflow.db")
mlflow.set_experiment("random-forest-best-models")
mlflow.sklearn.autolog()


def load_pickle(filename):
    with open(filename, "rb") as f_in:
        return pickle.load(f_in)


@click.command()
@click.option("--data_path", default="./output")
@click.option("--top_n", default=5, type=int)
def run_register_model(data_path: str, top_n: int):
    X_train, y_train = load_pickle(os.path.join(data_path, "train.pkl"))
    X_val, y_val = load_pickle(os.path.join(data_path, "val.pkl"))
    X_test, y_test = load_pickle(os.path.join(data_path, "test.pkl"))

    top_runs = mlflow.search_runs(
        experiment_names=["random-forest-hyperopt"], order_by=["metrics.rmse ASC"], max_results=top_n
    )
    for _, row in top_runs.iterrows():
        params = {p: int(row[f"params.{p}"]) for p in ("max_depth", "n_estimators", "min_samples_split", "min_samples_leaf", "random_state")}
        with mlflow.start_run():
            rf = RandomForestRegressor(**params).fit(X_train, y_train)
            mlflow.log_metric("val_rmse", root_mean_squared_error(y_val, rf.predict(X_val)))
            mlflow.log_metric("test_rmse", root_mean_squared_error(y_test, rf.predict(X_test)))

    best = mlflow.search_runs(
        experiment_names=["random-forest-best-models"], order_by=["metrics.test_rmse ASC"], max_results=1,
        output_format="list",
    )[0]
    model_id = best.outputs.model_outputs[0].model_id
    mlflow.register_model(f"models:/{model_id}", "green-taxi-duration")


if __name__ == "__main__":
    run_register_model()
