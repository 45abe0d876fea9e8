"""The sweep of notebook 03: target encoding, objective, child runs, and the logged best model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from hyperopt import space_eval
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from week2 import config, models, sweep, tracking, utils


def trips(pu: list[int], do: list[int], distance: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"PULocationID": pu, "DOLocationID": do, "trip_distance": distance})


def test_target_encoder_never_sees_a_rows_own_target():
    rng = np.random.default_rng(0)
    n = 400
    X = trips(list(rng.integers(1, 6, n)), list(rng.integers(1, 6, n)), list(rng.uniform(0.5, 10, n)))
    y = rng.uniform(5, 30, n)
    encoded = sweep.make_preprocessor(seed=1).fit_transform(X, y)
    changed = y.copy()
    changed[7] += 1000.0  # only row 7's target moves
    refitted = sweep.make_preprocessor(seed=1)
    encoded_again = refitted.fit_transform(X, changed)
    # Row 7 is encoded from folds without it, so its own training feature does not move...
    assert encoded_again[7, 0] == pytest.approx(encoded[7, 0])
    # ...although its target does reach the encoding later calls use (learnt on every row).
    assert refitted.transform(X.iloc[[7]])[0, 0] > encoded[7, 0] + 1
    # trip_distance passes through unchanged
    np.testing.assert_allclose(encoded[:, 1], X.trip_distance)


def test_unseen_zone_pairs_get_the_overall_mean():
    X = trips([1, 1, 2, 2] * 10, [1, 2, 1, 2] * 10, [1.0, 2.0, 3.0, 4.0] * 10)
    y = np.array([10.0, 20.0, 30.0, 40.0] * 10)
    preprocessor = sweep.make_preprocessor(seed=0).fit(X, y)
    encoded = preprocessor.transform(trips([999], [998], [5.0]))
    assert np.isfinite(encoded).all()
    assert encoded[0, 0] == pytest.approx(y.mean())


@pytest.fixture(scope="module")
def setup(sample_xy):
    (X_train, y_train), (X_val, y_val), _ = sample_xy
    return sweep.build_setup(X_train, y_train, X_val, y_val, seed=config.seed())


def test_objective_returns_the_validation_rmse_of_its_best_round(setup, sample_xy):
    params = {
        "max_depth": 4,
        "learning_rate": 0.1,
        "min_child_weight": 5.0,
        "reg_alpha": 0.01,
        "reg_lambda": 1.0,
    }
    result = sweep.objective(params, setup)
    assert result["status"] == "ok" and result["loss"] == result["val_rmse"]
    assert 0 <= result["best_iteration"] < sweep.MAX_ROUNDS
    # The same booster, rebuilt as the pipeline that gets logged, scores the same on the raw month.
    (X_train, y_train), (X_val, y_val), _ = sample_xy
    model = sweep.make_model(params, result["best_iteration"] + 1, config.seed()).fit(X_train, y_train)
    assert utils.rmse(y_val, model.predict(X_val)) == pytest.approx(result["val_rmse"], rel=1e-4)


def test_search_space_values_round_trip_through_the_store(private_store):
    tracking.setup_mlflow("03-test-round-trip")
    with mlflow.start_run() as run:
        parent = mlflow.get_run(run.info.run_id)
    params = space_eval(sweep.SEARCH_SPACE, {"max_depth": 7.0, "learning_rate": 0.05, "min_child_weight": 3.3,
                                             "reg_alpha": 0.123456789, "reg_lambda": 42.0})  # fmt: skip
    sweep.log_trial(
        parent, params, {"val_rmse": 6.5, "best_iteration": 10, "train_seconds": 0.1}, "trial-001"
    )
    (child,) = sweep.trial_runs(parent)
    assert child.info.run_name == "trial-001"
    assert sweep.params_of(child) == params
    assert isinstance(sweep.params_of(child)["max_depth"], int)


@pytest.fixture(scope="module")
def swept(private_store, setup):
    """A sweep of the configured size (4 in the tests), logged like notebook 03 logs it."""
    tracking.setup_mlflow("03-test-sweep")
    with mlflow.start_run(run_name="sweep", tags=tracking.run_tags(model="xgboost_sweep")) as run:
        parent = mlflow.get_run(run.info.run_id)
        trials = sweep.run_sweep(setup, config.sweep_trials(), config.seed(), parent=parent, progress=False)
    return parent, trials


def test_sweep_logs_one_child_run_per_trial(swept):
    parent, trials = swept
    children = sweep.trial_runs(parent)
    assert len(children) == config.sweep_trials() == len(trials.trials)
    for child in children:
        assert child.data.tags[MLFLOW_PARENT_RUN_ID] == parent.info.run_id
        assert child.data.tags["model"] == "xgboost_sweep"  # inherited from the parent
        assert set(child.data.params) == set(sweep.SEARCH_SPACE)
        assert set(child.data.metrics) == set(sweep.TRIAL_METRICS)
        assert not child.outputs.model_outputs  # trials log no model
    assert [c.data.metrics["val_rmse"] for c in children] == sorted(trials.losses())
    assert sorted(c.info.run_name for c in children) == [
        f"trial-{i:03d}" for i in range(1, len(children) + 1)
    ]


def test_sweep_is_repeatable_with_the_same_seed(swept, setup):
    _, trials = swept
    again = sweep.run_sweep(setup, config.sweep_trials(), config.seed(), progress=False)
    assert again.losses() == trials.losses()


def test_best_trial_logged_as_one_model_that_predicts_raw_trips(swept, sample_xy):
    parent, trials = swept
    (X_train, y_train), (X_val, y_val), _ = sample_xy
    best = sweep.trial_runs(parent)[0]
    params = sweep.params_of(best)
    assert params == space_eval(sweep.SEARCH_SPACE, trials.argmin)
    model = sweep.make_model(params, int(best.data.metrics["best_iteration"]) + 1, config.seed())
    with mlflow.start_run(run_id=parent.info.run_id):
        model.fit(X_train, y_train)
        mlflow.log_metric("val_rmse", utils.rmse(y_val, model.predict(X_val)))
        info = tracking.log_pipeline(model, X_train)

    loaded = mlflow.pyfunc.load_model(info.model_uri)
    raw = pd.DataFrame({"PULocationID": [74, 999], "DOLocationID": [75, 998], "trip_distance": [1.5, 4.0]})
    predictions = np.asarray(loaded.predict(raw), dtype=float)
    assert predictions.shape == (2,) and np.isfinite(predictions).all()
    run = mlflow.get_run(parent.info.run_id)
    assert len(run.outputs.model_outputs) == 1
    assert run.data.metrics["val_rmse"] == pytest.approx(best.data.metrics["val_rmse"], rel=1e-4)


BEST_GUESS = {
    "max_depth": 4,
    "learning_rate": 0.1,
    "min_child_weight": 5.0,
    "reg_alpha": 0.01,
    "reg_lambda": 1.0,
}


def test_train_trial_is_the_objectives_loss(setup):
    metrics = sweep.train_trial(BEST_GUESS, setup)
    assert set(metrics) == set(sweep.TRIAL_METRICS)
    assert sweep.objective(BEST_GUESS, setup)["loss"] == pytest.approx(metrics["val_rmse"])


def test_one_hot_within_a_budget_reports_what_it_reached(sample_xy):
    (X_train, y_train), (X_val, y_val), _ = sample_xy
    no_time = sweep.one_hot_within(0.0, X_train, y_train, X_val, y_val, BEST_GUESS)
    assert no_time["out_of_time"] and no_time["rounds"] == 0
    assert no_time["columns"] > 100  # one column per zone pair: the original encoding
    ample = sweep.one_hot_within(600.0, X_train, y_train, X_val, y_val, BEST_GUESS)
    assert not ample["out_of_time"] and 0 < ample["rounds"] < sweep.MAX_ROUNDS
    assert ample["val_rmse"] > 0 and ample["seconds"] < 600


BANNED_REQUIREMENTS = ("pyspark", "hyperopt", "psutil")


def requirement_names(model_uri: str) -> set[str]:
    text = Path(mlflow.pyfunc.get_model_dependencies(model_uri)).read_text()
    return {line.split("==")[0].strip().lower() for line in text.splitlines() if line.strip()}


@pytest.mark.slow
def test_the_sweep_model_logged_as_notebook_03_does_loads_without_hyperopt(private_store, sample_xy):
    (X_train, y_train), _, _ = sample_xy
    tracking.setup_mlflow("03-test-requirements")
    model = sweep.make_model(BEST_GUESS, 10, config.seed()).fit(X_train, y_train)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=models.SIGNATURE,
            input_example=X_train.head(5),
            skops_trusted_types=models.TRUSTED_TYPES,
            code_paths=models.WEEK2_CODE,
            pip_requirements=models.requirements(models.XGBOOST_PACKAGES),
        )
    names = requirement_names(info.model_uri)
    assert {"xgboost", "scikit-learn", "skops"} <= names
    assert not names & set(BANNED_REQUIREMENTS)
    # A fresh process that loads the model and predicts never imports hyperopt (mlflow.pyfunc itself
    # imports pyspark when it is installed, so that one is only kept out of the requirements).
    probe = (
        "import sys, mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model({info.model_uri!r})\n"
        "model.predict(pd.DataFrame({'PULocationID': [1], 'DOLocationID': [2], 'trip_distance': [1.5]}))\n"
        "print(sorted(m for m in ('hyperopt', 'week2.sweep') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr
