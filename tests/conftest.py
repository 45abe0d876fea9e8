"""Test-wide settings: a private tracking store, the synthetic sample, small budgets.

nbmake starts each notebook in its own kernel process, where pytest fixtures do not reach, so the
settings are environment variables set once in `pytest_configure`, before any kernel starts.
"""

from __future__ import annotations

import functools
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# The shared copy of the real TLC months that sits beside the repository in CI and on the
# course machines. Only tests (and .ci/run) may know this path; the package never does.
SHARED_TLC = REPO_ROOT.parent / "shared" / "data" / "tlc"


def pytest_configure(config: pytest.Config) -> None:
    # `make test` runs the suite inside make: the make commands the tests run must behave as a
    # student's own (no "make[1]:" prefixes, none of the outer make's flags).
    for variable in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"):
        os.environ.pop(variable, None)
    scratch = Path(tempfile.mkdtemp(prefix="week2-tests-"))
    # Private, as /root is: PostgreSQL, which runs as its own account when we are root, keeps its
    # data elsewhere and need not enter it.
    scratch.chmod(0o700)
    from week2.config import store_settings
    from week2.machinery.servers import free_ports

    server_port, scenario3_port, s3_port, postgres_port, webhook_port, *class_ports = free_ports(8)
    defaults = {
        **store_settings(scratch),
        "WEEK2_DATA_DIR": str(scratch / "data"),
        "WEEK2_DATA": "sample",
        "WEEK2_SAMPLE_ROWS": "5000",
        "WEEK2_SWEEP_TRIALS": "4",
        "IPYTHONDIR": str(_ipython_dir_with_strict_warnings(scratch)),
        "MPLBACKEND": "Agg",
        # Scenario notebooks start their servers here, never on a student's running ones.
        "WEEK2_SERVERS_DIR": str(scratch / "servers"),
        "WEEK2_SERVER_PORT": str(server_port),
        "WEEK2_SCENARIO3_PORT": str(scenario3_port),
        "WEEK2_S3_PORT": str(s3_port),
        "WEEK2_POSTGRES_PORT": str(postgres_port),
        "WEEK2_WEBHOOK_PORT": str(webhook_port),
        **dict(zip(CLASS_PORT_SETTINGS, map(str, class_ports), strict=True)),
    }
    if SHARED_TLC.is_dir():
        defaults["WEEK2_TLC_MIRROR"] = str(SHARED_TLC)
    for name, value in defaults.items():
        # The suite's own store and sample always win over a developer's shell; a mirror set
        # by the caller (e.g. a base URL) is kept.
        if name == "WEEK2_TLC_MIRROR" and os.environ.get(name):
            continue
        os.environ[name] = value
    os.environ["WEEK2_TEST_SCRATCH"] = str(scratch)
    # With pytest-xdist every worker has a scratch folder of its own (store, servers, ports) and
    # they all share the build folder of the process that started them, where notebook 10's
    # MLflow 2 environment is built once (old_store locks it).
    if "PYTEST_XDIST_WORKER" not in os.environ:
        os.environ["WEEK2_BUILD_DIR"] = str(scratch / "build")


_PASSED = pytest.StashKey[bool]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_PASSED] = exitstatus == 0


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the servers of a scenario notebook that failed before its last cell; remove the scratch
    folder of a run that passed, and name the one of a run that failed (its executed notebooks)."""
    if "WEEK2_TEST_SCRATCH" in os.environ:
        from week2.machinery import class_server, servers

        # A run that passed deletes its scratch folder, and with it the scenarios' data, which
        # PostgreSQL may keep outside it (when we are root): deleted with them, not left behind.
        passed = config.stash.get(_PASSED, False)
        servers.stop_team_server()
        servers.stop_scenario3(delete=passed)
        class_server.stop_class_server(delete=passed)
        scratch = Path(os.environ["WEEK2_TEST_SCRATCH"])
        if passed:
            shutil.rmtree(scratch, ignore_errors=True)
        elif "PYTEST_XDIST_WORKER" not in os.environ:
            print(f"\nthe suite's scratch folder (stores, executed notebooks, logs) is kept: {scratch}")


LONGEST_FIRST = (
    "test_exercises.py",
    "test_homework_real.py",
    "test_homework.py",
    "test_class_grade.py",
    "test_homework_variants.py",
    "test_spark.py",
    "test_class_server.py",
)
"""The files that take longest (minutes each), longest first. `make test` gives each worker whole
files, in collection order: started first, they run side by side, and the short files fill in
after; met last, two of them could end up one after the other on the same worker."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest files first (a stable sort: each file's own order is kept); and a test that starts
    the scenario servers must be marked so, or `make test-fast` would start them."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
    starts_servers = [item for item in items if "server_settings" in getattr(item, "fixturenames", ())]
    unmarked = [item.nodeid for item in starts_servers if item.get_closest_marker("servers") is None]
    if unmarked:
        raise pytest.UsageError(f"mark @pytest.mark.servers (they start servers): {', '.join(unmarked)}")


def _ipython_dir_with_strict_warnings(scratch: Path) -> Path:
    """An IPython profile whose startup makes deprecations from notebook code fail the cell."""
    startup = scratch / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "tests" / "ipython_startup" / "00-strict-warnings.py", startup)
    return scratch / "ipython"


@pytest.fixture(autouse=True)
def _sys_path_as_it_was():
    """Each test starts with the same sys.path.

    Loading a model logged with `code_paths` puts its `code/` folder first on sys.path (MLflow does
    so to import the model's modules), and that folder holds a partial `week2` package. Processes a
    later test spawns through multiprocessing inherit sys.path and would import that copy.
    """
    saved = list(sys.path)
    yield
    sys.path[:] = saved


def tree_with_mtimes(folder: Path) -> dict[str, float]:
    """Every file and folder under `folder` with its modification time, outside the big caches.

    The caches are pruned, not walked and filtered: .venv alone holds tens of thousands of files.
    """
    skip = {".venv", ".git", "__pycache__", ".ruff_cache", ".pytest_cache"}
    tree = {}
    for root, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if name not in skip]
        for name in folders + files:
            path = Path(root, name)
            tree[str(path.relative_to(folder))] = path.lstat().st_mtime
    return tree


def real_month(month: str) -> Path:
    """The shared real file of `month`, or skip the test when it is not on this machine."""
    path = SHARED_TLC / f"green_tripdata_{month}.parquet"
    if not path.is_file():
        pytest.skip(f"real TLC month {month} not present in {SHARED_TLC}")
    return path


@functools.cache
def _empty_store() -> Path:
    """An empty SQLite store with MLflow's tables, made once: creating one takes seconds, a copy none."""
    from mlflow import MlflowClient

    folder = Path(os.environ["WEEK2_TEST_SCRATCH"]) / "empty-store"
    folder.mkdir()
    MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


def use_store(patch: pytest.MonkeyPatch, folder: Path) -> str:
    """Point MLflow and the course at a throwaway store in `folder`; return its tracking URI."""
    from week2.config import store_settings

    database = Path(folder) / "mlflow.db"
    if not database.exists():
        with closing(sqlite3.connect(_empty_store())) as empty, closing(sqlite3.connect(database)) as copy:
            empty.backup(copy)
            # The Default experiment keeps its artifacts in this store's folder, not the template's.
            with copy:
                copy.execute(
                    "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                    (str(Path(folder) / "mlartifacts" / "0"),),
                )
    settings = store_settings(folder)
    for name, value in settings.items():
        patch.setenv(name, value)
    return settings["MLFLOW_TRACKING_URI"]


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A private SQLite store and artifact root for one test."""
    import mlflow

    use_store(monkeypatch, tmp_path)
    yield tmp_path
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def private_store(tmp_path_factory):
    """A tracking store and artifact root of one test module's own, for modules that build on runs."""
    import mlflow

    folder = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as patch:
        use_store(patch, folder)
        yield folder
        # set_tracking_uri(None) deletes MLFLOW_TRACKING_URI: do it before the patch restores it.
        mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def sample_xy():
    """(X, y) of the sample's training, validation and test months."""
    from week2 import config, data, utils

    months = config.months()
    _, paths = data.resolve_months([months.train, months.val, months.test])
    return [utils.split_xy(utils.read_dataframe(path)) for path in paths]


def log_model_run(experiment: str, estimator, sample_xy, name: str, fit_seconds: bool = True):
    """Fit the course pipeline on the sample and log it as the notebooks do; return (run, pipeline)."""
    import time

    import mlflow

    from week2 import tracking, utils

    (X_train, y_train), (X_val, y_val), _ = sample_xy
    tracking.setup_mlflow(experiment)
    with mlflow.start_run(run_name=name, tags=tracking.run_tags(model=name, data_source="sample")) as run:
        started = time.perf_counter()
        pipeline = utils.make_pipeline(estimator).fit(X_train, y_train)
        if fit_seconds:
            mlflow.log_metric("fit_seconds", time.perf_counter() - started)
        mlflow.log_metric("val_rmse", utils.rmse(y_val, pipeline.predict(X_val)))
        tracking.log_pipeline(pipeline, X_train)
    return mlflow.get_run(run.info.run_id), pipeline


def log_custom_model(pipeline, folder: Path, example, clip: tuple[float, float] = (5.0, 20.0)):
    """Notebook 05's custom model around `pipeline`, logged from code as the notebook logs it."""
    import joblib
    import mlflow

    from week2 import pyfunc_model

    artifacts = {}
    for key, step in (("preprocessor", "preprocess"), ("estimator", "model")):
        artifacts[key] = str(folder / f"{key}.joblib")
        joblib.dump(pipeline.named_steps[step], artifacts[key])
    dependencies = pyfunc_model.model_dependencies(pipeline, model_file=pyfunc_model.MODEL_FILE)
    with dependencies as (code_paths, requirements), mlflow.start_run(run_name="custom-pyfunc"):
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=pyfunc_model.MODEL_FILE,
            artifacts=artifacts,
            model_config={"min_minutes": clip[0], "max_minutes": clip[1]},
            code_paths=code_paths,
            pip_requirements=requirements,
            signature=pyfunc_model.TRIP_SIGNATURE,
            input_example=example.head(5),
        )


# --- servers of the deployment scenarios, shared by the scenario and reliability tests ------------

CLASS_PORT_SETTINGS = ("WEEK2_CLASS_PORT", "WEEK2_CLASS_S3_PORT", "WEEK2_CLASS_POSTGRES_PORT")
PORT_SETTINGS = (
    "WEEK2_SERVER_PORT", "WEEK2_SCENARIO3_PORT", "WEEK2_S3_PORT", "WEEK2_POSTGRES_PORT", "WEEK2_WEBHOOK_PORT",
    *CLASS_PORT_SETTINGS,
)  # fmt: skip


@pytest.fixture(scope="module")
def server_settings():
    """A private servers folder and free ports; afterwards: nothing listens, the folder is gone."""
    import mlflow

    from week2.machinery import class_server, servers

    # Mode 700, as /root: the scenarios start as root from a folder that no other account may enter.
    folder = Path(tempfile.mkdtemp(prefix="week2-servers-"))
    ports = dict(zip(PORT_SETTINGS, servers.free_ports(len(PORT_SETTINGS)), strict=True))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WEEK2_SERVERS_DIR", str(folder / "servers"))
        for setting, port in ports.items():
            patch.setenv(setting, str(port))
        # mlflow.set_tracking_uri writes MLFLOW_TRACKING_URI into the environment (and None deletes
        # it): the patch puts the suite's private store back for the tests that follow.
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        patch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
        try:
            yield ports
        finally:
            servers.stop_team_server()
            servers.stop_scenario3(delete=True)  # the folder goes: PostgreSQL's data, wherever it is, too
            class_server.stop_class_server(delete=True)
            mlflow.set_tracking_uri(None)
    shutil.rmtree(folder)
    busy = {setting: port for setting, port in ports.items() if not servers.port_is_free(port)}
    assert not busy, f"still listening after the tests: {busy}"


def run_week2(*args: str) -> subprocess.CompletedProcess:
    """`python -m week2 ...` as `make` calls it, in another process."""
    return subprocess.run(
        [sys.executable, "-m", "week2", *args], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT
    )


def skip_without_postgres() -> None:
    if shutil.which("initdb") is None and not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        pytest.skip("PostgreSQL's server programs (initdb, postgres) are not installed")


@pytest.fixture(scope="module")
def scenario3(server_settings):
    """Scenario 3 started as `make scenario3` does; stopped with its data deleted afterwards."""
    from week2.machinery import servers

    skip_without_postgres()
    started = run_week2("scenario3")
    pgdata = (servers.scenario3_folder() / "pgdata").resolve()  # elsewhere when PostgreSQL is not us
    try:
        assert started.returncode == 0, started.stderr
        assert str(servers.secrets_path()) in started.stdout
        yield servers.scenario3_url()
    finally:
        stopped = run_week2("scenario3-stop", "--delete")
        assert stopped.returncode == 0, stopped.stderr
        assert not servers.scenario3_folder().exists() and not pgdata.exists()


def process_gone(pid: int) -> bool:
    """True when no process has `pid` any more (a zombie waiting to be reaped counts as gone)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
