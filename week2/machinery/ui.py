"""The MLflow UI in a real browser: a store filled by the course, `mlflow ui` on it, headless Chromium.

Shared by `images/take_screenshots.py` (the pictures CONCEPTS.md shows) and `tests/test_ui.py`: the
pages the pictures show are the pages the test checks. The browser is Debian's Chromium driven by
Playwright; Playwright's own browser download is never used.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from week2 import config
from week2.config import REPO_ROOT
from week2.machinery import processes, servers
from week2.machinery.course import course_notebooks, execute_notebook

CHROMIUM = Path("/usr/bin/chromium")
# No GPU, no sandbox (containers run us as root), and no background traffic: the machines that
# take the pictures and run the tests may have no network, and Chromium would retry it endlessly.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1400, "height": 900}
PAGE_TIMEOUT_MS = 30_000
# MLflow 3 opens on its GenAI views with an assistant panel; a student of this course works in
# "Model training". The UI keeps both choices in localStorage, set here before any page loads.
UI_PREFERENCES = """
localStorage.setItem("mlflow.workflowType_v1", '"machine_learning"');
localStorage.setItem("mlflow.assistant.panelOpen_v1", "false");
localStorage.setItem("mlflow.assistant.fab.autoOpenedOnFirstLoad_v1", "true");
"""


def sample_store_settings(folder: Path, sample_rows: int) -> dict[str, str]:
    """Environment for a throwaway tracking store in `folder`, filled from the synthetic sample."""
    return {
        **config.store_settings(folder),
        "WEEK2_DATA_DIR": str(folder / "data"),
        "WEEK2_DATA": "sample",
        "WEEK2_SAMPLE_ROWS": str(sample_rows),
        "MPLBACKEND": "Agg",
    }


def run_notebooks(numbers: Iterable[str], executed_dir: Path) -> list[Path]:
    """Execute, in order, the course's notebooks whose number is in `numbers` (e.g. "01"); return them."""
    numbers = set(numbers)
    chosen = [p for p in course_notebooks(REPO_ROOT / "notebooks") if p.name[:2] in numbers]
    for path in chosen:
        execute_notebook(path, executed_dir)
    return chosen


@contextmanager
def mlflow_ui(backend_uri: str, artifacts: Path) -> Iterator[str]:
    """`mlflow ui` on `backend_uri`, on a free port of 127.0.0.1, ready (/health); yields its URL.

    In MLflow 3 `mlflow ui` is an alias of `mlflow server`, so the scenario-2 server's command is
    reused: one worker, job runner off, two processes. Stopped with all its workers on leaving.
    """
    (port,) = processes.free_ports(1)
    url = f"http://{processes.HOST}:{port}"
    with tempfile.TemporaryDirectory(prefix="mlflow-ui-") as folder:
        service = processes.Service("mlflow-ui", Path(folder))
        command = servers.mlflow_server_command(port, backend_uri, str(artifacts))
        service.start(command, env=servers.mlflow_server_env())
        try:
            processes.wait_until(lambda: servers.is_healthy(url), service, f"mlflow ui on {url}")
            yield url
        finally:
            service.stop()


@contextmanager
def browser_page(viewport: dict[str, int] | None = None) -> Iterator:
    """A Playwright page in headless Chromium (`CHROMIUM`), closed with its browser on leaving."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise FileNotFoundError(f"{CHROMIUM} is missing: install Debian's chromium package")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=viewport or VIEWPORT)
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.add_init_script(UI_PREFERENCES)
            yield page
        finally:
            browser.close()


# --- the pages: each opens one view and waits until its content is rendered ----------------------


def _open(page, url: str, route: str) -> None:
    # A full load (not a change of the #fragment): the sidebar then names this page's experiment.
    page.goto("about:blank")
    page.goto(f"{url}/#/{route}")


def _grow(page) -> None:
    """Make the viewport tall enough for a whole page; `screenshot(bottom=...)` cuts it to size."""
    page.set_viewport_size({**page.viewport_size, "height": 1600})


def _choose_columns(page, names: Iterable[str]) -> None:
    """Toggle runs-table columns by name through the Columns menu, as a user would."""
    # Exactly "Columns": the table may also show a "Show more columns (N total)" button.
    page.get_by_role("button", name="Columns", exact=True).click()
    search = page.get_by_placeholder("Search columns")
    for name in names:
        search.fill(name)
        page.locator("[class*=tree-treenode] [class*=tree-checkbox]").first.click()
    page.keyboard.press("Escape")
    page.evaluate("document.activeElement.blur()")  # no focus ring left on the Columns button


def show_runs(page, url: str, experiment_id: str, run_names: Iterable[str], metric: str = "val_rmse"):
    """The experiment's runs, best `metric` first, with that metric as a column; returns the table."""
    _open(page, url, f"experiments/{experiment_id}/runs?orderByKey=metrics.%60{metric}%60&orderByAsc=true")
    page.get_by_text("matching runs").wait_for()
    _choose_columns(page, ["Dataset", "Source", metric])  # narrower, so the metric fits on screen
    page.get_by_role("columnheader", name=metric).first.wait_for()
    for name in run_names:
        page.get_by_role("link", name=name, exact=True).wait_for()
    return page.get_by_role("row").last


def show_comparison(
    page, url: str, experiment_id: str, run_ids: list[str], run_names: Iterable[str], metric: str = "val_rmse"
):
    """The compare-runs page: parameters that differ and the metrics, side by side; returns `metric`'s name.

    The page is taller than a screen: the viewport grows to hold it all, so a screenshot shows it.
    """
    runs = ",".join(f'"{run_id}"' for run_id in run_ids)
    _open(page, url, f'compare-runs?runs=[{runs}]&experiments=["{experiment_id}"]')
    page.get_by_text("Run details").wait_for()
    page.get_by_text("Visualizations").click()  # the default plot picks arbitrary axes: fold it
    page.get_by_text("Show diff only").first.click()
    for name in run_names:
        page.get_by_text(name, exact=True).first.wait_for()
    _grow(page)
    return page.get_by_text(metric, exact=True).last


def show_parallel_coordinates(page, url: str, experiment_id: str, run_ids: list[str]):
    """A sweep's trials compared, the page's parallel-coordinates plot in view; returns the plot.

    MLflow draws one line per run across the parameters that differ and the metric, which is how a
    sweep shows where the good trials sit.
    """
    runs = ",".join(f'"{run_id}"' for run_id in run_ids)
    _open(page, url, f'compare-runs?runs=[{runs}]&experiments=["{experiment_id}"]')
    page.get_by_text("Run details").wait_for()
    plot = page.locator(".js-plotly-plot").first
    plot.wait_for()
    _grow(page)
    return plot


def show_registered_model(page, url: str, name: str, aliases: Iterable[str]):
    """A registered model's page with its versions and their aliases in view; returns the versions table."""
    _open(page, url, f"models/{name}")
    page.get_by_role("heading", name=name).wait_for()
    for section in ("Description", "Tags"):  # folded, so the versions table is in view
        page.get_by_role("button", name=section).first.click()
    for alias in aliases:
        page.get_by_text(f"@ {alias}", exact=True).or_(page.get_by_text(alias, exact=True)).first.wait_for()
    _grow(page)
    return page.get_by_role("table").last


def screenshot(page, path: Path, bottom=None, margin: int = 24) -> Path:
    """Save the viewport as PNG, cut below the `bottom` element (a locator) when given."""
    clip = None
    if bottom is not None:
        box = bottom.bounding_box()
        height = min(page.viewport_size["height"], int(box["y"] + box["height"]) + margin)
        clip = {"x": 0, "y": 0, "width": page.viewport_size["width"], "height": height}
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, clip=clip)
    return path
