"""Notebook 05's custom model, as a "model from code": MLflow copies this file into the model and runs it.

`mlflow.pyfunc.log_model(python_model=<this file>, …)` stores the file itself, not a pickle of the
class: loading the model runs it, and `set_model` at the bottom says which object is the model.
The model loads its two artifacts (the fitted preprocessor and estimator of the champion) in
`load_context` and clips the predicted minutes to the range seen in training, which it reads from
the model configuration (so that range is written in MLmodel for anyone to read).
"""

import joblib
import mlflow
import numpy as np
import pandas as pd


class DurationModel(mlflow.pyfunc.PythonModel):
    """Raw trips in, predicted minutes out, clipped into the trained range."""

    def load_context(self, context):
        self.preprocessor = joblib.load(context.artifacts["preprocessor"])
        self.estimator = joblib.load(context.artifacts["estimator"])
        self.min_minutes = float(context.model_config["min_minutes"])
        self.max_minutes = float(context.model_config["max_minutes"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        minutes = self.estimator.predict(self.preprocessor.transform(model_input))
        # A linear model happily predicts negative minutes for very short trips: never let one out.
        return np.clip(np.asarray(minutes, dtype=float), self.min_minutes, self.max_minutes)


mlflow.models.set_model(DurationModel())
