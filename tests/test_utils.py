"""The course preprocessing, pipeline and metric, on the real month when it is here."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import skops.io
from conftest import real_month
from scipy import sparse
from sklearn.feature_extraction import DictVectorizer
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


def test_pipeline_takes_raw_columns_and_one_hot_encodes_the_zone_pairs():
    X = pd.DataFrame({"PULocationID": [1, 2, 1], "DOLocationID": [3, 3, 4], "trip_distance": [1.0, 2.0, 3.0]})
    matrix = utils.make_preprocessor().fit_transform(X)
    assert sparse.issparse(matrix)
    assert matrix.shape == (3, 4)  # three PU_DO pairs one-hot + distance
    assert matrix.indices.dtype == np.int32
    # Lasso is one of the estimators that rejects int64 sparse indices.
    model = utils.make_pipeline(Lasso(alpha=0.01)).fit(X, [5.0, 10.0, 15.0])
    assert model.predict(X).shape == (3,)


def test_pipeline_has_the_course_dictvectorizer_features_and_needs_no_trusted_types(sample_xy):
    """Column for column the features of DictVectorizer over PU_DO and trip_distance (unseen pairs of
    the validation month included), from scikit-learn parts that skops loads without trusted types."""
    (X_train, y_train), (X_val, y_val), _ = sample_xy
    pipeline = utils.make_pipeline(LinearRegression()).fit(X_train, y_train)
    vectorizer = DictVectorizer().fit(utils.feature_dicts(X_train))
    # "PU_DO__PULocationID_7 DOLocationID_42" is DictVectorizer's "PU_DO=7_42"
    names = [
        re.sub(r"^PU_DO__PULocationID_(\d+) DOLocationID_(\d+)$", r"PU_DO=\1_\2", name).replace(
            "distance__", ""
        )
        for name in pipeline[0].get_feature_names_out()
    ]
    assert sorted(names) == sorted(vectorizer.feature_names_)
    position = {name: i for i, name in enumerate(names)}
    order = [position[name] for name in vectorizer.feature_names_]
    for X in (X_train, X_val):
        assert (pipeline[0].transform(X)[:, order] != vectorizer.transform(utils.feature_dicts(X))).nnz == 0
    unseen = ~utils.add_pu_do(X_val.copy())["PU_DO"].isin(utils.add_pu_do(X_train.copy())["PU_DO"])
    assert unseen.any(), "the sample's validation month should hold pairs the training month lacks"

    reference = LinearRegression().fit(vectorizer.transform(utils.feature_dicts(X_train)), y_train)
    expected = utils.rmse(y_val, reference.predict(vectorizer.transform(utils.feature_dicts(X_val))))
    assert utils.rmse(y_val, pipeline.predict(X_val)) == pytest.approx(expected, abs=1e-4)  # lsqr's tolerance
    assert skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)) == []


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
