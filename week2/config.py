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
| WEEK2_SWEEP_TRIALS   | 30                         | hyperopt trials in notebook 03 (09: ≤ 10) |
| WEEK2_SWEEP_BACKEND  | local                      | local, or spark (trials in Spark workers) |
| WEEK2_SWEEP_PARALLELISM | 2                       | trials at once with the spark backend     |
| WEEK2_SPARK_MASTER   | local[*]                   | Spark master URL of the spark backend     |
| WEEK2_MODEL_NAME     | nyc-taxi-duration          | registered model name                     |
| WEEK2_RMSE_THRESHOLD | 10.0                       | validation gate before registration       |
| WEEK2_DEVELOPER      | the login name             | `developer` tag on every run              |
| WEEK2_BUILD_DIR      | <repo>/build               | what the course makes besides the store   |
| WEEK2_SERVERS_DIR    | <build>/servers            | pid files, logs, data, secrets of servers |
| WEEK2_SERVER_PORT    | 5001                       | scenario 2: the team's tracking server    |
| WEEK2_SCENARIO3_PORT | 5002                       | scenario 3: MLflow with basic auth        |
| WEEK2_S3_PORT        | 5003                       | scenario 3: S3 server (rclone)            |
| WEEK2_POSTGRES_PORT  | 5433                       | scenario 3: PostgreSQL (5432 often taken) |
| WEEK2_SERVE_PORT     | 5004                       | `make serve`: the champion over HTTP      |
| WEEK2_UI_PORT        | 5000                       | `make ui`: the MLflow UI                  |
| WEEK2_WEBHOOK_PORT   | 5005                       | scenario 2: the registry-webhook receiver |
| WEEK2_CLASS_PORT     | 5006                       | the class server: MLflow with workspaces  |
| WEEK2_CLASS_S3_PORT  | 5007                       | the class server: S3 server (rclone)      |
| WEEK2_CLASS_POSTGRES_PORT | 5434                  | the class server: PostgreSQL              |
| WEEK2_CLASS_WORKERS  | 2                          | the class server: MLflow worker processes |
| WEEK2_CLASS_SIZE     | 500                        | the class server: most students it serves |

Values are read strictly, so that a typo is an error that names the setting, never a surprise:
whole numbers and months take ASCII digits only (Python's `int()` would also take e.g. Arabic-Indic
ones), a value with stray spaces around it is refused, thresholds must be finite and positive,
ports lie in 1..65535, folders must be folders we can write into (they are created later, by the
code that writes there, never here). `check_all()` reads every setting once: the command line
calls it first, so a bad value stops a command before it creates or deletes anything.
"""

from __future__ import annotations

import getpass
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from week2.errors import Week2Error

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The repository root: the one place every default path is anchored to."""

DATA_MODES = ("real", "sample", "auto")
SWEEP_BACKENDS = ("local", "spark")
# ASCII digits only (\d would match any script's digits); a year from 1000, so never year 0.
_MONTH = re.compile(r"[1-9][0-9]{3}-(0[1-9]|1[0-2])")
_WHOLE_NUMBER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?|\.[0-9]+([eE][-+]?[0-9]+)?")
TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql")
"""Schemes of a tracking URI the course can use (a database may name its driver: postgresql+psycopg2)."""


MLFLOW_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # MLflow retries a dead server 7 times with growing pauses (about 250 s) before a traceback;
    # 3 retries give up within about 15 s; `week2.tracking.check_store` finds a dead server sooner.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}
"""Environment the course gives MLflow, in this process and the ones it starts; a user's own values win."""


class ConfigError(Week2Error, ValueError):
    """A setting has a value the course cannot use; the message says how to fix it."""


def _env(name: str, default: str) -> str:
    """The variable's value, or `default` when it is unset or blank; stray spaces around it are an error."""
    value = os.environ.get(name, "")
    if not value.strip():
        return default
    if value != value.strip():
        raise ConfigError(
            f"{name}={value!r} has stray spaces around it; write it without them, e.g. {default}."
        )
    return value


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = _env(name, str(default))
    if not _WHOLE_NUMBER.fullmatch(raw):
        raise ConfigError(f"{name}={raw!r} is not a whole number; set it to e.g. {default}.")
    value = int(raw)
    if value < minimum:
        raise ConfigError(f"{name}={value} is below {minimum}; set it to e.g. {default}.")
    return value


def _env_positive_float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    if not _DECIMAL.fullmatch(raw):  # refuses nan, inf, signs and non-ASCII digits alike
        raise ConfigError(f"{name}={raw!r} is not a positive number; set it to e.g. {default}.")
    value = float(raw)
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={raw!r} is not a positive finite number; set it to e.g. {default}.")
    return value


def _folder(name: str, default: Path) -> Path:
    """The folder a setting names, refused when it is a file or when nothing can be written into it.

    The folder need not exist yet (the code that writes there creates it); then its nearest
    existing parent must be a folder we can write into.
    """
    path = Path(_env(name, str(default))).expanduser().resolve()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{name}={path} is not a folder ({existing} is a file); set it to a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{name}={path}: {existing} is not writable for you; set it to a folder you own.")
    return path


def check_month(month: str, name: str = "month") -> str:
    """Return ``month`` if it reads YYYY-MM, else raise a ConfigError that says so."""
    if not _MONTH.fullmatch(month):
        raise ConfigError(f"{name}={month!r} is not a month; write it as YYYY-MM, e.g. 2021-01.")
    return month


def _month(name: str, default: str) -> str:
    return check_month(_env(name, default), name)


def apply_mlflow_defaults() -> None:
    """Telemetry off and a short retry budget, unless the user set these variables themselves."""
    for name, value in MLFLOW_DEFAULTS.items():
        os.environ.setdefault(name, value)


def default_tracking_uri() -> str:
    """The embedded default: a SQLite file at the repository root, as an absolute URI."""
    return f"sqlite:///{REPO_ROOT / 'mlflow.db'}"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI or the default; a ConfigError for a scheme the course cannot use.

    Whether the store is there (a SQLite file's folder, a server that answers) is checked by
    `week2.tracking.check_store`, which needs no more than this module but may wait for a server.
    """
    uri = _env("MLFLOW_TRACKING_URI", default_tracking_uri())
    scheme = uri.partition(":")[0].partition("+")[0].lower() if "://" in uri else ""
    if scheme not in TRACKING_SCHEMES:
        raise ConfigError(
            f"MLFLOW_TRACKING_URI={uri!r} has no scheme the course knows ({', '.join(TRACKING_SCHEMES)}); "
            f"write e.g. {default_tracking_uri()} or http://127.0.0.1:5001, or unset it."
        )
    return uri


def artifacts_dir() -> Path:
    return _folder("WEEK2_ARTIFACTS", REPO_ROOT / "mlartifacts")


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
    return _folder("WEEK2_DATA_DIR", REPO_ROOT / "data")


def data_mode() -> str:
    mode = _env("WEEK2_DATA", "auto").lower()
    if mode not in DATA_MODES:
        raise ConfigError(f"WEEK2_DATA={mode!r} is not one of {', '.join(DATA_MODES)}.")
    return mode


def tlc_mirror() -> str | None:
    """WEEK2_TLC_MIRROR: a base URL, or a folder that must exist; None when unset."""
    mirror = _env("WEEK2_TLC_MIRROR", "") or None
    if mirror and not mirror.startswith(("http://", "https://")) and not Path(mirror).expanduser().is_dir():
        raise ConfigError(
            f"WEEK2_TLC_MIRROR={mirror} is neither an http(s) base URL nor a folder; "
            "set it to the folder holding green_tripdata_YYYY-MM.parquet files, or unset it."
        )
    return mirror


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


def course_jobs() -> int:
    """Notebooks `make course` runs at once: three on a machine with two cores or more, else one.

    Three on two cores: a notebook often waits (a server starting, a model server answering, a
    subprocess), and the third keeps both cores busy meanwhile (measured: 4 min 46 s against 5 min 26 s
    with two on the real months).
    """
    return _env_int("WEEK2_COURSE_JOBS", 3 if (os.cpu_count() or 1) >= 2 else 1)


def spark_master() -> str:
    return _env("WEEK2_SPARK_MASTER", "local[*]")


def model_name() -> str:
    return _env("WEEK2_MODEL_NAME", "nyc-taxi-duration")


def rmse_threshold() -> float:
    return _env_positive_float("WEEK2_RMSE_THRESHOLD", 10.0)


def developer() -> str:
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        login = "unknown"
    return _env("WEEK2_DEVELOPER", login)


def build_dir() -> Path:
    """Executed notebooks, the servers' folder, throwaway stores: made by the course, safe to delete."""
    return _folder("WEEK2_BUILD_DIR", REPO_ROOT / "build")


def servers_dir() -> Path:
    return _folder("WEEK2_SERVERS_DIR", build_dir() / "servers")


def check_port(raw: str, name: str, default: int) -> int:
    """`raw` as a TCP port (1..65535), else a ConfigError naming `name`: a setting or an option."""
    if not _WHOLE_NUMBER.fullmatch(raw):
        raise ConfigError(f"{name}={raw!r} is not a whole number; set it to e.g. {default}.")
    port = int(raw)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name}={port} is not a TCP port (1 to 65535); set it to e.g. {default}.")
    return port


def _port(name: str, default: int) -> int:
    return check_port(_env(name, str(default)), name, default)


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


UI_PORT_DEFAULT = 5000


def ui_port() -> int:
    return _port("WEEK2_UI_PORT", UI_PORT_DEFAULT)


def webhook_port() -> int:
    return _port("WEEK2_WEBHOOK_PORT", 5005)


def class_port() -> int:
    return _port("WEEK2_CLASS_PORT", 5006)


def class_s3_port() -> int:
    return _port("WEEK2_CLASS_S3_PORT", 5007)


def class_postgres_port() -> int:
    return _port("WEEK2_CLASS_POSTGRES_PORT", 5434)


def class_workers() -> int:
    return _env_int("WEEK2_CLASS_WORKERS", 2)


def class_size() -> int:
    """The most students the class server is set up for (its caches hold one entry per workspace)."""
    return _env_int("WEEK2_CLASS_SIZE", 500)


@dataclass(frozen=True)
class Months:
    train: str
    val: str
    test: str


def months() -> Months:
    """The course's three months, as configured."""
    return Months(train_month(), val_month(), test_month())


SETTINGS = (
    tracking_uri, artifacts_dir, data_mode, tlc_mirror, data_dir, months, sample_rows, seed,
    sweep_trials, sweep_backend, sweep_parallelism, course_jobs, spark_master, model_name, rmse_threshold,
    developer, build_dir, servers_dir, server_port, scenario3_port, s3_port, postgres_port, serve_port,
    ui_port, webhook_port, class_port, class_s3_port, class_postgres_port, class_workers, class_size,
)  # fmt: skip
"""Every setting's reader: `check_all` calls each."""


def check_all() -> None:
    """Read every setting once: a ConfigError for the first malformed one, before anything is done."""
    for read in SETTINGS:
        read()
