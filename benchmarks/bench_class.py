"""`make bench-class STUDENTS=200`: a deadline hour on the class server, measured on this machine.

A class server of its own (temporary folder, free loopback ports) with STUDENTS students enrolled;
each simulated student, with their own account and workspace, does what the homework does against
it: the autologged run of train.py with its model, fifteen trial runs of hpo.py, five retrained
runs with their models and a registration by register_model.py (the runs tagged with a homework
session and their script's name, as `make homework` leaves them). They arrive as a deadline crowd
does, more and more towards the end of a window, and at most CLIENTS of them log at once.

Prints, for one server worker and for four: HTTP requests per second, the p50/p95/p99 latency of
each kind of call, the errors (the goal is none), the server's peak memory (all its processes) and
PostgreSQL's peak connections; then grades the simulated cohort with homework/check.py, as `make
class-grade` does: every student's runs are found and pass. Nothing here asserts a target: it
measures. Only loopback addresses are used, every loop is bounded, and everything is deleted after.

    python benchmarks/bench_class.py [--students 200] [--clients 16] [--window 60] [--workers 1 4]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "homework"))
from bench import private_environment, table  # noqa: E402

from week2.machinery import class_server, servers  # noqa: E402

TRIALS, TOP_N = 15, 5
SAMPLE_EVERY_SECONDS = 0.5
CLASS_SETTINGS = ("WEEK2_CLASS_PORT", "WEEK2_CLASS_S3_PORT", "WEEK2_CLASS_POSTGRES_PORT")


# --- one simulated student (in a client process) ----------------------------------------------------


def _count_http_requests(counter: list[int]) -> None:
    """Count every HTTP request this process sends (MLflow's client uses requests' sessions)."""
    import requests

    send = requests.Session.send

    def counted(self, request, **kwargs):
        counter[0] += 1
        return send(self, request, **kwargs)

    requests.Session.send = counted


def simulated_student(
    credentials: dict[str, str], session: str
) -> tuple[dict[str, list[float]], list[str], int]:
    """The homework's tracking calls as one student makes them; seconds per kind of call, errors,
    and the number of HTTP requests sent."""
    import json
    import logging

    # MLflow says each experiment it creates and each version it registers: thousands of lines here.
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the client process's, until it ends)
    os.environ.update(credentials)
    os.environ["MLFLOW_RUN_CONTEXT"] = json.dumps({"homework_session": session})
    import mlflow
    import numpy as np
    from common import SEARCH_BOUNDS
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import RandomForestRegressor

    requests_sent = [0]
    _count_http_requests(requests_sent)
    timings: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    rng = np.random.default_rng(abs(hash(session)) % 2**32)
    model = DummyRegressor().fit([[0.0], [1.0]], [10.0, 12.0])

    def timed(kind: str, call, *args, **kwargs):
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        except Exception as error:  # a benchmark counts failures; it does not stop at the first
            errors.append(f"{kind}: {type(error).__name__}: {str(error)[:120]}")
            return None
        finally:
            timings[kind].append(time.perf_counter() - started)

    def run(script: str, params: dict, metrics: dict, with_model: bool, tags: dict | None = None):
        tags = {"mlflow.source.name": script, **(tags or {})}
        active = timed("start_run", mlflow.start_run, tags=tags)
        if active is None:
            return None
        with active:
            timed("log_params", mlflow.log_params, params)
            timed("log_metrics", mlflow.log_metrics, metrics)
            if with_model:
                timed(
                    "log_model",
                    mlflow.sklearn.log_model,
                    model,
                    name="model",
                    pip_requirements=["scikit-learn"],
                )
        return active.info.run_id

    forest = {k: str(v) for k, v in RandomForestRegressor(max_depth=10, random_state=0).get_params().items()}
    timed("set_experiment", mlflow.set_experiment, "random-forest-train")
    run("train.py", forest, {"training_score": 0.9}, True, {"estimator_class": "RandomForestRegressor"})
    timed("set_experiment", mlflow.set_experiment, "random-forest-hyperopt")
    for _ in range(TRIALS):
        params = {name: int(rng.integers(low, high + 1)) for name, (low, high) in SEARCH_BOUNDS.items()}
        run("hpo.py", {**params, "random_state": 42}, {"rmse": float(rng.uniform(5, 7))}, False)
    best = timed(
        "search_runs",
        mlflow.search_runs,
        experiment_names=["random-forest-hyperopt"],
        filter_string=f"tags.homework_session = '{session}'",
        order_by=["metrics.rmse ASC"],
        max_results=TOP_N,
        output_format="list",
    )
    timed("set_experiment", mlflow.set_experiment, "random-forest-best-models")
    for trial in best or []:
        metrics = {"val_rmse": trial.data.metrics["rmse"], "test_rmse": float(rng.uniform(5, 7))}
        run(
            "register_model.py",
            trial.data.params,
            metrics,
            True,
            {"estimator_class": "RandomForestRegressor"},
        )
    chosen = timed(
        "search_runs",
        mlflow.search_runs,
        experiment_names=["random-forest-best-models"],
        filter_string=f"tags.homework_session = '{session}'",
        order_by=["metrics.test_rmse ASC"],
        max_results=1,
        output_format="list",
    )
    if chosen:
        model_id = chosen[0].outputs.model_outputs[0].model_id
        timed("register_model", mlflow.register_model, f"models:/{model_id}", "random-forest-best-model")
    return dict(timings), errors, requests_sent[0]


def _ready(_: int) -> int:
    """Nothing: run once in every client process, so that they have started before the clock does."""
    import mlflow  # noqa: F401  (importing MLflow is not the server's time)

    return os.getpid()


# --- the server's side ----------------------------------------------------------------------------


class Peaks(threading.Thread):
    """Samples the class server's memory (all its processes) and PostgreSQL's connections."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.memory_bytes = 0
        self.connections = 0
        self.done = threading.Event()

    def run(self) -> None:
        stack = class_server.class_stack()
        server = stack.services()["mlflow"].process()
        with servers.postgres_connection(stack=stack) as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                while not self.done.wait(SAMPLE_EVERY_SECONDS):
                    tree = [server, *server.children(recursive=True)]
                    resident = 0
                    for process in tree:
                        with contextlib.suppress(psutil.Error):  # a worker may be restarting
                            resident += process.memory_info().rss
                    self.memory_bytes = max(self.memory_bytes, resident)
                    cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname IS NOT NULL")
                    self.connections = max(self.connections, cursor.fetchone()[0] - 1)  # not ours


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def deadline_hour(students: list[str], clients: int, window: float) -> dict:
    """Every student's homework, arriving as a deadline crowd over `window` seconds; the figures."""
    credentials = {name: _credentials(name) for name in students}
    sessions = {name: uuid.uuid4().hex[:12] for name in students}
    peaks = Peaks()
    timings: dict[str, list[float]] = defaultdict(list)
    errors, sent = [], 0
    with ProcessPoolExecutor(clients, mp_context=get_context("spawn")) as pool:
        list(pool.map(_ready, range(clients)))
        peaks.start()
        started = time.perf_counter()
        futures = []
        for index, name in enumerate(students):
            # Arrivals thicken towards the deadline: student i arrives at window * sqrt(i / n).
            arrival = window * ((index + 1) / len(students)) ** 0.5
            time.sleep(max(0.0, started + arrival - time.perf_counter()))
            futures.append(pool.submit(simulated_student, credentials[name], sessions[name]))
        for future in futures:
            kinds, failures, requests_sent = future.result()
            for kind, seconds in kinds.items():
                timings[kind] += seconds
            errors += failures
            sent += requests_sent
        seconds = time.perf_counter() - started
    peaks.done.set()
    peaks.join()
    return {
        "seconds": seconds,
        "requests": sent,
        "timings": timings,
        "errors": errors,
        "memory_gb": peaks.memory_bytes / 1024**3,
        "connections": peaks.connections,
        "sessions": sessions,
    }


def _credentials(name: str) -> dict[str, str]:
    lines = (class_server.credentials_folder() / f"{name}.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def grade_cohort(sessions: dict[str, str]) -> tuple[int, list[str]]:
    """Grade every simulated student with homework/check.py as the admin: how many pass Q3, Q5 and
    Q6 from the runs the grader finds, and what it says of those that do not."""
    import mlflow
    from grade_class import server_answers

    passed, problems = 0, []
    with servers.environment(class_server.admin_settings()):
        for name, session in sessions.items():
            mlflow.set_workspace(name)
            answers = server_answers(session, TRIALS, TOP_N).values()
            if all(answer.passed for answer in answers):
                passed += 1
            problems += [f"{name} {a.key}: {'; '.join(a.problems)}" for a in answers if not a.passed]
        mlflow.set_workspace(None)
    return passed, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16, help="students logging at once, at most")
    parser.add_argument("--window", type=float, default=60.0, help="seconds over which the students arrive")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    options = parser.parse_args()
    students = [f"student-{index:03d}" for index in range(options.students)]
    print(
        f"A deadline hour: {options.students} students arriving over {options.window:.0f} s, at most "
        f"{options.clients} logging at once; each logs {1 + TRIALS + TOP_N} runs, {1 + TOP_N} models and "
        "a registration"
    )
    for workers in options.workers:
        with tempfile.TemporaryDirectory(prefix="week2-bench-class-") as name:
            folder = Path(name)
            folder.chmod(0o700)
            extra = {"WEEK2_BUILD_DIR": str(folder / "build"), "WEEK2_CLASS_WORKERS": str(workers)}
            extra |= dict(zip(CLASS_SETTINGS, map(str, servers.free_ports(len(CLASS_SETTINGS))), strict=True))
            with private_environment(folder, **extra):
                try:
                    started = time.perf_counter()
                    class_server.start_class_server()
                    start_seconds = time.perf_counter() - started
                    started = time.perf_counter()
                    class_server.enroll(students)
                    enrol_seconds = time.perf_counter() - started
                    figures = deadline_hour(students, options.clients, options.window)
                    passed, problems = grade_cohort(figures["sessions"])
                finally:
                    class_server.stop_class_server(delete=True)
        report(workers, options.students, start_seconds, enrol_seconds, figures, passed, problems)
    return 0


def report(workers, students, start_seconds, enrol_seconds, figures, passed, problems) -> None:
    timings = figures["timings"]
    rows = [
        [
            kind,
            len(seconds),
            f"{1000 * statistics.median(seconds):.0f}",
            f"{1000 * percentile(seconds, 0.95):.0f}",
            f"{1000 * percentile(seconds, 0.99):.0f}",
        ]
        for kind, seconds in sorted(timings.items())
    ]
    table(
        f"{workers} worker(s): started in {start_seconds:.0f} s, {students} students enrolled in "
        f"{enrol_seconds:.0f} s; the deadline hour took {figures['seconds']:.0f} s, "
        f"{figures['requests'] / figures['seconds']:.0f} HTTP requests/s ({figures['requests']} in all)",
        ["call", "count", "p50 ms", "p95 ms", "p99 ms"],
        rows,
    )
    print(
        f"errors: {len(figures['errors'])}; server's peak memory {figures['memory_gb']:.2f} GB; "
        f"PostgreSQL's peak connections {figures['connections']}"
    )
    for error in figures["errors"][:5]:
        print(f"  {error}")
    print(f"graded: {passed} of {students} students pass Q3, Q5 and Q6 from the runs found on the server")
    for problem in problems[:5]:
        print(f"  {problem}")


if __name__ == "__main__":
    sys.exit(main())
