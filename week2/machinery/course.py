"""The course runner: execute every notebook in order against one tracking store, then summarise.

`python -m week2 course` (what `make course` calls) resolves the data once (real months, or the
synthetic sample when they cannot be had), runs `notebooks/NN-*.ipynb` in sort order with nbclient,
saves executed copies to `build/notebooks/`, and prints what the store now holds.

It holds a lock on its tracking store for the whole run: a second `make course` on the same store
refuses in one line. A notebook that fails (an error, a dead kernel, a cell timeout) or a Ctrl+C
ends in one "course stopped" line, after the servers that notebook started have been stopped.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from week2.errors import Week2Error

NOTEBOOKS_DIR_NAME = "notebooks"
CELL_TIMEOUT_SECONDS = 900  # the full sweep on real data is the longest cell; nothing legit takes longer
SQLITE_PREFIX = "sqlite:///"


class NotebookFailed(RuntimeError):
    """A notebook raised, its kernel died or a cell ran out of time; the message names notebook and cell."""


class CourseBusy(Week2Error):
    """Another course run holds the tracking store."""


@dataclass
class NotebookResult:
    path: Path
    seconds: float


REQUIREMENT_HINTS = {
    "java": (
        "Java 17 for Spark (Debian/Ubuntu: apt install openjdk-17-jre-headless; "
        "macOS: brew install openjdk@17)"
    ),
}
"""Programs a notebook may declare in its metadata (`"week2": {"requires": [...]}`), and how to get them."""


def missing_requirements(path: Path) -> list[str]:
    """The programs `path` declares it needs that this machine does not have, each with how to get it.

    The course stays runnable with Python alone: a notebook that needs more (notebook 09 and Java)
    is skipped by `make course` with this message; the test suite, whose machine has it all, runs it.
    """
    import nbformat

    needs = nbformat.read(path, as_version=4).metadata.get("week2", {}).get("requires", [])
    return [REQUIREMENT_HINTS.get(name, name) for name in needs if shutil.which(name) is None]


def course_notebooks(folder: Path) -> list[Path]:
    """The numbered notebooks in teaching order (the sort order is the run order)."""
    return sorted(p for p in folder.glob("[0-9][0-9]-*.ipynb"))


def _first_line(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip() and not line.startswith("#")]
    return (lines[0] if lines else source.strip())[:80]


def store_lock_path(tracking_uri: str) -> Path:
    """The course's lock file of a store: beside a SQLite file, else in build/ named by the URI."""
    from week2 import config

    if tracking_uri.startswith(SQLITE_PREFIX):
        database = Path(tracking_uri.removeprefix(SQLITE_PREFIX))
        if database.parent.is_dir():
            return database.with_name(database.name + "-course.lock")
    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:12]
    return config.build_dir() / f"course-{digest}.lock"


@contextmanager
def store_lock(tracking_uri: str) -> Iterator[Path]:
    """Hold the course's lock on `tracking_uri`, or raise CourseBusy naming the run that holds it.

    An flock goes with its process: a run that is killed leaves no stale lock behind.
    """
    path = store_lock_path(tracking_uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "?"
            raise CourseBusy(
                f"another course run (pid {holder}) is using {tracking_uri}: wait for it to finish, "
                "or set MLFLOW_TRACKING_URI to another store."
            ) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(handle)  # releases the lock


def execute_notebook(
    path: Path, executed_dir: Path, timeout: int = CELL_TIMEOUT_SECONDS, folder: Path | None = None
) -> float:
    """Run one notebook in a fresh kernel from its own folder (or `folder`, for a copy kept elsewhere);
    save the executed copy; return seconds."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from tqdm.auto import tqdm

    notebook = nbformat.read(path, as_version=4)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    bar = tqdm(total=len(code_cells), desc=path.stem, unit="cell", leave=True)
    running = []  # the code cell being executed, for a kernel that dies or a cell that times out

    def running_cell() -> str:
        if not running:
            return "a cell"
        number = code_cells.index(running[-1]) + 1
        return f"code cell {number} ({_first_line(running[-1].source)!r})"

    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        # The kernel listens on loopback only; its start-up warning about unencrypted TCP would
        # otherwise be printed between the progress bars of every notebook. Warnings raised by the
        # notebook's own code still reach the executed copy.
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        resources={"metadata": {"path": str(folder or path.parent)}},
        on_cell_start=lambda cell, **_: running.append(cell) if cell.cell_type == "code" else None,
        on_cell_executed=lambda cell, **_: bar.update(1) if cell.cell_type == "code" else None,
    )
    executed_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        try:
            client.execute()
        except BaseException:
            # nbclient takes SIGINT and SIGTERM itself while it runs, to shut the kernel down, and
            # then fails with whatever the dead kernel causes: it was an interruption.
            if (cleanup := getattr(client, "_async_cleanup_kernel_future", None)) is not None:
                _quiet(cleanup)
                raise KeyboardInterrupt from None
            raise
    except CellExecutionError as error:
        failed = next(
            (
                i
                for i, c in enumerate(code_cells, 1)
                if any(o.get("output_type") == "error" for o in c.outputs)
            ),
            None,
        )
        where = f"code cell {failed} ({_first_line(code_cells[failed - 1].source)!r})" if failed else "a cell"
        ename = getattr(error, "ename", "Error")
        evalue = str(getattr(error, "evalue", "")).splitlines()[0] if getattr(error, "evalue", "") else ""
        raise NotebookFailed(f"{path.name} failed at {where}: {ename}: {evalue}") from None
    except CellTimeoutError:
        raise NotebookFailed(f"{path.name}: {running_cell()} did not finish within {timeout} s") from None
    except DeadKernelError:
        raise NotebookFailed(f"{path.name}: the kernel died in {running_cell()}") from None
    finally:
        bar.close()
        nbformat.write(notebook, executed_dir / path.name)
    return time.perf_counter() - started


def _quiet(cleanup) -> None:
    """Take the outcome of nbclient's clean-up on a signal, so that asyncio does not print it at exit.

    On Ctrl+C nbclient shuts the kernel down twice, from its signal handler's task and from its
    own `finally`; whichever comes second fails on `assert self.km is not None`, and an exception
    nobody retrieved is printed when the interpreter exits, after the course's last line.
    """
    if cleanup.done():
        cleanup.cancelled() or cleanup.exception()
    else:
        cleanup.add_done_callback(lambda task: task.cancelled() or task.exception())


def run_course(notebooks_dir: Path | None = None, executed_dir: Path | None = None) -> list[NotebookResult]:
    """Resolve the data, run every notebook in order, print the summary; raise NotebookFailed on error."""
    from week2 import config

    notebooks_dir = notebooks_dir or config.REPO_ROOT / NOTEBOOKS_DIR_NAME
    executed_dir = executed_dir or config.build_dir() / NOTEBOOKS_DIR_NAME
    with store_lock(config.tracking_uri()):
        return _run_course_locked(notebooks_dir, executed_dir)


def _run_course_locked(notebooks_dir: Path, executed_dir: Path) -> list[NotebookResult]:
    from week2 import config, data

    months = config.months()
    source, _ = data.resolve_months([months.train, months.val, months.test], warn=False)
    # Every notebook must see the same data, so the decision `auto` made is handed down to them.
    os.environ["WEEK2_DATA"] = source
    print(f"data: {source} ({months.train}, {months.val}, {months.test})")
    print(f"tracking store: {config.tracking_uri()}")

    results, skipped = [], []
    for path in course_notebooks(notebooks_dir):
        if missing := missing_requirements(path):
            skipped.append(f"{path.stem} (needs {'; '.join(missing)})")
            print(f"skipped {skipped[-1]}", flush=True)
            continue
        seconds = execute_notebook_stopping_its_servers(path, executed_dir)
        results.append(NotebookResult(path, seconds))
    print()
    print(summary(source, results, executed_dir, skipped))
    return results


def execute_notebook_stopping_its_servers(path: Path, executed_dir: Path) -> float:
    """`execute_notebook`, then, if it failed or was interrupted, stop the servers it had started.

    A scenario notebook stops its servers in its last cell, which a failure never reaches.
    """
    from week2.machinery import servers

    before = servers.running_services()
    try:
        return execute_notebook(path, executed_dir)
    except BaseException:
        for name in servers.stop_services_started_since(before):
            print(f"stopped {name}, which {path.stem} had started", file=sys.stderr)
        raise


def summary(
    source: str, results: list[NotebookResult], executed_dir: Path, skipped: list[str] | None = None
) -> str:
    """What the course left in the tracking store, and what to do next."""
    import mlflow
    from mlflow import MlflowClient

    from week2 import config

    mlflow.set_tracking_uri(config.tracking_uri())
    client = MlflowClient()
    lines = ["Summary", "======="]
    label = "the real TLC months" if source == "real" else "the SYNTHETIC SAMPLE (real data could not be had)"
    lines.append(f"data used: {label}")
    lines.append("notebooks: " + ", ".join(f"{r.path.stem} {r.seconds:.0f}s" for r in results))
    lines += [f"skipped: {reason}" for reason in skipped or []]
    lines.append(f"executed copies: {executed_dir}")

    runs = mlflow.search_runs(search_all_experiments=True)
    lines.append(f"runs logged: {len(runs)}")
    if len(runs) and "metrics.val_rmse" in runs and "tags.model" in runs:
        best = runs.dropna(subset=["metrics.val_rmse"]).groupby("tags.model")["metrics.val_rmse"].min()
        lines.append("best validation RMSE per model:")
        lines += [f"  {model:28s} {rmse:.3f}" for model, rmse in best.sort_values().items()]

    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{model.name}'")
        aliases = ", ".join(f"@{alias} → v{version}" for alias, version in sorted(model.aliases.items()))
        lines.append(f"registered model {model.name}: {len(versions)} version(s) {aliases}".rstrip())

    lines.append("")
    lines.append("Next: `make ui` and open http://127.0.0.1:5000 to explore everything the notebooks logged.")
    return "\n".join(lines)


def main_course(
    argv: list[str] | None = None, notebooks_dir: Path | None = None, executed_dir: Path | None = None
) -> int:
    """`python -m week2 course`: 0 when every notebook ran, 1 when one failed, 130 on Ctrl+C."""
    from week2 import config

    executed_dir = executed_dir or config.build_dir() / NOTEBOOKS_DIR_NAME
    try:
        run_course(notebooks_dir, executed_dir)
    except NotebookFailed as error:
        print(f"\ncourse stopped: {error} (the executed copy in {executed_dir} shows where)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ncourse stopped: interrupted (Ctrl+C); `make course` starts it again.", file=sys.stderr)
        return 130
    return 0
