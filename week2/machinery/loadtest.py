"""Load on a tracking server from several client processes, and a check that nothing was lost.

The reliability tests and the benchmark (`make bench`) share this: `log_runs` is what one client
process does (runs with params, a metric history, a small artifact), `run_clients` starts several
such processes at once against one server and times them, and `check_runs` reads everything back
and says what is missing. Only loopback servers are ever targeted, and every loop is bounded.
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param

METRIC = "loss"
ARTIFACT = "notes/run.txt"
CLIENT_TAG = "load.client"


@dataclass(frozen=True)
class Load:
    """One load: `clients` processes, each logging `runs` runs of `steps` metric values."""

    clients: int
    runs: int
    steps: int

    @property
    def total_runs(self) -> int:
        return self.clients * self.runs

    @property
    def total_metric_values(self) -> int:
        return self.total_runs * self.steps


def log_runs(tracking_uri: str, experiment_id: str, client_index: int, runs: int, steps: int) -> list[str]:
    """One client's share of a load: `runs` finished runs, each with params, `steps` values of
    `METRIC` and the artifact `ARTIFACT`; returns their ids."""
    client = MlflowClient(tracking_uri)
    run_ids = []
    for index in range(runs):
        run = client.create_run(experiment_id, tags={CLIENT_TAG: str(client_index)})
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(METRIC, 1.0 / (step + 1), now, step) for step in range(steps)],
            params=[Param("client", str(client_index)), Param("index", str(index))],
        )
        client.log_text(run.info.run_id, f"client {client_index}, run {index}\n", ARTIFACT)
        client.set_terminated(run.info.run_id)
        run_ids.append(run.info.run_id)
    return run_ids


def _ready(_: int) -> int:
    """Nothing: run in every worker once, so that they have started and imported this module."""
    return os.getpid()


def run_clients(tracking_uri: str, experiment_id: str, load: Load) -> tuple[list[str], float]:
    """`load.clients` processes logging at once; returns every run id and the wall-clock seconds.

    The processes are spawned (not forked) so each has its own HTTP connections, as separate
    students would; credentials reach them through the environment (MLFLOW_TRACKING_USERNAME…).
    """
    with ProcessPoolExecutor(load.clients, mp_context=get_context("spawn")) as pool:
        # Warm the pool first: starting Python and importing MLflow is not tracking throughput.
        list(pool.map(_ready, range(load.clients)))
        started = time.perf_counter()
        futures = [
            pool.submit(log_runs, tracking_uri, experiment_id, index, load.runs, load.steps)
            for index in range(load.clients)
        ]
        run_ids = [run_id for future in futures for run_id in future.result()]
        seconds = time.perf_counter() - started
    return run_ids, seconds


def check_run(client: MlflowClient, run_id: str, steps: int) -> list[str]:
    """What is missing of one run `log_runs` logged (status, params, metric steps, artifact)."""
    problems = []
    run = client.get_run(run_id)
    if run.info.status != "FINISHED":
        problems.append(f"{run_id}: status {run.info.status}")
    if set(run.data.params) != {"client", "index"}:
        problems.append(f"{run_id}: params {sorted(run.data.params)}")
    history = client.get_metric_history(run_id, METRIC)
    if sorted(m.step for m in history) != list(range(steps)):
        problems.append(f"{run_id}: {len(history)} of {steps} metric steps")
    with tempfile.TemporaryDirectory() as folder:
        text = Path(client.download_artifacts(run_id, ARTIFACT, folder)).read_text()
    if not text.startswith(f"client {run.data.params.get('client')},"):
        problems.append(f"{run_id}: artifact {ARTIFACT} reads {text!r}")
    return problems


def check_runs(tracking_uri: str, run_ids: list[str], steps: int, readers: int = 8) -> list[str]:
    """What is missing for any of `run_ids`; [] when every run is whole. Reads in parallel threads."""
    client = MlflowClient(tracking_uri)
    with ThreadPoolExecutor(readers) as pool:
        found = pool.map(lambda run_id: check_run(client, run_id, steps), run_ids)
        return [problem for problems in found for problem in problems]
