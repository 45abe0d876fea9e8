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
from scipy import sparse
from sklearn.feature_extraction import DictVectorizer
from sklearn.metrics import root_mean_squared_error
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

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


def to_int32_indices(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """Cast a CSR matrix's indices to int32.

    DictVectorizer can emit int64 indices, which Lasso and LinearSVR reject with today's scipy.
    """
    matrix = matrix.tocsr()
    matrix.indices = matrix.indices.astype(np.int32)
    matrix.indptr = matrix.indptr.astype(np.int32)
    return matrix


def make_preprocessor() -> Pipeline:
    """DataFrame of raw trip columns → sparse feature matrix. Fit it on the training month only."""
    return Pipeline(
        [
            ("features", FunctionTransformer(feature_dicts)),
            ("vectorizer", DictVectorizer()),
            ("int32", FunctionTransformer(to_int32_indices, accept_sparse=True)),
        ]
    )


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
