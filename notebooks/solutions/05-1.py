clipped_model_file = Path(components.name) / "clipped_duration_model.py"
clipped_model_file.write_text('''
import mlflow
import numpy as np
import pandas as pd

from week2.duration_model import DurationModel


class ClippedDurationModel(DurationModel):
    """DurationModel that also says whether clipping changed each prediction."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        minutes = np.asarray(self.estimator.predict(self.preprocessor.transform(model_input)), dtype=float)
        clipped = np.clip(minutes, self.min_minutes, self.max_minutes)
        return pd.DataFrame({"predicted_duration": clipped, "clipped": clipped != minutes})


mlflow.models.set_model(ClippedDurationModel())  # the last set_model wins
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
