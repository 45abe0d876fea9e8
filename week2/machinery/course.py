"""The course runner: execute every notebook against one tracking store, then summarise.

`python -m week2 course` (what `make course` calls) resolves the data once (real months, or the
synthetic sample when they cannot be had), runs `notebooks/NN-*.ipynb` with nbclient, saves
executed copies to `build/notebooks/`, and prints what the store now holds.

Three notebooks run at once on a machine with two cores (WEEK2_COURSE_JOBS): most of a notebook
is one core's work, or waits on a server, so one at a time would leave the cores idle. A notebook
starts once the notebooks whose results it reads have run and no running notebook uses the same
server (its metadata says both, see CourseNotebook); among those that may start, the earliest goes
first, so with one job the course runs in teaching order.

It holds a lock on its tracking store for the whole run: a second `make course` on the same store
refuses in one line. A notebook that fails (an error, a dead kernel, a cell timeout) or a Ctrl+C
ends in one "course stopped" line, after the other running notebooks have been stopped and the
servers the course had started have been stopped too.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import queue
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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


class CoursePlanError(Week2Error):
    """A notebook's metadata names a notebook it cannot run after."""


GOING_FURTHER = "going further"
"""A notebook's metadata `"week2": {"part": "going further"}` puts it beyond the week's core path."""


@dataclass
class NotebookResult:
    path: Path
    seconds: float
    finished_at: float = 0.0  # seconds from the start of the course run
    going_further: bool = False  # beyond the week's core path (the summary lists the core first)


REQUIREMENT_HINTS = {
    "java": (
        "Java 17 for Spark (Debian/Ubuntu: apt install openjdk-17-jre-headless; "
        "macOS: brew install openjdk@17)"
    ),
}
"""Programs a notebook may declare in its metadata (`"week2": {"requires": [...]}`), and how to get them."""


def missing_requirements(needs: Iterable[str]) -> list[str]:
    """The programs of `needs` (a notebook's `requires`) that this machine does not have, each with
    how to get it.

    The course stays runnable with Python alone: a notebook that needs more (notebook 09 and Java)
    is skipped by `make course` with this message; the test suite, whose machine has it all, runs it.
    """
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
    path: Path,
    executed_dir: Path,
    timeout: int = CELL_TIMEOUT_SECONDS,
    folder: Path | None = None,
    on_cell: Callable[[], None] | None = None,
    on_kernel: Callable[[Callable[[], None]], None] | None = None,
) -> float:
    """Run one notebook in a fresh kernel from its own folder (or `folder`, for a copy kept elsewhere);
    save the executed copy; return seconds.

    `on_cell` is called after each code cell (without it the notebook draws a progress bar of its
    own); `on_kernel` is given, once the kernel runs, a function that any thread may call to shut
    that kernel down, which ends the notebook with NotebookFailed.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from tqdm.auto import tqdm

    notebook = nbformat.read(path, as_version=4)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    bar = None if on_cell else tqdm(total=len(code_cells), desc=path.stem, unit="cell", leave=True)
    on_cell = on_cell or (lambda: bar.update(1))
    running = []  # the code cell being executed, for a kernel that dies or a cell that times out

    def running_cell() -> str:
        if not running:
            return "a cell"
        number = code_cells.index(running[-1]) + 1
        return f"code cell {number} ({_first_line(running[-1].source)!r})"

    def kernel_started(**_) -> None:
        # Called on the client's event loop: a shutdown is handed to that loop, whoever asks for it.
        if on_kernel is not None:
            loop, manager = asyncio.get_running_loop(), client.km
            on_kernel(lambda: asyncio.run_coroutine_threadsafe(manager.shutdown_kernel(), loop))

    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        # The kernel listens on loopback only; its start-up warning about unencrypted TCP would
        # otherwise be printed between the progress bars of every notebook. Warnings raised by the
        # notebook's own code still reach the executed copy.
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        resources={"metadata": {"path": str(folder or path.parent)}},
        on_notebook_start=kernel_started,
        on_cell_start=lambda cell, **_: running.append(cell) if cell.cell_type == "code" else None,
        on_cell_executed=lambda cell, **_: on_cell() if cell.cell_type == "code" else None,
    )
    executed_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        try:
            client.execute()
        except BaseException:
            # In the main thread nbclient takes SIGINT and SIGTERM itself while it runs, to shut the
            # kernel down, and then fails with whatever the dead kernel causes: it was an interruption.
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
        if bar is not None:
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


@dataclass(frozen=True)
class CourseNotebook:
    """A notebook of the course and what its metadata (`"week2": {...}`) tells the runner.

    `after`: the numbers of the notebooks whose results it reads (04 registers what 01–03 logged);
    it starts once they have run. `uses`: the servers it starts and stops (`team-server`), which
    one notebook at a time may hold. `requires`: the programs it needs (see missing_requirements).
    `going_further`: its `part` is "going further", beyond the week's core path (else it is core).
    """

    path: Path
    after: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    code_cells: int = 0
    going_further: bool = False

    @property
    def number(self) -> str:
        return self.path.name[:2]


def read_course(folder: Path) -> list[CourseNotebook]:
    """The course's notebooks in teaching order with their metadata; CoursePlanError if `after` is wrong."""
    import nbformat

    notebooks = []
    for path in course_notebooks(folder):
        notebook = nbformat.read(path, as_version=4)
        meta = notebook.metadata.get("week2", {})
        entry = CourseNotebook(
            path,
            after=tuple(meta.get("after", [])),
            uses=tuple(meta.get("uses", [])),
            requires=tuple(meta.get("requires", [])),
            going_further=meta.get("part") == GOING_FURTHER,
            code_cells=sum(cell.cell_type == "code" for cell in notebook.cells),
        )
        earlier = {n.number for n in notebooks}
        if unknown := [number for number in entry.after if number not in earlier]:
            raise CoursePlanError(
                f"{path.name}: its metadata week2.after names {', '.join(unknown)}, which is not an "
                "earlier notebook of the course: list only the numbers of earlier notebooks."
            )
        notebooks.append(entry)
    return notebooks


def run_course(notebooks_dir: Path | None = None, executed_dir: Path | None = None) -> list[NotebookResult]:
    """Resolve the data, run every notebook, print the summary; raise NotebookFailed on error."""
    from week2 import config

    notebooks_dir = notebooks_dir or config.REPO_ROOT / NOTEBOOKS_DIR_NAME
    executed_dir = executed_dir or config.build_dir() / NOTEBOOKS_DIR_NAME
    with store_lock(config.tracking_uri()):
        return _run_course_locked(notebooks_dir, executed_dir)


def _run_course_locked(notebooks_dir: Path, executed_dir: Path) -> list[NotebookResult]:
    from week2 import config, data, tracking

    notebooks = read_course(notebooks_dir)
    jobs = config.course_jobs()
    months = config.months()
    source, _ = data.resolve_months([months.train, months.val, months.test], warn=False)
    # Every notebook must see the same data, so the decision `auto` made is handed down to them.
    os.environ["WEEK2_DATA"] = source
    if jobs > 1:
        # OpenMP threads (xgboost's, scikit-learn's) spin on the cores while they wait for each
        # other; beside other notebooks that spinning takes their cores: notebook 02's boosting took
        # 34 s beside 01 instead of 13 s alone. Waiting threads that sleep leave the core to it.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    print(f"data: {source} ({months.train}, {months.val}, {months.test})")
    print(f"tracking store: {config.tracking_uri()}")
    print(f"notebooks at once: {jobs} (WEEK2_COURSE_JOBS); each starts when those it reads from have run")

    to_run, skipped = [], {}
    for notebook in notebooks:
        if missing := missing_requirements(notebook.requires):
            skipped[notebook.number] = f"{notebook.path.stem} (needs {'; '.join(missing)})"
        elif without := [number for number in notebook.after if number in skipped]:
            skipped[notebook.number] = f"{notebook.path.stem} (reads from {', '.join(without)}, skipped)"
        else:
            to_run.append(notebook)
            continue
        print(f"skipped {skipped[notebook.number]}", flush=True)

    # Notebook 01 opens the store with MLflow's own calls, beside notebook 02: the tables must be there.
    tracking.create_store(config.tracking_uri())
    started = time.perf_counter()
    results = run_notebooks_stopping_their_servers(to_run, executed_dir, jobs)
    print()
    print(summary(source, results, executed_dir, list(skipped.values()), time.perf_counter() - started))
    return results


def run_notebooks_stopping_their_servers(
    notebooks: list[CourseNotebook], executed_dir: Path, jobs: int
) -> list[NotebookResult]:
    """`run_notebooks`, then, if a notebook failed or the run was interrupted, stop the servers the
    course had started (a scenario notebook stops its own in its last cell, which a failure never reaches).
    """
    from week2.machinery import servers

    before = servers.running_services()
    try:
        return run_notebooks(notebooks, executed_dir, jobs)
    except BaseException:
        with _sigint_ignored():  # a second Ctrl+C would leave the servers running
            for name in servers.stop_services_started_since(before):
                print(f"stopped {name}, which the course had started", file=sys.stderr)
        raise


class _Running:
    """A notebook executing in a thread of its own; `stop` shuts its kernel down from any thread."""

    def __init__(self, notebook: CourseNotebook, executed_dir: Path, on_cell, finished: queue.Queue):
        self.notebook = notebook
        self._shutdown: Callable[[], None] | None = None
        self._stopping = False
        self._lock = threading.Lock()

        def execute() -> None:
            try:
                outcome = execute_notebook(
                    notebook.path, executed_dir, on_cell=on_cell, on_kernel=self._kernel
                )
            except BaseException as error:  # handed to the runner's thread, which raises it
                outcome = error
            finished.put((self, outcome))

        self.thread = threading.Thread(target=execute, name=notebook.path.stem, daemon=True)
        self.thread.start()

    def _kernel(self, shutdown: Callable[[], None]) -> None:
        with self._lock:
            self._shutdown = shutdown
            if self._stopping:  # asked to stop while its kernel was starting
                shutdown()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            if self._shutdown is not None:
                self._shutdown()


STOP_WAIT_SECONDS = 60  # a kernel asked to shut down is killed after 5 s; its thread then ends


def run_notebooks(notebooks: list[CourseNotebook], executed_dir: Path, jobs: int) -> list[NotebookResult]:
    """Run `notebooks`, up to `jobs` at once, each once those named in its `after` have run and no
    running notebook uses a server it uses; earlier notebooks first. Return their results in order.

    A failure or a Ctrl+C shuts the running notebooks' kernels down and is raised (NotebookFailed,
    KeyboardInterrupt) once their threads have ended; nothing further starts.
    """
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(n.code_cells for n in notebooks), desc="course", unit="cell")
    finished: queue.Queue = queue.Queue()
    pending, running, results = list(notebooks), [], []
    done: set[str] = set()
    course_started = time.perf_counter()

    def ready(notebook: CourseNotebook) -> bool:
        busy = {server for run in running for server in run.notebook.uses}
        return set(notebook.after) <= done and not busy & set(notebook.uses)

    def show_running() -> None:
        bar.set_description_str("running " + ", ".join(run.notebook.path.stem for run in running))

    try:
        while pending or running:
            for notebook in list(pending):
                if len(running) < jobs and ready(notebook):
                    pending.remove(notebook)
                    running.append(_Running(notebook, executed_dir, lambda: bar.update(1), finished))
            if not running:  # what is left waits for a notebook that is not among those to run
                waiting = {n.path.name: sorted(set(n.after) - done) for n in pending}
                raise CoursePlanError(f"nothing can start: {waiting} wait for notebooks not run here.")
            show_running()
            run, outcome = _next_finished(finished)
            running.remove(run)
            if isinstance(outcome, BaseException):
                raise outcome
            done.add(run.notebook.number)
            finished_at = time.perf_counter() - course_started
            results.append(
                NotebookResult(run.notebook.path, outcome, finished_at, run.notebook.going_further)
            )
            name = run.notebook.path.stem
            bar.write(f"{name}: {outcome:.0f} s, done {_minutes(finished_at)} into the course")
    except BaseException:
        with _sigint_ignored():
            for run in running:
                run.stop()
            for run in running:
                run.thread.join(STOP_WAIT_SECONDS)
        raise
    finally:
        bar.close()
    return sorted(results, key=lambda result: result.path.name)


def _next_finished(finished: queue.Queue):
    # A wait with a timeout, so that Ctrl+C reaches this thread at once.
    while True:
        try:
            return finished.get(timeout=0.5)
        except queue.Empty:
            continue


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ctrl+C is ignored in the block (bounded clean-up that a second Ctrl+C would cut short)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _minutes(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def summary(
    source: str,
    results: list[NotebookResult],
    executed_dir: Path,
    skipped: list[str] | None = None,
    seconds: float | None = None,
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
    for part, going_further in (("core notebooks", False), (GOING_FURTHER, True)):
        if ran := [f"{r.path.stem} {r.seconds:.0f}s" for r in results if r.going_further == going_further]:
            lines.append(f"{part}: {', '.join(ran)}")
    if seconds is not None:
        lines.append(f"course: {_minutes(seconds)} from the first notebook to the last")
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
