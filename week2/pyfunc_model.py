"""A custom MLflow model: the champion's preprocessor and estimator, post-processed, behind one API.

`DurationModel` loads its two artifacts (the fitted preprocessor and the fitted estimator) in
`load_context`, clips the predicted minutes to the range seen in training (`clip_to_range`) and
answers `{"predictions": [...]}`. The preprocessor and the class itself live in `week2`, so the
package travels with the model as a wheel (`code_paths` + `pip_requirements`): the model then
loads in a fresh environment built from its own requirements, on any machine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow.models.model import ModelInfo

from week2 import config

PREPROCESSOR = "preprocessor"
ESTIMATOR = "estimator"


def clip_to_range(minutes, low: float, high: float) -> np.ndarray:
    """Predicted minutes clipped into [low, high]: no negative or endless trips leave the model."""
    return np.clip(np.asarray(minutes, dtype=float), low, high)


class DurationModel(mlflow.pyfunc.PythonModel):
    """Raw trips in, `{"predictions": [minutes, ...]}` out, clipped to the trained range.

    The trained range comes from the model configuration (`min_minutes`, `max_minutes`), so it is
    written in MLmodel for anyone to read, not hidden in a pickle.
    """

    def load_context(self, context):
        self.preprocessor = joblib.load(context.artifacts[PREPROCESSOR])
        self.estimator = joblib.load(context.artifacts[ESTIMATOR])
        self.min_minutes = float(context.model_config["min_minutes"])
        self.max_minutes = float(context.model_config["max_minutes"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> dict[str, list[float]]:
        minutes = self.estimator.predict(self.preprocessor.transform(model_input))
        return {"predictions": clip_to_range(minutes, self.min_minutes, self.max_minutes).tolist()}


def save_components(pipeline, folder: Path) -> dict[str, str]:
    """Save a fitted course pipeline's two steps as files; return them as pyfunc artifacts."""
    folder.mkdir(parents=True, exist_ok=True)
    artifacts = {}
    for key, step in ((PREPROCESSOR, "preprocess"), (ESTIMATOR, "model")):
        path = folder / f"{key}.joblib"
        joblib.dump(pipeline.named_steps[step], path)
        artifacts[key] = str(path)
    return artifacts


def build_wheel(out_dir: Path) -> Path:
    """Build the `week2` package as a wheel into `out_dir` and return its path.

    The build runs on a copy of `pyproject.toml` and `week2/`, so it leaves no `build/` or
    `*.egg-info` behind in the repository.
    """
    with tempfile.TemporaryDirectory(prefix="week2-wheel-") as scratch:
        source = Path(scratch) / "src"
        source.mkdir()
        shutil.copy(config.REPO_ROOT / "pyproject.toml", source)
        shutil.copytree(
            config.REPO_ROOT / "week2", source / "week2", ignore=shutil.ignore_patterns("__pycache__")
        )
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out_dir)]
        result = subprocess.run([*command, str(source)], capture_output=True, text=True)
        if result.returncode != 0:
            # pip fetches the build backend (setuptools) from the package index.
            raise RuntimeError(f"Building the week2 wheel failed; is PyPI reachable?\n{result.stderr}")
    return next(Path(out_dir).glob("week2-*.whl"))


def log_custom_model(
    pipeline,
    example: pd.DataFrame,
    trained_range: tuple[float, float],
    requirements: list[str],
    name: str = "model",
) -> ModelInfo:
    """Log `DurationModel` around a fitted course pipeline in the active run.

    `requirements` are the pip requirements of the estimator (e.g. the champion's own); the
    `week2` wheel is built, shipped in the model's `code/` folder and added to them by a path
    relative to the model, which is how MLflow installs it when it builds the model's environment.
    """
    low, high = trained_range
    with tempfile.TemporaryDirectory(prefix="week2-custom-model-") as scratch, warnings.catch_warnings():
        # Zone IDs are never missing, so MLflow's hint about integer columns and NaN does not apply.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        wheel = build_wheel(Path(scratch) / "wheel")
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=DurationModel(),
            artifacts=save_components(pipeline, Path(scratch) / "artifacts"),
            model_config={"min_minutes": float(low), "max_minutes": float(high)},
            input_example=example.head(5),
            code_paths=[str(wheel)],
            pip_requirements=[*requirements, f"code/{wheel.name}"],
        )
