"""The course runner: notebooks in order, progress, a failure that names notebook and cell, a summary."""

from __future__ import annotations

import mlflow
import nbformat
import pytest

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
