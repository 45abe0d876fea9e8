"""The course preprocessing, pipeline and metric, on the real month when it is here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import real_month
from scipy import sparse
from sklearn.linear_model import Lasso, LinearRegression

from week2 import utils


def test_read_dataframe_keeps_one_to_sixty_minutes_and_builds_pu_do(tmp_path):
    start = pd.Timestamp("2021-01-01 08:00")
    raw = pd.DataFrame(
        {
            "lpep_pickup_datetime": [start] * 4,
            "lpep_dropoff_datetime": start + pd.to_timedelta([0.5, 1, 60, 61], unit="min"),
            "PULocationID": [7, 41, 74, 1],
            "DOLocationID": [42, 75, 7, 2],
            "trip_distance": [0.1, 1.0, 9.5, 20.0],
        }
    )
    raw.to_parquet(tmp_path / "month.parquet")

    df = utils.read_dataframe(tmp_path / "month.parquet")

    assert df["duration"].tolist() == [1.0, 60.0]  # both ends of the window are kept
    assert df["PU_DO"].tolist() == ["41_75", "74_7"]
    assert df["PULocationID"].map(type).eq(str).all()


def test_pipeline_takes_raw_columns_and_casts_indices_to_int32():
    X = pd.DataFrame({"PULocationID": [1, 2, 1], "DOLocationID": [3, 3, 4], "trip_distance": [1.0, 2.0, 3.0]})
    matrix = utils.make_preprocessor().fit_transform(X)
    assert sparse.issparse(matrix)
    assert matrix.shape == (3, 4)  # three PU_DO pairs one-hot + distance
    assert matrix.indices.dtype == np.int32
    # Lasso is one of the estimators that rejects int64 sparse indices.
    model = utils.make_pipeline(Lasso(alpha=0.01)).fit(X, [5.0, 10.0, 15.0])
    assert model.predict(X).shape == (3,)


def test_rmse_matches_definition():
    assert utils.rmse([0, 0, 0, 0], [1, -1, 1, -1]) == pytest.approx(1.0)
    assert utils.rmse([1, 2], [1, 2]) == 0.0


@pytest.mark.real_data
def test_real_january_2021_gives_the_course_numbers():
    """The preprocessing must stay exactly the course's: its published figures for Jan/Feb 2021."""
    train = utils.read_dataframe(real_month("2021-01"))
    val = utils.read_dataframe(real_month("2021-02"))
    assert (len(train), len(val)) == (73_908, 61_921)
    assert train["duration"].between(1, 60).all()

    X_train, y_train = utils.split_xy(train)
    X_val, y_val = utils.split_xy(val)
    assert X_train.dtypes.to_dict() == {
        "PULocationID": np.dtype("int64"),
        "DOLocationID": np.dtype("int64"),
        "trip_distance": np.dtype("float64"),
    }
    model = utils.make_pipeline(LinearRegression()).fit(X_train, y_train)
    # The course's LinearRegression on PU_DO + trip_distance: validation RMSE 7.7587.
    assert utils.rmse(y_val, model.predict(X_val)) == pytest.approx(7.7587, abs=5e-4)
