"""Run a hyperopt sweep's trials in Spark workers (`WEEK2_SWEEP_BACKEND=spark`).

hyperopt's `SparkTrials` sends each trial to a Spark task; the objective travels to the worker
pickled, so it must carry plain data (numpy arrays, not xgboost matrices) and everything a worker
needs to log its trial: the tracking URI, the credentials and the parent run. Nothing is taken
from the worker's own environment, which on a real cluster is another machine's.

The workers must log to a tracking server (scenario 2 or 3), never to one SQLite file: on a
cluster the file is not even on the workers' disks, and here several processes writing one
SQLite file serialise on its lock. `check_tracking_uri` refuses that set-up before any trial runs.

`WEEK2_SPARK_MASTER` (default `local[*]`: Spark in this machine's cores) is the only thing to
change to run the same sweep on a cluster.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from week2 import config

if TYPE_CHECKING:
    from mlflow.entities import Run

    from week2.sweep import SweepData

CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def check_tracking_uri(uri: str) -> None:
    """Raise a ConfigError unless `uri` names a tracking server the workers can reach."""
    if not uri.startswith(("http://", "https://")):
        raise config.ConfigError(
            f"Spark workers cannot log to {uri}: start a tracking server (make server) and set "
            "MLFLOW_TRACKING_URI to it, e.g. http://127.0.0.1:5001."
        )


def session(app_name: str = "week2-sweep"):
    """The SparkSession of `WEEK2_SPARK_MASTER`, its Python workers running this very interpreter."""
    # Workers start `python3` from PATH unless told otherwise: it would lack hyperopt and xgboost.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # A laptop's hostname may resolve to a public interface; local Spark stays on loopback.
    if config.spark_master().startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(config.spark_master())
        .appName(app_name)
        .config("spark.ui.showConsoleProgress", "false")  # hyperopt shows its own progress
    )
    with warnings.catch_warnings():
        # pyspark 4.3 warns when a session starts that it does not fully support pandas 3; the sweep
        # never converts between pandas and Spark (trials travel as pickled functions).
        warnings.filterwarnings(
            "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
        )
        session = builder.getOrCreate()
    # Spark logs WARN lines to the terminal of whoever started it (`make course`), some of them as
    # it shuts down (temporary folders it deletes its own way): errors are what a student needs.
    session.sparkContext.setLogLevel("ERROR")
    return session


@dataclass(frozen=True)
class WorkerTracking:
    """What a worker needs to log a trial as a child run, passed explicitly with every task."""

    tracking_uri: str

    parent: Run | None = None
    credentials: dict[str, str] = field(default_factory=dict)

    @classmethod
    def here(cls, parent: Run | None = None) -> WorkerTracking:
        """This process's server (refused if it is not one) and credentials, and the sweep's parent run."""
        import mlflow

        uri = mlflow.get_tracking_uri()
        check_tracking_uri(uri)
        credentials = {name: os.environ[name] for name in CREDENTIAL_VARIABLES if os.environ.get(name)}
        return cls(uri, parent, credentials)

    def apply(self) -> None:
        """In the worker: make MLflow calls go to the sweep's server, signed in as the driver is."""
        import mlflow

        os.environ.update(self.credentials)
        # A worker's stdout is the terminal of whoever started Spark (`make course`): one link per
        # trial would bury the progress bars. The runs are in the UI, found from the parent.
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        mlflow.set_tracking_uri(self.tracking_uri)


@dataclass(frozen=True)
class SparkTrial:
    """hyperopt's objective for Spark: rebuild the matrices in the worker, train, log a child run."""

    data: SweepData
    tracking: WorkerTracking

    def __call__(self, params: dict) -> dict:
        from week2 import sweep

        self.tracking.apply()
        return sweep.objective(params, sweep.setup_of(self.data), self.tracking.parent)


def trials(parallelism: int | None = None):
    """hyperopt's SparkTrials on `session()`, running `WEEK2_SWEEP_PARALLELISM` trials at once.

    Each trial's booster uses one thread (`sweep.FIXED_PARAMS`), so a parallelism up to the number
    of cores never oversubscribes them.
    """
    from hyperopt import SparkTrials

    # hyperopt wraps its task thread with pyspark's inheritable_thread_target without a session,
    # and pyspark 4 warns about it from inside that thread: nothing our code can pass avoids it.
    warnings.filterwarnings(
        "ignore", message="Spark session is not provided", category=UserWarning, module="pyspark.util"
    )
    return SparkTrials(parallelism=parallelism or config.sweep_parallelism(), spark_session=session())
