"""The course runner: notebooks in order, progress, a failure that names notebook and cell, a summary."""

from __future__ import annotations

import os
import re
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


def _notebook(path, *cells, **week2):
    """A notebook of code cells; keyword arguments become its `week2` metadata (after=, uses=…)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if week2:
        nb.metadata["week2"] = week2
    nbformat.write(nb, path)
    return path


def _timed(name: str, seconds: float = 0) -> list[str]:
    """Cells that record when notebook `name` started and ended (in `<name>.start`, `<name>.end`)
    and its kernel's pid, and wait `seconds` in between."""
    return [
        f"import os, time\nopen('{name}.pid', 'w').write(str(os.getpid()))\n"
        f"open('{name}.start', 'w').write(repr(time.time()))",
        f"time.sleep({seconds})",
        f"open('{name}.end', 'w').write(repr(time.time()))",
    ]


def _span(folder, name: str) -> tuple[float, float]:
    return float((folder / f"{name}.start").read_text()), float((folder / f"{name}.end").read_text())


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


def test_two_notebooks_run_at_once_and_one_waits_for_those_it_reads_from(tmp_path, store, monkeypatch):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _notebook(folder / "01-long.ipynb", *_timed("01", seconds=4))
    _notebook(folder / "02-free.ipynb", *_timed("02", seconds=1))
    _notebook(folder / "03-reads-01.ipynb", *_timed("03"), after=["01"])
    monkeypatch.setenv("WEEK2_DATA", "sample")
    monkeypatch.setenv("WEEK2_COURSE_JOBS", "2")

    results = course.run_course(folder, tmp_path / "executed")

    (start1, end1), (start2, end2), (start3, _) = (_span(folder, n) for n in ("01", "02", "03"))
    assert start2 < end1 and start1 < end2  # 01 and 02 ran side by side
    assert start3 >= end1  # 03 started only once 01, whose results it reads, had run (02 was free)
    assert [r.path.name[:2] for r in results] == ["01", "02", "03"]
    assert all(r.finished_at > 0 for r in results)
    assert (tmp_path / "executed" / "03-reads-01.ipynb").is_file()


def test_the_store_has_its_tables_before_the_first_notebooks_open_it_at_once(tmp_path, store, monkeypatch):
    """Notebook 01 opens the store with MLflow's own calls beside notebook 02: two migrations of a
    new store at once collide, so the runner makes the tables first."""
    folder = tmp_path / "nbs"
    folder.mkdir()
    peek = (
        "import os, sqlite3\n"
        "database = os.environ['MLFLOW_TRACKING_URI'].removeprefix('sqlite:///')\n"
        "tables = {name for (name,) in sqlite3.connect(database).execute("
        "\"SELECT name FROM sqlite_master WHERE type = 'table'\")}\n"
        "open('tables.txt', 'w').write(' '.join(sorted(tables)))"
    )
    _notebook(folder / "01-peeks.ipynb", peek)
    monkeypatch.setenv("WEEK2_DATA", "sample")
    fresh = tmp_path / "fresh" / "mlflow.db"  # the suite's stores are copies of a made one
    fresh.parent.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{fresh}")

    course.run_course(folder, tmp_path / "executed")

    tables = (folder / "tables.txt").read_text().split()
    assert {"alembic_version", "experiments", "runs", "registered_models"} <= set(tables), tables


def test_notebooks_using_the_same_server_never_run_at_once(tmp_path, store, monkeypatch):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _notebook(folder / "01-server.ipynb", *_timed("01", seconds=2), uses=["toy-server"])
    _notebook(folder / "02-server-too.ipynb", *_timed("02", seconds=2), uses=["toy-server"])
    _notebook(folder / "03-no-server.ipynb", *_timed("03", seconds=2))
    monkeypatch.setenv("WEEK2_DATA", "sample")
    monkeypatch.setenv("WEEK2_COURSE_JOBS", "2")

    course.run_course(folder, tmp_path / "executed")

    (start1, end1), (start2, end2), (start3, end3) = (_span(folder, n) for n in ("01", "02", "03"))
    assert end1 <= start2  # 02 waited for the server's other user, though a slot was free
    assert start3 < end1 and start1 < end3  # 03 took that slot beside 01


def test_with_one_job_the_notebooks_run_one_after_another_in_teaching_order(tmp_path, store, monkeypatch):
    folder = tmp_path / "nbs"
    folder.mkdir()
    for number in ("01", "02", "03"):
        _notebook(folder / f"{number}-nb.ipynb", *_timed(number))
    monkeypatch.setenv("WEEK2_DATA", "sample")
    monkeypatch.setenv("WEEK2_COURSE_JOBS", "1")

    course.run_course(folder, tmp_path / "executed")

    spans = [_span(folder, n) for n in ("01", "02", "03")]
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False))


def test_a_notebook_after_one_that_is_not_earlier_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _notebook(folder / "01-first.ipynb", "x = 1", after=["02"])
    _notebook(folder / "02-second.ipynb", "x = 2")
    with pytest.raises(course.CoursePlanError) as error:
        course.read_course(folder)
    assert str(error.value) == (
        "01-first.ipynb: its metadata week2.after names 02, which is not an earlier notebook of the "
        "course: list only the numbers of earlier notebooks."
    )


def test_a_notebook_whose_predecessor_is_not_run_is_refused_rather_than_waited_for(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _notebook(folder / "01-first.ipynb", "x = 1")
    _notebook(folder / "02-reads-01.ipynb", "x = 2", after=["01"])
    (_, second) = course.read_course(folder)
    with pytest.raises(course.CoursePlanError, match="02-reads-01.ipynb.*01"):
        course.run_notebooks([second], tmp_path / "executed", jobs=2)
    assert not (tmp_path / "executed" / "02-reads-01.ipynb").exists()


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
    further = course.NotebookResult(tmp_path / "02-further.ipynb", 5.0, going_further=True)
    results = [course.NotebookResult(tmp_path / "01-x.ipynb", 3.0), further]

    text = course.summary("sample", results, tmp_path / "executed")

    assert "core notebooks: 01-x 3s\ngoing further: 02-further 5s\n" in text  # the core week first
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
    _notebook(folder / "03-reads-02.ipynb", "open('ran.txt', 'a').write('03')", after=["02"])
    monkeypatch.setenv("WEEK2_DATA", "sample")
    monkeypatch.setenv("PATH", "")  # no java, whatever the machine has (the kernel is found by path)

    results = course.run_course(folder, tmp_path / "executed")

    assert [r.path.name for r in results] == ["01-runs.ipynb"]
    assert (folder / "ran.txt").read_text() == "01"
    out = capsys.readouterr().out
    assert "skipped: 02-needs-java (needs Java 17 for Spark" in out and "openjdk-17" in out
    assert "skipped: 03-reads-02 (reads from 02, skipped)" in out


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


def test_a_failed_notebook_stops_the_other_running_one_and_the_servers_and_ends_in_one_line(
    tmp_path, store, monkeypatch, capsys
):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _notebook(
        folder / "01-starts-then-fails.ipynb",
        START_SERVER,
        "import time\ntime.sleep(2)",  # the other notebook's kernel is up by then
        "raise RuntimeError('before the last cell')",
    )
    _notebook(folder / "02-beside-it.ipynb", *_timed("02", seconds=120))
    _notebook(folder / "03-never-starts.ipynb", *_timed("03"))
    monkeypatch.setenv("WEEK2_DATA", "sample")
    monkeypatch.setenv("WEEK2_COURSE_JOBS", "2")
    monkeypatch.setenv("WEEK2_SERVERS_DIR", str(tmp_path / "servers"))

    started = time.monotonic()
    assert course.main_course(notebooks_dir=folder, executed_dir=tmp_path / "executed") == 1

    assert time.monotonic() - started < 60  # 02 was stopped, not waited for
    err = capsys.readouterr().err
    stopped_line = next(line for line in err.splitlines() if line.startswith("course stopped:"))
    assert "01-starts-then-fails.ipynb" in stopped_line and "RuntimeError" in stopped_line
    assert "stopped toy-server" in err
    assert process_gone(_toy_server_pid(folder))
    assert process_gone(int((folder / "02.pid").read_text()))
    assert not (folder / "02.end").exists() and not (folder / "03.start").exists()


def test_ctrl_c_stops_the_course_its_running_notebooks_and_the_servers_they_started(tmp_path, store):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _notebook(folder / "01-starts-then-waits.ipynb", START_SERVER, "import time\ntime.sleep(120)")
    _notebook(folder / "02-waits-beside-it.ipynb", *_timed("02", seconds=120))
    env = {
        **os.environ,
        "WEEK2_DATA": "sample",
        "WEEK2_COURSE_JOBS": "2",
        "WEEK2_SERVERS_DIR": str(tmp_path / "servers"),
    }
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
        while not ((folder / "started.txt").exists() and (folder / "02.start").exists()):
            assert time.monotonic() < deadline, "the notebooks did not start"
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
    assert process_gone(int((folder / "02.pid").read_text()))
    assert not (folder / "02.end").exists()


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


SERVER_STARTS = {
    "team-server": ("ensure_team_server(", "start_team_server("),
    "scenario3": ("ensure_scenario3(",),
}


def test_each_course_notebook_declares_the_notebooks_it_reads_and_the_servers_it_starts():
    """What the runner's order rests on, checked against the code: an experiment of another
    notebook named in a cell (`"01-…"`) needs that notebook in `week2.after`, and a server started
    in a cell needs it in `week2.uses`."""
    for notebook in course.read_course(config.REPO_ROOT / "notebooks"):
        code = "\n".join(
            c.source for c in nbformat.read(notebook.path, as_version=4).cells if c.cell_type == "code"
        )
        named = {number for number in re.findall(r"[\"'](\d\d)-[a-z]", code) if number != notebook.number}
        assert named <= set(notebook.after), f"{notebook.path.name} reads {named}, after {notebook.after}"
        for server, calls in SERVER_STARTS.items():
            if any(call in code for call in calls):
                assert server in notebook.uses, f"{notebook.path.name} starts {server}"
