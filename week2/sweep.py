"""The xgboost hyperparameter sweep of notebook 03: encoding, search space, objective, results.

Why it is fast (`benchmarks/bench_sweep.py` measures it against the course's original sweep):
- PU_DO is target-encoded: each zone pair becomes one number, its smoothed mean duration in the
  training month (out-of-fold on the training rows, so a trip never sees its own target). The
  booster gets two dense columns instead of ~13,000 one-hot columns, and learns far faster.
- The matrices are built once (`build_setup`), not in every trial.
- The search space is narrow and sensible: shallow trees, learning rates that converge within a few
  hundred rounds, and early stopping on the validation month cuts each trial short.

`objective` is a plain function of the sampled parameters: it trains one booster and, given the
sweep's parent run, records the trial as a nested child run (params, `val_rmse`, `best_iteration`,
`train_seconds`). Child runs log no model; the best trial is found again with `search_runs`
(`trial_runs`, `params_of`), retrained as one pipeline (`make_model`) and logged once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb
from hyperopt import STATUS_OK, Trials, fmin, hp, space_eval, tpe
from hyperopt.pyll import scope
from mlflow.entities import Metric, Param, Run
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from sklearn.pipeline import Pipeline

from week2 import models, utils

FIXED_PARAMS = {"objective": "reg:squarederror", "tree_method": "hist", "nthread": 1}
"""One thread per booster: with two dense columns a boosting round is a few milliseconds of work,
too little to share. Two threads on a 2-core machine wait on each other whenever anything else
needs a core; measured here with other jobs running, a 185-round trial took 1 s on one thread
and 4 to 17 s on two."""
MAX_ROUNDS = 1000
EARLY_STOPPING_ROUNDS = 20

SEARCH_SPACE = {
    "max_depth": scope.int(hp.quniform("max_depth", 3, 10, 1)),
    "learning_rate": hp.loguniform("learning_rate", np.log(0.02), np.log(0.3)),
    "min_child_weight": hp.loguniform("min_child_weight", np.log(1), np.log(300)),
    "reg_alpha": hp.loguniform("reg_alpha", np.log(1e-3), np.log(10)),
    "reg_lambda": hp.loguniform("reg_lambda", np.log(1e-3), np.log(100)),
}
"""What TPE samples: the same parameters as the course's original sweep, within useful bounds."""

LOG_SCALE_PARAMS = ("learning_rate", "min_child_weight", "reg_alpha", "reg_lambda")
TRIAL_METRICS = ("val_rmse", "best_iteration", "train_seconds")


make_preprocessor = models.target_encoding_preprocessor
"""Raw trip columns → [target-encoded PU_DO, trip_distance]: in `week2.models`, so that loading the
logged model imports neither this module nor hyperopt."""


@dataclass(frozen=True)
class SweepData:
    """The two months encoded once, as plain arrays: what a Spark worker receives to rebuild a setup."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    seed: int


@dataclass(frozen=True)
class SweepSetup:
    """What every trial shares, built once: the two months as booster matrices, and fixed settings."""

    train: xgb.DMatrix
    val: xgb.DMatrix
    fixed_params: dict = field(default_factory=dict)
    max_rounds: int = MAX_ROUNDS
    early_stopping_rounds: int = EARLY_STOPPING_ROUNDS
    data: SweepData | None = None


def encode_months(X_train: pd.DataFrame, y_train, X_val: pd.DataFrame, y_val, seed: int) -> SweepData:
    """Encode both months once (the encoder is fitted on the training month only)."""
    preprocessor = make_preprocessor(seed)
    x_train = np.asarray(preprocessor.fit_transform(X_train, y_train))
    x_val = np.asarray(preprocessor.transform(X_val))
    return SweepData(x_train, np.asarray(y_train), x_val, np.asarray(y_val), seed)


def setup_of(data: SweepData) -> SweepSetup:
    """The booster matrices of encoded months (matrices do not pickle; arrays do)."""
    train = xgb.QuantileDMatrix(data.x_train, data.y_train)
    val = xgb.QuantileDMatrix(data.x_val, data.y_val, ref=train)
    return SweepSetup(train, val, {**FIXED_PARAMS, "seed": data.seed}, data=data)


def build_setup(X_train: pd.DataFrame, y_train, X_val: pd.DataFrame, y_val, seed: int) -> SweepSetup:
    """Encode both months once and build the booster matrices every trial shares."""
    return setup_of(encode_months(X_train, y_train, X_val, y_val, seed))


def train_trial(params: dict, setup: SweepSetup) -> dict:
    """Train one booster with `params`, early-stopped on the validation month; return its metrics."""
    started = time.perf_counter()
    booster = xgb.train(
        {**setup.fixed_params, **params},
        setup.train,
        num_boost_round=setup.max_rounds,
        evals=[(setup.val, "val")],
        early_stopping_rounds=setup.early_stopping_rounds,
        verbose_eval=False,
    )
    return {
        "val_rmse": float(booster.best_score),
        "best_iteration": booster.best_iteration,
        "train_seconds": time.perf_counter() - started,
    }


def objective(
    params: dict, setup: SweepSetup, parent: Run | None = None, run_name: str | None = None
) -> dict:
    """hyperopt's loss for `params` (`train_trial`); with `parent`, the trial is recorded as a child
    run of it (named `run_name`), inheriting the parent's tags."""
    metrics = train_trial(params, setup)
    if parent is not None:
        log_trial(parent, params, metrics, run_name)
    return {"loss": metrics["val_rmse"], "status": STATUS_OK, **metrics}


def one_hot_within(
    seconds: float, X_train: pd.DataFrame, y_train, X_val: pd.DataFrame, y_val, params: dict
) -> dict:
    """What the original encoding reaches in `seconds`: PU_DO one-hot encoded (DictVectorizer, as in
    notebooks 01 and 02) into a DMatrix, one booster with `params`, early-stopped on the validation
    month, and cut short when the time is up (the clock includes the encoding, as the sweep's does).

    Returns the best validation RMSE so far, the rounds it took, the one-hot columns, the seconds
    spent and whether the time ran out before early stopping ended the training.
    """
    started = time.perf_counter()
    deadline = started + seconds
    encoder = utils.make_preprocessor()
    train = xgb.DMatrix(encoder.fit_transform(X_train), label=np.asarray(y_train))
    val = xgb.DMatrix(encoder.transform(X_val), label=np.asarray(y_val))

    class StopAtDeadline(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log) -> bool:
            return time.perf_counter() > deadline

    result = {"columns": train.num_col(), "rounds": 0, "val_rmse": float("nan"), "out_of_time": True}
    if time.perf_counter() < deadline:
        booster = xgb.train(
            {**FIXED_PARAMS, **params},
            train,
            num_boost_round=MAX_ROUNDS,
            evals=[(val, "val")],
            early_stopping_rounds=EARLY_STOPPING_ROUNDS,
            verbose_eval=False,
            callbacks=[StopAtDeadline()],
        )
        out_of_time = time.perf_counter() > deadline  # else early stopping ended it in time
        result.update(
            rounds=booster.num_boosted_rounds(), val_rmse=float(booster.best_score), out_of_time=out_of_time
        )
    return {**result, "seconds": time.perf_counter() - started}


def log_trial(parent: Run, params: dict, metrics: dict, run_name: str | None = None) -> str:
    """Record one trial as a child run of `parent`; return its run id.

    Three calls to the store (create, one batch of params and metrics, finish): a trial lasts well
    under a second, so the tracking overhead is mostly the number of round trips.
    """
    client = mlflow.MlflowClient()
    inherited = {k: v for k, v in parent.data.tags.items() if not k.startswith("mlflow.")}
    child = client.create_run(
        parent.info.experiment_id,
        tags={**inherited, MLFLOW_PARENT_RUN_ID: parent.info.run_id},
        run_name=run_name,
    )
    now = int(time.time() * 1000)
    client.log_batch(
        child.info.run_id,
        metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
        params=[Param(key, str(value)) for key, value in params.items()],
    )
    client.set_terminated(child.info.run_id)
    return child.info.run_id


def run_sweep(
    setup: SweepSetup,
    max_evals: int,
    seed: int,
    parent: Run | None = None,
    progress: bool = True,
    on_trial: Callable[[dict], None] | None = None,
    backend: str = "local",
) -> Trials:
    """TPE over `SEARCH_SPACE` for `max_evals` trials, seeded, each trial a child run of `parent`.

    Trials are logged as they finish, in the sweep's own thread: a background logger would fight
    the booster's training loop for the GIL and cost far more than the ~15 ms a trial's three
    writes take. `on_trial`, if given, is called with each trial's result as soon as it is known.

    With `backend="spark"` the trials run in Spark workers, `WEEK2_SWEEP_PARALLELISM` at a time,
    and log themselves to the tracking server (`week2.spark`); `on_trial` is not called there.
    """
    if backend == "spark":
        from week2 import spark

        if parent is None:
            raise ValueError("a Spark sweep needs a parent run: its trials are logged as its child runs")
        trial = spark.SparkTrial(setup.data, spark.WorkerTracking.here(parent))  # checks the URI first
        trials = spark.trials()
    else:
        trials = Trials()

        def trial(params: dict) -> dict:
            result = objective(params, setup, parent, run_name=f"trial-{len(trials.trials):03d}")
            if on_trial is not None:
                on_trial(result)
            return result

    fmin(
        trial,
        SEARCH_SPACE,
        algo=tpe.suggest,
        max_evals=max_evals,
        trials=trials,
        rstate=np.random.default_rng(seed),
        show_progressbar=progress,
    )
    return trials


def trial_runs(parent: Run) -> list[Run]:
    """The finished child runs of a sweep's parent run, best `val_rmse` first."""
    return mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=(
            f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}' and attributes.status = 'FINISHED'"
        ),
        order_by=["metrics.val_rmse ASC"],
        output_format="list",
    )


def params_of(run: Run) -> dict:
    """A trial run's logged parameters as the plain values the booster took (ints stay ints).

    Params come back from the store as strings; `space_eval` reapplies the space's own casts.
    """
    return space_eval(SEARCH_SPACE, {name: float(run.data.params[name]) for name in SEARCH_SPACE})


def make_model(params: dict, rounds: int, seed: int) -> Pipeline:
    """The tuned model as one unit: raw trip columns → target encoding → xgboost with `params`.

    Fitting it repeats what a sweep trial did (same encoder folds, same histogram method), for a
    fixed number of `rounds`: the best trial's `best_iteration + 1`.
    """
    fixed = {name: value for name, value in FIXED_PARAMS.items() if name != "nthread"}
    booster = xgb.XGBRegressor(
        **fixed, **params, n_estimators=rounds, n_jobs=FIXED_PARAMS["nthread"], random_state=seed
    )
    return Pipeline([("preprocess", make_preprocessor(seed)), ("model", booster)])


def trials_table(runs: list[Run]) -> pd.DataFrame:
    """One row per trial run, in the order the trials ran: plain parameter values and metrics."""
    rows = [
        {"trial": run.info.run_name, **params_of(run), **{m: run.data.metrics[m] for m in TRIAL_METRICS}}
        for run in sorted(runs, key=lambda run: (run.info.start_time, run.info.run_name))
    ]
    return pd.DataFrame(rows)


def influence(table: pd.DataFrame, loss: str = "val_rmse") -> pd.Series:
    """How strongly each parameter goes with the loss: |Spearman rank correlation|, strongest first.

    Rank correlation needs no log transform and is not thrown by one outlying trial; with a few
    dozen trials it is a hint of what matters, not a measurement.
    """
    ranked = table[list(SEARCH_SPACE)].corrwith(table[loss], method="spearman").abs()
    return ranked.fillna(0.0).sort_values(ascending=False)
