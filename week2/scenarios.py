"""The one training run that every deployment scenario logs (notebooks 06, 07 and 08).

The code is the same whichever store is behind MLflow: a SQLite file, a team server, or a remote
server with authentication. Only `MLFLOW_TRACKING_URI` (and, with auth, the credentials) changes,
which is the point the three notebooks make.

MLflow, matplotlib and scikit-learn are imported inside the function: importing them writes
caches and settings into the home folder, and importing a week2 module must write nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from week2 import config, data, plots, utils

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

MODEL_FAMILY = "linear_regression"
PLOT_PATH = "plots/predicted_vs_actual.png"


def log_baseline_run(run_name: str) -> ModelInfo:
    """Fit the course pipeline with a linear regression and log the run to the active experiment.

    The run carries the course tags, `train_rmse` and `val_rmse`, both months as datasets, a
    predicted-vs-actual plot (`PLOT_PATH`) and the model (preprocessing + estimator as one unit).
    """
    import matplotlib.pyplot as plt
    import mlflow
    from sklearn.linear_model import LinearRegression

    from week2 import tracking

    months = config.months()
    source, (train_path, val_path) = data.resolve_months([months.train, months.val])
    df_train, df_val = utils.read_dataframe(train_path), utils.read_dataframe(val_path)
    X_train, y_train = utils.split_xy(df_train)
    X_val, y_val = utils.split_xy(df_val)
    tags = tracking.run_tags(
        model=MODEL_FAMILY, data_source=source, train_month=months.train, val_month=months.val
    )
    with mlflow.start_run(run_name=run_name, tags=tags):
        estimator = LinearRegression()
        mlflow.log_params({"estimator": type(estimator).__name__, **estimator.get_params()})
        tracking.log_dataset(df_train, train_path, context="training", name=f"green-{months.train}")
        tracking.log_dataset(df_val, val_path, context="validation", name=f"green-{months.val}")
        pipeline = utils.make_pipeline(estimator).fit(X_train, y_train)
        val_pred = pipeline.predict(X_val)
        mlflow.log_metrics(
            {
                "train_rmse": utils.rmse(y_train, pipeline.predict(X_train)),
                "val_rmse": utils.rmse(y_val, val_pred),
            }
        )
        figure = plots.predicted_vs_actual(y_val, val_pred, f"{run_name}, {months.val}")
        mlflow.log_figure(figure, PLOT_PATH)
        plt.close(figure)  # the notebooks show the copy they read back from the store
        return tracking.log_pipeline(pipeline, X_train)
