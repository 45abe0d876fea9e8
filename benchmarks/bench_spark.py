"""`make bench-spark`: notebook 03's sweep with local trials and with Spark trials, side by side.

On the real months (or the sample, with a note, when they cannot be had), the same seed and
number of trials, both logging to a scenario-2 server in a temporary folder (Spark workers must
not write a SQLite file; the local sweep logs to the same kind of server so the comparison is
fair). Prints wall time and best validation RMSE for each.

    python benchmarks/bench_spark.py [--trials 30] [--parallelism 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import mlflow
from bench import private_environment, table

from week2 import config, data, spark, sweep, tracking, utils
from week2.machinery import servers


def timed_sweep(setup: sweep.SweepSetup, trials: int, backend: str) -> tuple[float, float]:
    """(wall seconds, best validation RMSE) of one sweep, trials logged as child runs."""
    tracking.setup_mlflow(f"bench-spark-{backend}")
    with mlflow.start_run(run_name=f"sweep-{backend}") as run:
        parent = mlflow.get_run(run.info.run_id)
        started = time.perf_counter()
        result = sweep.run_sweep(setup, trials, config.seed(), parent=parent, progress=False, backend=backend)
        seconds = time.perf_counter() - started
    assert len(sweep.trial_runs(parent)) == trials
    return seconds, min(result.losses())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30, help="trials of each sweep (the course's budget)")
    parser.add_argument("--parallelism", type=int, default=2, help="Spark trials at once")
    options = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="week2-bench-spark-"))
    with private_environment(scratch, WEEK2_SWEEP_PARALLELISM=str(options.parallelism)):
        months = config.months()
        source, (train_path, val_path) = data.resolve_months([months.train, months.val])
        X_train, y_train = utils.split_xy(utils.read_dataframe(train_path))
        X_val, y_val = utils.split_xy(utils.read_dataframe(val_path))
        setup = sweep.build_setup(X_train, y_train, X_val, y_val, config.seed())
        print(f"data: {source} ({months.train}, {months.val}); {options.trials} trials each", flush=True)
        session = None
        try:
            os.environ["MLFLOW_TRACKING_URI"] = servers.start_team_server()
            local = timed_sweep(setup, options.trials, "local")
            started = time.perf_counter()
            session = spark.session()
            spark_start = time.perf_counter() - started
            remote = timed_sweep(setup, options.trials, "spark")
        finally:
            if session is not None:
                session.stop()
            servers.stop_team_server()
    shutil.rmtree(scratch, ignore_errors=True)
    table(
        "Sweep backends (both log every trial to a scenario-2 server)",
        ["backend", "trials at once", "wall s", "s/trial", "best val RMSE"],
        [
            ["local", 1, f"{local[0]:.1f}", f"{local[0] / options.trials:.2f}", f"{local[1]:.4f}"],
            [
                f"spark ({config.spark_master()})",
                options.parallelism,
                f"{remote[0]:.1f}",
                f"{remote[0] / options.trials:.2f}",
                f"{remote[1]:.4f}",
            ],
        ],
    )
    print(f"(starting Spark took {spark_start:.1f} s more, not counted above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
