"""What the course's models carry when a notebook names it rather than leaving it to MLflow's defaults.

Notebook 01 logs its models with MLflow's defaults: `utils.make_pipeline` is made of scikit-learn's
parts only, which skops (MLflow's default format for scikit-learn) trusts. The later notebooks name
what a model takes and carries: raw trip columns in, minutes out (`SIGNATURE`); the `week2` folder
for a pipeline that calls into it (`WEEK2_CODE`: the sweep's, through `pu_do_and_distance`); the
types skops must be told to trust (`TRUSTED_TYPES`); and requirements named (`requirements()`) rather
than inferred: MLflow infers them by loading the model in a subprocess and listing every import,
which adds psutil (MLflow's tracing imports it), and hyperopt and pyspark for any model whose code
imports `week2.sweep`.

The sweep's model (notebook 03) target-encodes PU_DO; its preprocessing lives here, not in
`week2.sweep`, so that loading the model never imports hyperopt.
"""

from __future__ import annotations

from importlib.metadata import version

import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, TargetEncoder

from week2 import utils
from week2.config import REPO_ROOT

SIGNATURE = ModelSignature(
    inputs=Schema(
        [ColSpec("long", "PULocationID"), ColSpec("long", "DOLocationID"), ColSpec("double", "trip_distance")]
    ),
    outputs=Schema([ColSpec("double")]),
)
WEEK2_CODE = [str(REPO_ROOT / "week2")]
TRUSTED_TYPES = [
    "week2.models.pu_do_and_distance",
    "sklearn.tree._tree.Tree",
    "sklearn.model_selection._split.KFold",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBRegressor",
]
"""The sweep's preprocessing function, and the estimators' own types skops does not trust by default."""
PACKAGES = ("mlflow", "scikit-learn", "scipy", "numpy", "pandas", "pyarrow", "skops")
XGBOOST_PACKAGES = (*PACKAGES, "xgboost")


def requirements(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """`packages` pinned to the versions installed here, the ones the model was trained with."""
    return [f"{package}=={version(package)}" for package in packages]


ENCODER_FOLDS = 5


def pu_do_and_distance(trips: pd.DataFrame) -> pd.DataFrame:
    """Raw trip columns → the course's two features, PU_DO (a string) and trip_distance."""
    return utils.add_pu_do(trips[utils.RAW_COLUMNS].copy())[utils.CATEGORICAL + utils.NUMERICAL]


def target_encoding_preprocessor(seed: int) -> Pipeline:
    """Raw trip columns → [target-encoded PU_DO, trip_distance], dense, for the booster.

    `fit_transform` encodes each training row with folds that exclude it (cross fitting); later
    `transform` calls use the encoding learnt on the whole training month. Unseen zone pairs get
    the overall mean duration.
    """
    folds = KFold(ENCODER_FOLDS, shuffle=True, random_state=seed)
    encoder = TargetEncoder(target_type="continuous", cv=folds)
    columns = ColumnTransformer(
        [("target_encoded", encoder, utils.CATEGORICAL), ("raw", "passthrough", utils.NUMERICAL)],
        verbose_feature_names_out=False,
    )
    return Pipeline([("features", FunctionTransformer(pu_do_and_distance)), ("encode", columns)])
