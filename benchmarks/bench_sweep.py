"""Benchmark: the course's original xgboost sweep against notebook 03's (`week2.sweep`).

On the real training and validation months (January and February 2021 by default), with the same
seed, it runs
1. the original sweep: PU_DO one-hot encoded with trip_distance by a DictVectorizer into an
   `xgb.DMatrix`, the original search space (max_depth 4..100, learning_rate e^-3..1, …), up to
   1000 rounds with early stopping after 50; each trial a nested run, as the course logged it;
2. ours: PU_DO target-encoded, one QuantileDMatrix built once, the narrow space of
   `week2.sweep.SEARCH_SPACE`, each trial a child run logged in one batch;

and prints, for each, the seconds per trial, the best validation RMSE and the seconds (from the
start, encoding included) until the validation RMSE first reaches the target. Then it runs our
sweep with and without MLflow logging, interleaved and repeated, and prints the ratio.

The original sweep is slow (a minute or more per trial on 2 cores), so it stops as soon as it
reaches the target (`--original-keep-going` to run all its trials) or after
`--original-max-seconds`; the output says which. Everything is logged to a throwaway tracking
store in a temporary folder, never the course's.

    python benchmarks/bench_sweep.py [--trials 30] [--original-trials 30] [--original-max-seconds 1200]

The last line reads `speedup to RMSE<=6.32: <x>x; tracking overhead: <y>x`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field

import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb
from hyperopt import STATUS_OK, Trials, fmin, hp, tpe
from hyperopt.pyll import scope
from sklearn.feature_extraction import DictVectorizer

from week2 import config, data, sweep, tracking, utils

TARGET_RMSE = 6.32

ORIGINAL_SPACE = {
    "max_depth": scope.int(hp.quniform("max_depth", 4, 100, 1)),
    "learning_rate": hp.loguniform("learning_rate", -3, 0),
    "reg_alpha": hp.loguniform("reg_alpha", -5, -1),
    "reg_lambda": hp.loguniform("reg_lambda", -6, -1),
    "min_child_weight": hp.loguniform("min_child_weight", -1, 3),
    "objective": "reg:squarederror",
}
"""The course's original search space (its `seed` is added from the configuration)."""
ORIGINAL_ROUNDS = 1000
ORIGINAL_EARLY_STOPPING = 50


@dataclass
class Timeline:
    """When each trial of a sweep finished (seconds since the sweep started) and its loss."""

    started: float = field(default_factory=time.perf_counter)
    seconds: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    def record(self, loss: float) -> None:
        self.seconds.append(time.perf_counter() - self.started)
        self.losses.append(loss)

    def seconds_to(self, target: float) -> float | None:
        return next((s for s, loss in zip(self.seconds, self.losses, strict=True) if loss <= target), None)

    def durations(self) -> np.ndarray:
        """Seconds each trial took, the first one including the encoding."""
        return np.diff([0.0, *self.seconds])


def original_sweep(
    df_train: pd.DataFrame,
    df_val: pd.DataFrame,
    trials: int,
    seed: int,
    max_seconds: float,
    stop_at_target: bool,
) -> Timeline:
    """The course's original sweep, as it was written, on the same months."""
    timeline = Timeline()
    columns = utils.CATEGORICAL + utils.NUMERICAL
    vectorizer = DictVectorizer()
    X_train = vectorizer.fit_transform(df_train[columns].to_dict(orient="records"))
    X_val = vectorizer.transform(df_val[columns].to_dict(orient="records"))
    train = xgb.DMatrix(X_train, label=df_train[utils.TARGET].to_numpy())
    valid = xgb.DMatrix(X_val, label=df_val[utils.TARGET].to_numpy())
    print(
        f"  one-hot matrices: {X_train.shape[1]:,} columns, "
        f"built in {time.perf_counter() - timeline.started:.1f} s"
    )

    deadline = timeline.started + max_seconds

    class StopAtDeadline(xgb.callback.TrainingCallback):
        """Cut the trial in flight short at the time cap (its RMSE so far still counts)."""

        def after_iteration(self, model, epoch, evals_log) -> bool:
            return time.perf_counter() > deadline

    def objective(params: dict) -> dict:
        with mlflow.start_run(nested=True):
            mlflow.set_tag("model", "xgboost")
            mlflow.log_params(params)
            booster = xgb.train(
                params,
                dtrain=train,
                num_boost_round=ORIGINAL_ROUNDS,
                evals=[(valid, "validation")],
                early_stopping_rounds=ORIGINAL_EARLY_STOPPING,
                verbose_eval=False,
                callbacks=[StopAtDeadline()],
            )
            rmse = utils.rmse(df_val[utils.TARGET], booster.predict(valid))
            mlflow.log_metric("rmse", rmse)
        timeline.record(rmse)
        _progress("original", timeline, trials)
        return {"loss": rmse, "status": STATUS_OK}

    def reached_target(trials_so_far: Trials, *args) -> tuple[bool, list]:
        return stop_at_target and min(trials_so_far.losses()) <= TARGET_RMSE, []

    fmin(
        objective,
        {**ORIGINAL_SPACE, "seed": seed},
        algo=tpe.suggest,
        max_evals=trials,
        trials=Trials(),
        rstate=np.random.default_rng(seed),
        timeout=max_seconds,
        early_stop_fn=reached_target,
        show_progressbar=False,
    )
    return timeline


def our_sweep(
    X_train: pd.DataFrame,
    y_train,
    X_val: pd.DataFrame,
    y_val,
    trials: int,
    seed: int,
    log: bool,
    quiet: bool = False,
) -> Timeline:
    """Notebook 03's sweep: encoding once, then `trials` TPE trials, logged as child runs if `log`."""
    timeline = Timeline()
    setup = sweep.build_setup(X_train, y_train, X_val, y_val, seed)

    def on_trial(result: dict) -> None:
        timeline.record(result["loss"])
        if not quiet:
            _progress("ours", timeline, trials)

    if log:
        with mlflow.start_run(run_name="ours", nested=True) as run:
            parent = mlflow.get_run(run.info.run_id)
            sweep.run_sweep(setup, trials, seed, parent=parent, progress=False, on_trial=on_trial)
    else:
        sweep.run_sweep(setup, trials, seed, progress=False, on_trial=on_trial)
    return timeline


def _progress(name: str, timeline: Timeline, trials: int) -> None:
    done = len(timeline.losses)
    print(
        f"  {name:8s} trial {done:3d}/{trials}: val RMSE {timeline.losses[-1]:.4f} "
        f"(best {min(timeline.losses):.4f}) at {timeline.seconds[-1]:7.1f} s",
        flush=True,
    )


def tracking_overhead(
    X_train, y_train, X_val, y_val, trials: int, seed: int, repeats: int
) -> tuple[float, str]:
    """Our sweep with and without logging, interleaved `repeats` times; (ratio, explanation).

    Another process may steal the CPU at any moment, so each trial position keeps its fastest time
    over the repeats (the same seed gives the same trials every time) before summing: a stall in
    one repeat does not count against either mode.
    """
    timings = {True: [], False: []}
    for repeat in range(repeats):
        for log in (True, False) if repeat % 2 == 0 else (False, True):
            timeline = our_sweep(X_train, y_train, X_val, y_val, trials, seed, log=log, quiet=True)
            timings[log].append(timeline)
            print(
                f"  repeat {repeat + 1}/{repeats} {'with' if log else 'without':7s} logging: "
                f"{timeline.seconds[-1]:6.1f} s",
                flush=True,
            )
    losses = {tuple(t.losses) for timelines in timings.values() for t in timelines}
    if len(losses) != 1:
        print("  note: the repeats did not produce identical trials; the ratio compares unequal work")
    best = {
        log: np.min([t.durations() for t in timelines], axis=0).sum() for log, timelines in timings.items()
    }
    explanation = (
        f"with logging {best[True]:.1f} s, without {best[False]:.1f} s "
        f"(sum over trials of each trial's fastest time in {repeats} interleaved repeats)"
    )
    return best[True] / best[False], explanation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trials", type=int, default=30, help="trials of our sweep (the course's budget: 30)"
    )
    parser.add_argument("--original-trials", type=int, default=30, help="at most this many original trials")
    parser.add_argument(
        "--original-max-seconds",
        type=float,
        default=1200,
        help="start no original trial after this many seconds",
    )
    parser.add_argument(
        "--original-keep-going",
        action="store_true",
        help="run every original trial, not just until the target",
    )
    parser.add_argument(
        "--overhead-repeats", type=int, default=4, help="interleaved repeats for the overhead"
    )
    options = parser.parse_args(argv)
    seed = config.seed()
    months = config.months()

    source, (train_path, val_path) = data.resolve_months([months.train, months.val], mode="real")
    df_train, df_val = utils.read_dataframe(train_path), utils.read_dataframe(val_path)
    (X_train, y_train), (X_val, y_val) = utils.split_xy(df_train), utils.split_xy(df_val)
    print(
        f"data: {source} · train {months.train}: {len(df_train):,} trips · val {months.val}: {len(df_val):,}"
    )
    print(f"machine: {os.cpu_count()} cores · seed {seed} · target val RMSE <= {TARGET_RMSE}")

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as scratch:
        # A throwaway store: the benchmark never writes into the course's tracking store.
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch}/mlflow.db"
        os.environ["WEEK2_ARTIFACTS"] = f"{scratch}/mlartifacts"
        tracking.setup_mlflow("bench-sweep")
        with mlflow.start_run(run_name="bench-sweep"):
            print(f"\nours: {options.trials} trials")
            ours = our_sweep(X_train, y_train, X_val, y_val, options.trials, seed, log=True)
            print(
                f"\noriginal: up to {options.original_trials} trials or {options.original_max_seconds:.0f} s"
            )
            original = original_sweep(
                df_train,
                df_val,
                options.original_trials,
                seed,
                options.original_max_seconds,
                not options.original_keep_going,
            )
            print(
                f"\ntracking overhead: our sweep with and without logging, {options.overhead_repeats} repeats"
            )
            overhead, overhead_note = tracking_overhead(
                X_train, y_train, X_val, y_val, options.trials, seed, options.overhead_repeats
            )
        mlflow.set_tracking_uri(None)

    ours_to, original_to = ours.seconds_to(TARGET_RMSE), original.seconds_to(TARGET_RMSE)
    if original_to is not None and not options.original_keep_going:
        stopped = "stopped as soon as it reached the target"
    elif original.seconds[-1] >= options.original_max_seconds:
        stopped = f"stopped by the {options.original_max_seconds:.0f} s cap (its last trial cut short there)"
    else:
        stopped = f"ran all {len(original.losses)} trials"
    rows = [
        ("original (one-hot, DMatrix)", original, original_to),
        ("ours (target-encoded, QuantileDMatrix)", ours, ours_to),
    ]
    print(
        f"\n{'sweep':40s} {'trials':>6s} {'s/trial':>8s} {'best val RMSE':>14s} "
        f"{'s to RMSE<=' + str(TARGET_RMSE):>16s}"
    )
    for name, timeline, to_target in rows:
        shown = f"{to_target:.1f}" if to_target is not None else f"> {timeline.seconds[-1]:.0f}"
        print(
            f"{name:40s} {len(timeline.losses):6d} {timeline.seconds[-1] / len(timeline.losses):8.2f} "
            f"{min(timeline.losses):14.4f} {shown:>16s}"
        )
    print(f"original sweep {stopped}; times include building each sweep's matrices")
    print(f"tracking overhead: {overhead_note}")
    if ours_to is None:
        print(f"our sweep never reached {TARGET_RMSE}: no speedup to report")
        speedup = 0.0
    elif original_to is None:
        speedup = original.seconds[-1] / ours_to
        print(f"the original never reached {TARGET_RMSE} before its cap: the speedup is a lower bound")
    else:
        speedup = original_to / ours_to
    print(f"speedup to RMSE<={TARGET_RMSE}: {speedup:.1f}x; tracking overhead: {overhead:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
