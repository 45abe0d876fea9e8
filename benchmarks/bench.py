"""`make bench`: how long the course takes, and how fast the tracking servers take what clients log.

Prints one table per part; nothing here asserts a target (the test suite checks behaviour, this
script measures). Everything runs in a temporary folder, on free loopback ports, and is stopped
at the end: a student's own store and servers are never touched.

1. the course: every notebook's seconds and the whole `make course`, on the real months (when
   they can be had) and on the synthetic sample;
2. tracking throughput: runs/s and metric values/s from 1, 4 and 8 client processes at once,
   against the scenario-2 server (SQLite) and scenario 3 (PostgreSQL + S3, basic auth);
3. one process logging the same metric values per call, in one batch, and asynchronously;
4. `import mlflow`, and each scenario's start time;
5. the peak memory (`/usr/bin/time -v`) on the real 2023 months of the homework solution, and of a
   student's scripts written from the official starters as `make homework` runs them.

    python benchmarks/bench.py [--skip-course] [--skip-homework] [--runs-per-client 25]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

from week2 import config, data
from week2.machinery import course, loadtest, servers

CLIENT_COUNTS = (1, 4, 8)
LESSONS_UP_TO = "09"
METRIC_STEPS = 50
SINGLE_PROCESS_VALUES = 500
SETTINGS = ("WEEK2_SERVER_PORT", "WEEK2_SCENARIO3_PORT", "WEEK2_S3_PORT", "WEEK2_POSTGRES_PORT")


@contextmanager
def private_environment(folder: Path, **extra: str):
    """A private store, data cache, servers folder and free ports for what runs inside the block."""
    saved = dict(os.environ)
    os.environ.update(
        {
            **config.store_settings(folder),
            "WEEK2_SERVERS_DIR": str(folder / "servers"),
            "MPLBACKEND": "Agg",
            # MLflow prints a link for every run it ends on a server: hundreds of lines here.
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
            **dict(zip(SETTINGS, map(str, servers.free_ports(len(SETTINGS))), strict=True)),
            **extra,
        }
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def table(title: str, header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    for row in [header, ["-" * w for w in widths], *rows]:
        print(
            "  ".join(
                str(cell).rjust(w) if i else str(cell).ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )


# --- 1. the course ---------------------------------------------------------------------------------


def bench_course(scratch: Path) -> None:
    months = ["2021-01", "2021-02", "2021-03"]
    modes = ["sample"]
    try:
        data.resolve_months(months, mode="real")
        modes.insert(0, "real")
    except data.DataError as error:
        print(f"(real months not available, course timed on the sample only: {error})")
    timings = {}
    for mode in modes:
        folder = scratch / f"course-{mode}"
        with private_environment(folder, WEEK2_DATA=mode, WEEK2_DATA_DIR=str(scratch / "data")):
            started = time.perf_counter()
            results = course.run_course(executed_dir=folder / "executed")
            timings[mode] = ({r.path.stem: r for r in results}, time.perf_counter() - started)
    notebooks = list(next(iter(timings.values()))[0])
    rows = [[name, *(f"{timings[mode][0][name].seconds:.0f}" for mode in modes)] for name in notebooks]
    # Notebooks 01–09 (tracking, registry, serving, the scenarios, Spark) have a budget of their own:
    # six minutes on two cores, the time a student waits before exploring the UI. Notebooks run
    # two at a time, so the figure is when the last of them finished, not the sum of their times.
    lessons = [name for name in notebooks if name[:2] <= LESSONS_UP_TO]
    lessons_done = [max(timings[mode][0][name].finished_at for name in lessons) for mode in modes]
    rows.append([f"notebooks 01–{LESSONS_UP_TO} done after", *(f"{seconds:.0f}" for seconds in lessons_done)])
    rows.append(["make course (whole)", *(f"{timings[mode][1]:.0f}" for mode in modes)])
    table("Course: seconds per notebook", ["notebook", *(f"{mode} s" for mode in modes)], rows)


# --- 2. tracking throughput -------------------------------------------------------------------------


def bench_throughput(url: str, label: str, runs_per_client: int) -> list[list]:
    rows = []
    client = MlflowClient(url)
    for clients in CLIENT_COUNTS:
        load = loadtest.Load(clients, runs_per_client, METRIC_STEPS)
        experiment_id = client.create_experiment(f"bench-{clients}-clients-{time.time_ns()}")
        run_ids, seconds = loadtest.run_clients(url, experiment_id, load)
        assert len(run_ids) == load.total_runs
        rows.append(
            [label, clients, load.total_runs, f"{load.total_runs / seconds:.1f}",
             f"{load.total_metric_values / seconds:.0f}"]
        )  # fmt: skip
    return rows


# --- 3. per call, batch, asynchronous ------------------------------------------------------------


def bench_logging_styles(url: str) -> list[list]:
    mlflow.set_tracking_uri(url)
    client = MlflowClient(url)
    experiment_id = client.create_experiment(f"bench-logging-styles-{time.time_ns()}")
    values = range(SINGLE_PROCESS_VALUES)
    rows = []

    run = client.create_run(experiment_id)
    started = time.perf_counter()
    for step in values:
        client.log_metric(run.info.run_id, "loss", 1 / (step + 1), step=step)
    rows.append(["log_metric per value", time.perf_counter() - started])

    run = client.create_run(experiment_id)
    started = time.perf_counter()
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, metrics=[Metric("loss", 1 / (s + 1), now, s) for s in values])
    rows.append(["log_batch, one call", time.perf_counter() - started])

    started = time.perf_counter()
    with mlflow.start_run(experiment_id=experiment_id):
        for step in values:
            mlflow.log_metric("loss", 1 / (step + 1), step=step, synchronous=False)
        queued = time.perf_counter() - started
        mlflow.flush_async_logging()
    rows.append(["asynchronous (queue + flush)", time.perf_counter() - started])
    rows.append(["asynchronous, until queued", queued])
    return [[name, f"{seconds:.3f}", f"{SINGLE_PROCESS_VALUES / seconds:.0f}"] for name, seconds in rows]


# --- 4. start-up ---------------------------------------------------------------------------------------


def import_mlflow_seconds(repeats: int = 3) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import mlflow"], check=True)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


# --- 5. the homework's memory ---------------------------------------------------------------------


HOMEWORK_MONTHS = ["2023-01", "2023-02", "2023-03"]
HOMEWORK_TRIALS = 5  # enough for register_model.py's top 5; the peaks do not depend on the count


def peak_memory_gb(command: list[str]) -> tuple[float, float]:
    """Run `command` under `/usr/bin/time -v`; its peak resident memory (GB) and seconds."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=True)
    kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1])
    return kib / 1024**2, time.perf_counter() - started


def bench_homework_memory(scratch: Path) -> None:
    if not Path("/usr/bin/time").exists():
        print("(no /usr/bin/time: homework memory not measured)")
        return
    try:
        _, paths = data.resolve_months(HOMEWORK_MONTHS, mode="real")
    except data.DataError as error:
        print(f"(real 2023 months not available, homework memory not measured: {error})")
        return
    solution = config.REPO_ROOT / "homework" / "solution"
    output = scratch / "homework" / "output"
    months = ["--train_month", HOMEWORK_MONTHS[0], "--val_month", HOMEWORK_MONTHS[1]]
    steps = [
        ("preprocess_data.py", ["--raw_data_path", str(paths[0].parent), "--dest_path", str(output),
                                *months, "--test_month", HOMEWORK_MONTHS[2]]),
        ("train.py", ["--data_path", str(output)]),
        ("hpo.py", ["--data_path", str(output), "--num_trials", str(HOMEWORK_TRIALS)]),
        ("register_model.py", ["--data_path", str(output), "--top_n", "5"]),
    ]  # fmt: skip
    # A student's scripts written from the official starters: plain autolog() on the plain sparse
    # matrix, run as `make homework` runs them (homework/harness.py), after the solution's search.
    student = config.REPO_ROOT / "tests" / "homework_variants" / "official_style"
    report = scratch / "report.json"
    harness = [sys.executable, str(config.REPO_ROOT / "homework" / "harness.py"), str(report)]
    runs = [(f"solution/{script}", [sys.executable, str(solution / script), *args]) for script, args in steps]
    runs += [
        (f"student's {script} (make homework)", [*harness, str(student / script), *args])
        for script, args in steps
        if script in ("train.py", "register_model.py")
    ]
    rows = []
    with private_environment(scratch / "homework"):
        for label, command in runs:
            gb, seconds = peak_memory_gb(command)
            rows.append([label, f"{gb:.2f}", f"{seconds:.0f}"])
    shutil.rmtree(output)
    table(
        f"Homework on green {HOMEWORK_MONTHS[0]}..{HOMEWORK_MONTHS[2]}: peak resident memory "
        "(/usr/bin/time -v; the bound is 2 GB for train.py and register_model.py)",
        ["script", "peak GB", "seconds"],
        rows,
    )


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-course", action="store_true", help="leave out the course timings")
    parser.add_argument("--skip-homework", action="store_true", help="leave out the homework's memory")
    parser.add_argument("--runs-per-client", type=int, default=25)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="week2-bench-") as name:
        scratch = Path(name)
        if not options.skip_course:
            bench_course(scratch)
        if not options.skip_homework:
            bench_homework_memory(scratch)

        startup = [["import mlflow (fresh process)", f"{import_mlflow_seconds():.2f}"]]
        throughput, styles = [], []
        with private_environment(scratch / "servers-bench"):
            try:
                team_url, seconds = timed(servers.start_team_server)
                startup.append(["scenario 2: mlflow server (SQLite)", f"{seconds:.1f}"])
                throughput += bench_throughput(team_url, "scenario 2 (SQLite)", options.runs_per_client)
                styles = bench_logging_styles(team_url)
            finally:
                servers.stop_team_server()
            try:
                remote_url, seconds = timed(servers.start_scenario3)
                startup.append(["scenario 3: PostgreSQL + S3 + mlflow (auth)", f"{seconds:.1f}"])
                with servers.signed_in(servers.STUDENT):
                    throughput += bench_throughput(
                        remote_url, "scenario 3 (PG+S3, auth)", options.runs_per_client
                    )
            finally:
                servers.stop_scenario3(delete=True)  # PostgreSQL's data may sit outside the scratch folder

        table(
            f"Tracking throughput: each run = params, {METRIC_STEPS} metric steps in one batch, an artifact",
            ["server", "clients", "runs", "runs/s", "metric values/s"],
            throughput,
        )
        table(
            f"One process, {SINGLE_PROCESS_VALUES} values of one metric (scenario 2)",
            ["how", "seconds", "values/s"],
            styles,
        )
        table("Start-up", ["what", "seconds"], startup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
