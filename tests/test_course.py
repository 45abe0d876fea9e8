"""The course runner: notebooks in order, progress, a failure that names notebook and cell, a summary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import mlflow
import nbformat
import pytest
from conftest import process_gone

from week2 import config
from week2.machinery import course


def _notebook(path, *cells):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_notebooks_run_in_sort_order_and_executed_copies_are_saved(tmp_path, store):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _notebook(folder / "02-second.ipynb", "open('order.txt', 'a').write('2')")
    _notebook(folder / "01-first.ipynb", "open('order.txt', 'a').write('1')")
    _notebook(folder / "notes.ipynb", "raise SystemExit('unnumbered notebooks are not part of the course')")

    for path in course.course_notebooks(folder):
        course.execute_notebook(path, tmp_path / "executed")

    assert (folder / "order.txt").read_text() == "12"  # the notebook's folder is its working directory
    executed = nbformat.read(tmp_path / "executed" / "01-first.ipynb", as_version=4)
    assert executed.cells[0].execution_count == 1


def test_a_failure_names_the_notebook_and_the_cell(tmp_path):
    path = _notebook(tmp_path / "03-broken.ipynb", "x = 1", "# why\ny = 1 / 0", "z = 3")
    with pytest.raises(course.NotebookFailed) as error:
        course.execute_notebook(path, tmp_path / "executed")
    message = str(error.value)
    assert "03-broken.ipynb" in message and "code cell 2" in message and "ZeroDivisionError" in message
    assert "y = 1 / 0" in message
    assert (tmp_path / "executed" / "03-broken.ipynb").is_file()  # kept, with the traceback, to read


def test_summary_reports_data_runs_best_rmse_per_model_and_next_step(tmp_path, store):
    mlflow.set_tracking_uri(config.tracking_uri())  # the store fixture's
    mlflow.set_experiment("summary-test")
    for model, score in [("ridge", 7.7), ("ridge", 7.6), ("lasso", 11.2)]:
        with mlflow.start_run(tags={"model": model}):
            mlflow.log_metric("val_rmse", score)
    result = course.NotebookResult(tmp_path / "01-x.ipynb", 3.0)

    text = course.summary("sample", [result], tmp_path / "executed")

    assert "SYNTHETIC SAMPLE" in text
    assert "runs logged: 3" in text
    assert "ridge" in text and "7.600" in text and "7.700" not in text
    assert text.index("ridge") < text.index("lasso")  # best first
    assert "make ui" in text


def test_a_notebook_needing_a_missing_program_is_skipped_with_how_to_get_it(
    tmp_path, store, monkeypatch, capsys
):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _notebook(folder / "01-runs.ipynb", "open('ran.txt', 'a').write('01')")
    needs_java = _notebook(folder / "02-needs-java.ipynb", "open('ran.txt', 'a').write('02')")
    notebook = nbformat.read(needs_java, as_version=4)
    notebook.metadata["week2"] = {"requires": ["java"]}
    nbformat.write(notebook, needs_java)
    monkeypatch.setenv("WEEK2_DATA", "sample")
    monkeypatch.setenv("PATH", "")  # no java, whatever the machine has (the kernel is found by path)

    results = course.run_course(folder, tmp_path / "executed")

    assert [r.path.name for r in results] == ["01-runs.ipynb"]
    assert (folder / "ran.txt").read_text() == "01"
    out = capsys.readouterr().out
    assert "skipped: 02-needs-java (needs Java 17 for Spark" in out and "openjdk-17" in out


def test_a_dead_kernel_is_one_line_naming_notebook_and_cell(tmp_path):
    path = _notebook(
        tmp_path / "04-dies.ipynb", "x = 1", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
    )
    with pytest.raises(course.NotebookFailed) as error:
        course.execute_notebook(path, tmp_path / "executed")
    message = str(error.value)
    assert "04-dies.ipynb" in message and "kernel died" in message and "code cell 2" in message
    assert "\n" not in message


def test_a_cell_that_runs_out_of_time_is_one_line_naming_notebook_and_cell(tmp_path):
    path = _notebook(tmp_path / "05-slow.ipynb", "x = 1", "import time\ntime.sleep(60)")
    with pytest.raises(course.NotebookFailed) as error:
        course.execute_notebook(path, tmp_path / "executed", timeout=3)
    message = str(error.value)
    assert "05-slow.ipynb" in message and "code cell 2" in message and "within 3 s" in message


# A notebook that starts a server the way the scenario notebooks do (a supervised process under the
# servers folder, whose pid file says what it is), then fails or waits before its last cell.
START_SERVER = """\
import sys
from week2 import config
from week2.machinery import processes
service = processes.Service("toy-server", config.servers_dir() / "toy")
service.start([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "0"])
open("started.txt", "w").write(str(service.recorded().pid))
"""


def _toy_server_pid(folder) -> int:
    return int((folder / "started.txt").read_text())


def test_a_failed_notebook_stops_the_servers_it_started_and_ends_in_one_line(
    tmp_path, store, monkeypatch, capsys
):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _notebook(
        folder / "01-starts-then-fails.ipynb", START_SERVER, "raise RuntimeError('before the last cell')"
    )
    monkeypatch.setenv("WEEK2_DATA", "sample")
    monkeypatch.setenv("WEEK2_SERVERS_DIR", str(tmp_path / "servers"))

    assert course.main_course(notebooks_dir=folder, executed_dir=tmp_path / "executed") == 1

    err = capsys.readouterr().err
    stopped_line = next(line for line in err.splitlines() if line.startswith("course stopped:"))
    assert "01-starts-then-fails.ipynb" in stopped_line and "RuntimeError" in stopped_line
    assert "stopped toy-server" in err
    assert process_gone(_toy_server_pid(folder))


def test_ctrl_c_stops_the_course_and_the_servers_its_notebook_started(tmp_path, store):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _notebook(folder / "01-starts-then-waits.ipynb", START_SERVER, "import time\ntime.sleep(120)")
    env = {**os.environ, "WEEK2_DATA": "sample", "WEEK2_SERVERS_DIR": str(tmp_path / "servers")}
    script = (
        "import sys; from pathlib import Path; from week2.machinery import course; "
        f"sys.exit(course.main_course(notebooks_dir=Path({str(folder)!r}), "
        f"executed_dir=Path({str(tmp_path)!r})))"
    )
    # A session of its own, as a terminal's foreground job: Ctrl+C signals the whole process group.
    runner = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (folder / "started.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        server_pid = _toy_server_pid(folder)
        os.killpg(runner.pid, signal.SIGINT)
        _, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()

    assert runner.returncode == 130, err
    # The last line is ours (the kernel, shut down mid-cell, may log its own complaint before it).
    assert err.strip().splitlines()[-1].startswith("course stopped: interrupted (Ctrl+C)"), err
    assert "stopped toy-server" in err
    assert process_gone(server_pid)


def test_a_second_course_run_on_the_same_store_refuses_in_one_line(tmp_path, store):
    holder = course.store_lock(f"sqlite:///{store / 'mlflow.db'}")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in store.iterdir() if "lock" not in p.name)
    with holder as lock_file:
        assert lock_file.parent == store
        second = subprocess.run(
            [sys.executable, "-m", "week2", "course"],
            capture_output=True,
            text=True,
            timeout=120,
            env=os.environ,
        )
    assert second.returncode == 2
    assert second.stderr.strip() == (
        f"error: another course run (pid {os.getpid()}) is using sqlite:///{store / 'mlflow.db'}: "
        "wait for it to finish, or set MLFLOW_TRACKING_URI to another store."
    )
    after = sorted((p.name, p.stat().st_mtime_ns) for p in store.iterdir() if "lock" not in p.name)
    assert after == before  # nothing ran: the store and its folder are as they were
    with course.store_lock(f"sqlite:///{store / 'mlflow.db'}"):
        pass  # released with its holder
