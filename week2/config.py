"""Settings of the course, each read from an environment variable with a documented default.

Nothing here touches the disk: importing this module (or any ``week2`` module) creates no file
and no directory. Every value is read when it is asked for, so a notebook, a test or the course
runner can change the environment and see the change at once.

| variable             | default                    | meaning                                   |
|----------------------|----------------------------|-------------------------------------------|
| MLFLOW_TRACKING_URI  | sqlite:///<repo>/mlflow.db | the one tracking store everything uses    |
| WEEK2_ARTIFACTS      | <repo>/mlartifacts         | artifact root for experiments we create   |
| WEEK2_DATA           | auto                       | real, sample, or auto (real, else sample) |
| WEEK2_TLC_MIRROR     | (unset)                    | directory or base URL holding TLC files   |
| WEEK2_DATA_DIR       | <repo>/data                | the download cache and generated samples  |
| WEEK2_TRAIN_MONTH    | 2021-01                    | month the models are fitted on            |
| WEEK2_VAL_MONTH      | 2021-02                    | month used to compare and tune models     |
| WEEK2_TEST_MONTH     | 2021-03                    | month held out for the final comparison   |
| WEEK2_SAMPLE_ROWS    | 20000                      | trips per synthetic month                 |
| WEEK2_SEED           | 42                         | seed for the sample, models and sweeps    |
| WEEK2_SWEEP_TRIALS   | 30                         | hyperopt trials in the sweep notebook     |
| WEEK2_SWEEP_BACKEND  | local                      | local, or spark (trials in Spark workers) |
| WEEK2_SWEEP_PARALLELISM | 2                       | trials at once with the spark backend     |
| WEEK2_SPARK_MASTER   | local[*]                   | Spark master URL of the spark backend     |
| WEEK2_MODEL_NAME     | nyc-taxi-duration          | registered model name                     |
| WEEK2_RMSE_THRESHOLD | 10.0                       | validation gate before registration       |
| WEEK2_DEVELOPER      | the login name             | `developer` tag on every run              |
| WEEK2_SERVERS_DIR    | <repo>/build/servers       | pid files, logs, data, secrets of servers |
| WEEK2_SERVER_PORT    | 5001                       | scenario 2: the team's tracking server    |
| WEEK2_SCENARIO3_PORT | 5002                       | scenario 3: MLflow with basic auth        |
| WEEK2_S3_PORT        | 5003                       | scenario 3: S3-compatible endpoint (moto) |
| WEEK2_POSTGRES_PORT  | 5433                       | scenario 3: PostgreSQL (5432 often taken) |
| WEEK2_SERVE_PORT     | 5004                       | `make serve`: the champion over HTTP      |
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass
from pathlib import Path

from week2.errors import Week2Error

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The repository root: the one place every default path is anchored to."""

DATA_MODES = ("real", "sample", "auto")
SWEEP_BACKENDS = ("local", "spark")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class ConfigError(Week2Error, ValueError):
    """A setting has a value the course cannot use; the message says how to fix it."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = _env(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number; set it to e.g. {default}.") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below {minimum}; set it to e.g. {default}.")
    return value


def _env_float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; set it to e.g. {default}.") from None


def check_month(month: str, name: str = "month") -> str:
    """Return ``month`` if it reads YYYY-MM, else raise a ConfigError that says so."""
    if not _MONTH.match(month):
        raise ConfigError(f"{name}={month!r} is not a month; write it as YYYY-MM, e.g. 2021-01.")
    return month


def _month(name: str, default: str) -> str:
    return check_month(_env(name, default), name)


def default_tracking_uri() -> str:
    """The embedded default: a SQLite file at the repository root, as an absolute URI."""
    return f"sqlite:///{REPO_ROOT / 'mlflow.db'}"


def tracking_uri() -> str:
    return _env("MLFLOW_TRACKING_URI", default_tracking_uri())


def artifacts_dir() -> Path:
    return Path(_env("WEEK2_ARTIFACTS", str(REPO_ROOT / "mlartifacts"))).resolve()


def store_settings(folder: Path) -> dict[str, str]:
    """The settings of a tracking store and artifact root of their own inside `folder`.

    The one recipe for a throwaway store: the tests, the screenshots and the benchmarks put these
    into the environment so that nothing they log reaches the course's `mlflow.db`.
    """
    return {
        "MLFLOW_TRACKING_URI": f"sqlite:///{Path(folder) / 'mlflow.db'}",
        "WEEK2_ARTIFACTS": str(Path(folder) / "mlartifacts"),
    }


def data_dir() -> Path:
    return Path(_env("WEEK2_DATA_DIR", str(REPO_ROOT / "data"))).resolve()


def data_mode() -> str:
    mode = _env("WEEK2_DATA", "auto").lower()
    if mode not in DATA_MODES:
        raise ConfigError(f"WEEK2_DATA={mode!r} is not one of {', '.join(DATA_MODES)}.")
    return mode


def tlc_mirror() -> str | None:
    return os.environ.get("WEEK2_TLC_MIRROR", "").strip() or None


def train_month() -> str:
    return _month("WEEK2_TRAIN_MONTH", "2021-01")


def val_month() -> str:
    return _month("WEEK2_VAL_MONTH", "2021-02")


def test_month() -> str:
    return _month("WEEK2_TEST_MONTH", "2021-03")


def sample_rows() -> int:
    return _env_int("WEEK2_SAMPLE_ROWS", 20_000, minimum=100)


def seed() -> int:
    return _env_int("WEEK2_SEED", 42, minimum=0)


def sweep_trials() -> int:
    return _env_int("WEEK2_SWEEP_TRIALS", 30)


def sweep_backend() -> str:
    backend = _env("WEEK2_SWEEP_BACKEND", "local").lower()
    if backend not in SWEEP_BACKENDS:
        raise ConfigError(f"WEEK2_SWEEP_BACKEND={backend!r} is not one of {', '.join(SWEEP_BACKENDS)}.")
    return backend


def sweep_parallelism() -> int:
    return _env_int("WEEK2_SWEEP_PARALLELISM", 2)


def spark_master() -> str:
    return _env("WEEK2_SPARK_MASTER", "local[*]")


def model_name() -> str:
    return _env("WEEK2_MODEL_NAME", "nyc-taxi-duration")


def rmse_threshold() -> float:
    return _env_float("WEEK2_RMSE_THRESHOLD", 10.0)


def developer() -> str:
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        login = "unknown"
    return _env("WEEK2_DEVELOPER", login)


def servers_dir() -> Path:
    return Path(_env("WEEK2_SERVERS_DIR", str(REPO_ROOT / "build" / "servers"))).resolve()


def _port(name: str, default: int) -> int:
    port = _env_int(name, default)
    if port > 65535:
        raise ConfigError(f"{name}={port} is not a TCP port; set it to e.g. {default}.")
    return port


def server_port() -> int:
    return _port("WEEK2_SERVER_PORT", 5001)


def serve_port() -> int:
    return _port("WEEK2_SERVE_PORT", 5004)


def scenario3_port() -> int:
    return _port("WEEK2_SCENARIO3_PORT", 5002)


def s3_port() -> int:
    return _port("WEEK2_S3_PORT", 5003)


def postgres_port() -> int:
    return _port("WEEK2_POSTGRES_PORT", 5433)


@dataclass(frozen=True)
class Months:
    train: str
    val: str
    test: str


def months() -> Months:
    """The course's three months, as configured."""
    return Months(train_month(), val_month(), test_month())
