"""The course's preprocessing, its model pipeline and its metric: the one copy of each.

Keep `read_dataframe` exactly as it is: the homework answers depend on it. The duration comes
from the lpep pickup and dropoff times, trips outside 1..60 minutes are dropped, and the zone IDs
become strings so that DictVectorizer one-hot encodes them instead of treating them as numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.compose import ColumnTransformer
from sklearn.feature_selection import VarianceThreshold
from sklearn.metrics import root_mean_squared_error
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures

TARGET = "duration"
CATEGORICAL = ["PU_DO"]
NUMERICAL = ["trip_distance"]
RAW_COLUMNS = ["PULocationID", "DOLocationID", "trip_distance"]
"""The raw trip columns a logged model takes: it builds PU_DO itself."""
SEEN_COLUMNS = [*RAW_COLUMNS, *CATEGORICAL, TARGET]
"""What the pipeline reads of a prepared month, and so what a run logs of it as its dataset
(notebooks 01–03 type the same list): one month, one digest, whichever notebook logged it."""


TRIP_COLUMNS = ["lpep_pickup_datetime", "lpep_dropoff_datetime", *RAW_COLUMNS]
"""The columns of a TLC green file the preprocessing reads."""


def read_dataframe(path: str | Path) -> pd.DataFrame:
    """Read a TLC green month and apply the course preprocessing."""
    df = read_trips(path)
    df[TARGET] = (df.lpep_dropoff_datetime - df.lpep_pickup_datetime).dt.total_seconds() / 60
    df = df[(df[TARGET] >= 1) & (df[TARGET] <= 60)].copy()
    df = add_pu_do(df)
    return df


def read_trips(path: str | Path) -> pd.DataFrame:
    """A TLC green parquet file as it is, or a DataError saying why it cannot be used and what to do.

    A truncated download or a file of another dataset fails here, with its path, instead of as a
    pyarrow or pandas error deep inside the preprocessing. The file itself is left as it is.
    """
    from week2.data import DataError

    try:
        df = pd.read_parquet(path)
    except (OSError, pa.ArrowException) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(
            f"{path} cannot be read as parquet ({reason}): delete it and get the month again (make data)."
        ) from None
    missing = [column for column in TRIP_COLUMNS if column not in df.columns]
    if missing:
        raise DataError(
            f"{path} lacks the column(s) {', '.join(missing)}: it is not a TLC green taxi file; "
            "use green_tripdata_YYYY-MM.parquet (make data)."
        )
    return df


def add_pu_do(df: pd.DataFrame) -> pd.DataFrame:
    """Zone IDs as strings and their pair `PU_DO = PU + "_" + DO`, in place and returned."""
    for column in ("PULocationID", "DOLocationID"):
        df[column] = df[column].astype(str)
    df["PU_DO"] = df["PULocationID"] + "_" + df["DOLocationID"]
    return df


def feature_dicts(df: pd.DataFrame) -> list[dict]:
    """Raw trip columns → the dicts DictVectorizer reads (PU_DO categorical, distance numerical)."""
    frame = add_pu_do(df[RAW_COLUMNS].copy())
    return frame[CATEGORICAL + NUMERICAL].to_dict(orient="records")


def make_preprocessor() -> Pipeline:
    """DataFrame of raw trip columns → sparse feature matrix. Fit it on the training month only.

    The features are the course's DictVectorizer over `feature_dicts`, column for column, in
    another order (the same model, up to a solver's tolerance), from scikit-learn's parts alone:
    MLflow's default format for scikit-learn (skops) then saves and loads the model without being
    told which types to trust, and the model needs no code of this course to load.

    PU_DO is a feature cross of the two zones: one-hot pickup and dropoff zones, then the product
    of every two of those columns (degree 2 only): a pickup column times a dropoff column is 1
    exactly for trips of that zone pair, while two pickups (or two dropoffs) never are. The
    columns that are constant on the training month go (pairs never seen, impossible products),
    which leaves one column per pair seen, as DictVectorizer has. An unseen zone or pair becomes
    all zeros, as with DictVectorizer. (A month of one single pair is the exception: its column is
    all ones and goes too, which changes no prediction of a model with an intercept.)
    """
    zone_pairs = Pipeline(
        [
            ("one_hot", OneHotEncoder(handle_unknown="ignore")),
            ("products", PolynomialFeatures(degree=(2, 2), interaction_only=True, include_bias=False)),
        ]
    )
    columns = ColumnTransformer(
        [("PU_DO", zone_pairs, ["PULocationID", "DOLocationID"]), ("distance", "passthrough", NUMERICAL)],
        sparse_threshold=1.0,  # sparse whatever the density, as DictVectorizer's output
    )
    return Pipeline([("columns", columns), ("seen", VarianceThreshold())])


def make_pipeline(estimator) -> Pipeline:
    """The course model as one unit: preprocessing + estimator, so it predicts from raw trips."""
    return Pipeline([("preprocess", make_preprocessor()), ("model", estimator)])


def split_xy(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Raw feature columns (zone IDs as integers, as in the TLC files) and the target.

    The model's signature is taken from these columns, so a logged model accepts trips exactly as
    they come in a TLC parquet file.
    """
    features = df[RAW_COLUMNS].astype({"PULocationID": "int64", "DOLocationID": "int64"})
    return features, df[TARGET].to_numpy()


def rmse(y_true, y_pred) -> float:
    return float(root_mean_squared_error(y_true, y_pred))
