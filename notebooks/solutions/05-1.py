clipped_model_file = Path(components.name) / "clipped_duration_model.py"
clipped_model_file.write_text('''
import joblib
import mlflow
import numpy as np
import pandas as pd


class ClippedDurationModel(mlflow.pyfunc.PythonModel):
    """Raw trips in; the predicted minutes, clipped to the trained range, and whether they were."""

    def load_context(self, context):
        self.preprocessor = joblib.load(context.artifacts["preprocessor"])
        self.estimator = joblib.load(context.artifacts["estimator"])
        self.min_minutes = float(context.model_config["min_minutes"])
        self.max_minutes = float(context.model_config["max_minutes"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        minutes = np.asarray(self.estimator.predict(self.preprocessor.transform(model_input)), dtype=float)
        clipped = np.clip(minutes, self.min_minutes, self.max_minutes)
        return pd.DataFrame({"predicted_duration": clipped, "clipped": clipped != minutes})


mlflow.models.set_model(ClippedDurationModel())
''')
flagged_signature = ModelSignature(
    inputs=signature.inputs,
    outputs=Schema([ColSpec("double", "predicted_duration"), ColSpec("boolean", "clipped")]),
)
dependencies = pyfunc_model.model_dependencies(pipeline, model_file=clipped_model_file)
with (
    dependencies as (code_paths, requirements),
    mlflow.start_run(run_name="custom-pyfunc-clipped", tags={"exercise": "05.1"}),
):
    flagged_info = mlflow.pyfunc.log_model(
        name="model",
        python_model=clipped_model_file,
        artifacts=artifacts,
        model_config=model_config,
        code_paths=code_paths,
        pip_requirements=requirements,
        signature=flagged_signature,
        input_example=X_val.head(5),
    )
mlflow.pyfunc.load_model(flagged_info.model_uri).predict(X_val.head(3))
