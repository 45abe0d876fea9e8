"""The course runner: execute every notebook in order against one tracking store, then summarise.

`python -m week2 course` (what `make course` calls) resolves the data once (real months, or the
synthetic sample when they cannot be had), runs `notebooks/NN-*.ipynb` in sort order with nbclient,
saves executed copies to `build/notebooks/`, and prints what the store now holds.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

NOTEBOOKS_DIR_NAME = "notebooks"
CELL_TIMEOUT_SECONDS = 900  # the full sweep on real data is the longest cell; nothing legit takes longer


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook and the cell."""


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


def execute_notebook(path: Path, executed_dir: Path, timeout: int = CELL_TIMEOUT_SECONDS) -> float:
    """Run one notebook in a fresh kernel from its own folder; save the executed copy; return seconds."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from tqdm.auto import tqdm

    notebook = nbformat.read(path, as_version=4)
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    bar = tqdm(total=len(code_cells), desc=path.stem, unit="cell", leave=True)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        # The kernel listens on loopback only; its start-up warning about unencrypted TCP would
        # otherwise be printed between the progress bars of every notebook. Warnings raised by the
        # notebook's own code still reach the executed copy.
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_executed=lambda cell, **_: bar.update(1) if cell.cell_type == "code" else None,
    )
    executed_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        client.execute()
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
    finally:
        bar.close()
        nbformat.write(notebook, executed_dir / path.name)
    return time.perf_counter() - started


def run_course(notebooks_dir: Path | None = None, executed_dir: Path | None = None) -> list[NotebookResult]:
    """Resolve the data, run every notebook in order, print the summary; raise NotebookFailed on error."""
    from week2 import config, data

    notebooks_dir = notebooks_dir or config.REPO_ROOT / NOTEBOOKS_DIR_NAME
    executed_dir = executed_dir or config.REPO_ROOT / "build" / NOTEBOOKS_DIR_NAME
    months = config.months()
    source, _ = data.resolve_months([months.train, months.val, months.test])
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
        seconds = execute_notebook(path, executed_dir)
        results.append(NotebookResult(path, seconds))
    print()
    print(summary(source, results, executed_dir, skipped))
    return results


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


def main_course(argv: list[str] | None = None) -> int:
    try:
        run_course()
    except NotebookFailed as error:
        print(
            f"\ncourse stopped: {error}\n(the executed copy in build/notebooks/ shows the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0
