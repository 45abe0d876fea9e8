"""Serve a registered model over HTTP, and score a whole month in batch.

`serve(model_uri)` starts `mlflow models serve` on 127.0.0.1 (a free port unless one is given),
waits until it answers `/ping`, and stops it and everything it started when the block ends, also
on error. `invoke` sends trips to its `/invocations` endpoint. `score_month` loads
`models:/<name>@champion`, predicts every trip of a month and writes the predictions to parquet.
`python -m week2 serve` and `python -m week2 score` (`make serve`, `make score`) call these.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import psutil
import requests
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from week2 import config, data, registry, utils
from week2.errors import Week2Error
from week2.files import atomic_path
from week2.machinery import processes

HOST = processes.HOST
STARTUP_TIMEOUT_SECONDS = processes.START_TIMEOUT_SECONDS
REQUEST_TIMEOUT_SECONDS = 60


class ServingError(Week2Error, RuntimeError):
    """The model could not be found, served or scored; the message says what to do."""


@dataclass
class ModelServer:
    model_uri: str
    url: str
    service: processes.Service
    process: subprocess.Popen

    @property
    def log_path(self) -> Path:
        return self.service.log_file


def alias_uri(alias: str = registry.CHAMPION, name: str | None = None) -> str:
    """`models:/<name>@<alias>`, with the registered model name from the configuration."""
    return f"models:/{name or config.model_name()}@{alias}"


def resolve_alias(alias: str = registry.CHAMPION, name: str | None = None) -> ModelVersion:
    """The version an alias points at in the configured store, or a ServingError saying what to run."""
    name = name or config.model_name()
    mlflow.set_tracking_uri(config.tracking_uri())
    found = registry.version_by_alias(MlflowClient(), name, alias)
    if found is None:
        raise ServingError(
            f"No version of the registered model {name!r} has the alias {alias!r} in "
            f"{config.tracking_uri()}: run notebooks/04-model-registry.ipynb first (make course)."
        )
    return found


def model_service(port: int) -> processes.Service:
    """The supervised `mlflow models serve` on `port`: pid file and log in the servers folder."""
    return processes.Service(f"model-{port}", config.servers_dir() / "serving", port=port)


def start_server(model_uri: str, port: int | None = None, env_manager: str = "local") -> ModelServer:
    """Start `mlflow models serve` for `model_uri` on 127.0.0.1 (not ready yet: see wait_until_ready)."""
    if port is not None:
        processes.require_free_ports({"WEEK2_SERVE_PORT": port})
    port = port or processes.free_ports(1)[0]
    # The server resolves `models:/` URIs in our store, and calls `uvicorn` by name: it must find
    # the one of this environment even when the venv is not activated.
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": config.tracking_uri(),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    command = [
        sys.executable, "-m", "mlflow", "models", "serve",
        "--model-uri", model_uri,
        "--host", HOST,
        "--port", str(port),
        "--workers", "1",
        "--env-manager", env_manager,
    ]  # fmt: skip
    service = model_service(port)
    service.log_file.unlink(missing_ok=True)  # one log per server: the one of the last one to die
    process = service.start(command, env=env)
    return ModelServer(model_uri, f"http://{HOST}:{port}", service, process)


def _answers_ping(url: str) -> bool:
    try:
        return requests.get(f"{url}/ping", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False  # not listening yet


def wait_until_ready(server: ModelServer, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
    """Wait until the server answers /ping; raise ServerError with its log if it dies or hangs."""
    what = f"mlflow models serve for {server.model_uri}"
    processes.wait_until(lambda: _answers_ping(server.url), server.service, what, timeout)


def stop_server(server: ModelServer) -> None:
    """Stop the server and every process it started; its log goes too, unless it died on its own."""
    died = server.process.poll() is not None  # poll() also reaps it
    server.service.stop()
    if server.process.poll() is None:
        # The pid record could not vouch for it (a process on its way out can show an empty command
        # line), but this Popen is the very process we started: stop it and reap it.
        with contextlib.suppress(psutil.NoSuchProcess):
            processes.stop_process_tree(psutil.Process(server.process.pid))
        server.process.wait(processes.STOP_TIMEOUT_SECONDS)
    if not died:
        server.service.log_file.unlink(missing_ok=True)


def died_error(server: ModelServer) -> processes.ServerError:
    """What to tell when the server stopped by itself: its exit status and where its log is."""
    code = server.process.returncode
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    return processes.ServerError(
        f"The model server on {server.url} {how}: its log is {server.log_path}\n{server.service.log_tail()}"
    )


@contextmanager
def serve(model_uri: str, port: int | None = None, env_manager: str = "local") -> Iterator[ModelServer]:
    """A served model, ready to answer, for the duration of a `with` block."""
    server = start_server(model_uri, port, env_manager)
    try:
        wait_until_ready(server)
        yield server
    finally:
        stop_server(server)


def trips_payload(trips: pd.DataFrame) -> dict:
    """The JSON body MLflow's scoring server reads: a DataFrame in pandas' `split` orientation."""
    return {"dataframe_split": json.loads(trips.to_json(orient="split", index=False))}


def invoke(server: ModelServer, payload: dict) -> requests.Response:
    """POST a JSON payload to the server's /invocations endpoint and return the raw response."""
    return requests.post(f"{server.url}/invocations", json=payload, timeout=REQUEST_TIMEOUT_SECONDS)


def predictions_path(month: str) -> Path:
    """Where batch scoring writes a month by default: beside the data it was computed from."""
    return config.data_dir() / "predictions" / f"green_tripdata_{month}_duration.parquet"


def score_month(month: str, alias: str = registry.CHAMPION, output: Path | None = None) -> Path:
    """Predict every trip of `month` with `models:/<name>@<alias>`; write them to parquet.

    The file has the trip's pickup time and raw features, the actual and the predicted duration,
    and which registered version made the prediction. It is written whole or not at all.
    """
    config.check_month(month)
    output = check_output(Path(output) if output else predictions_path(month))
    version = resolve_alias(alias)
    _, (path,) = data.resolve_months([month], warn=False)
    trips = utils.read_dataframe(path)
    features, actual = utils.split_xy(trips)
    model = mlflow.pyfunc.load_model(alias_uri(alias, version.name))
    scored = pd.concat([trips[["lpep_pickup_datetime"]], features], axis=1).assign(
        duration=actual,
        predicted_duration=model.predict(features),
        model_name=version.name,
        model_version=version.version,
    )
    try:
        with atomic_path(output) as temporary:
            scored.to_parquet(temporary, index=False)
    except OSError as error:  # the disk filled up, or the folder changed since check_output
        reason = error.strerror or error
        raise ServingError(f"cannot write {output} ({reason}): choose another --output.") from None
    return output


def check_output(output: Path) -> Path:
    """`output`, absolute, when a file can be written there (its folder may be made); else a ServingError.

    Checked before the month is scored, so an unusable path costs no minute of work and leaves nothing.
    """
    output = Path(output).expanduser().absolute()
    if output.is_dir():
        example = output / "scored.parquet"
        raise ServingError(f"--output={output} is a folder; name a file in it, e.g. {example}.")
    existing = next(folder for folder in output.parents if folder.exists())
    if not existing.is_dir():
        raise ServingError(f"--output={output}: {existing} is a file, not a folder; choose another path.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ServingError(f"--output={output}: {existing} is not writable for you; choose a folder you own.")
    return output


def main_score(argv: list[str] | None = None) -> int:
    """`python -m week2 score [MONTH]`: batch-score a month with the champion."""
    parser = argparse.ArgumentParser(prog="python -m week2 score", description=main_score.__doc__)
    parser.add_argument("month", nargs="?", default=config.test_month(), help="YYYY-MM (default: test month)")
    parser.add_argument("--alias", default=registry.CHAMPION, help="registry alias (default: champion)")
    parser.add_argument("--output", type=Path, help="parquet file to write (default: in the data folder)")
    options = parser.parse_args(argv)
    try:
        output = score_month(options.month, options.alias, options.output)
    except ServingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    scored = pd.read_parquet(output)
    rmse = utils.rmse(scored["duration"], scored["predicted_duration"])
    version = scored["model_version"].iloc[0]
    print(f"scored {len(scored):,} trips of {options.month} with {config.model_name()} v{version}")
    print(f"RMSE {rmse:.3f} min → {output}")
    return 0


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds through `serve`, which stops the server


def main_serve(argv: list[str] | None = None) -> int:
    """`python -m week2 serve`: serve the champion on 127.0.0.1 until Ctrl+C."""
    parser = argparse.ArgumentParser(prog="python -m week2 serve", description=main_serve.__doc__)
    parser.add_argument("--alias", default=registry.CHAMPION, help="registry alias (default: champion)")
    parser.add_argument("--port", help="1 to 65535 (default: WEEK2_SERVE_PORT)")
    options = parser.parse_args(argv)
    # The server runs in a session of its own: a terminal that closes or a `kill` must still stop it.
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _exit_on_signal)
    try:
        default = config.serve_port()
        port = default if options.port is None else config.check_port(options.port, "--port", default)
        version = resolve_alias(options.alias)
        with serve(alias_uri(options.alias, version.name), port=port) as server:
            print(f"{version.name} v{version.version} (@{options.alias}) answers on {server.url}/invocations")
            print("Ctrl+C stops it.", flush=True)
            try:
                server.process.wait()
            except KeyboardInterrupt:
                return 0
            raise died_error(server)  # it stopped without being asked: say why, keep its log
    except Week2Error as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
