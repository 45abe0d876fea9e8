"""The MLflow UI in a real browser: what the course logs is there to explore with `make ui`.

A store is filled by notebooks 01 (runs) and 04 (registered model, aliases) on a small sample, `mlflow
ui` runs on it, and headless Chromium opens the pages CONCEPTS.md's screenshots show. Each page is
kept as a PNG in test-artifacts/ of the build folder (WEEK2_BUILD_DIR), also when its test fails.
"""

from __future__ import annotations

import re

import pytest
from mlflow import MlflowClient

from week2 import config
from week2.machinery import ui

pytestmark = [
    pytest.mark.browser,
    pytest.mark.servers,
    pytest.mark.skipif(
        not ui.CHROMIUM.is_file(), reason=f"{ui.CHROMIUM} is missing: install Debian's chromium package"
    ),
]

SAMPLE_ROWS = 3000  # enough for notebook 04's gate, small enough to keep the module under a minute


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The tracking URI of a store filled by notebooks 01 and 04 on the sample."""
    folder = tmp_path_factory.mktemp("ui-store")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ui.sample_store_settings(folder, SAMPLE_ROWS).items():
            patch.setenv(name, value)
        ran = ui.run_notebooks(["01"], folder / "executed")
        ran += ui.run_notebooks(["04"], folder / "executed")
        assert [path.name[:2] for path in ran] == ["01", "04"]
        yield config.tracking_uri()


@pytest.fixture(scope="module")
def browser(store):
    """(URL of `mlflow ui` on the store, a page of headless Chromium); both stopped afterwards."""
    with ui.mlflow_ui(store, config.artifacts_dir()) as url, ui.browser_page() as page:
        yield url, page


@pytest.fixture
def client(store):
    return MlflowClient(store)


def keep(page, name: str) -> None:
    print(f"screenshot: {ui.screenshot(page, config.build_dir() / 'test-artifacts' / name)}")


def test_the_runs_of_notebook_01_are_listed(browser, client):
    url, page = browser
    (experiment,) = [e for e in client.search_experiments() if e.name.startswith("01-")]
    names = [run.info.run_name for run in client.search_runs([experiment.experiment_id])]
    assert len(names) >= 3
    try:
        ui.show_runs(page, url, experiment.experiment_id, names)
        body = page.inner_text("body")
        assert experiment.name in body
        assert f"{len(names)} matching runs" in body
    finally:
        keep(page, "ui-runs.png")


def test_the_registered_model_shows_its_champion(browser, client):
    url, page = browser
    name = config.model_name()
    champion = client.get_model_version_by_alias(name, "champion")
    try:
        ui.show_registered_model(page, url, name, ["champion"])
        row = page.get_by_role("row").filter(has_text=f"Version {champion.version}").first
        assert name in page.inner_text("body")
        assert re.search(r"@\s*champion\b(?!-)", row.inner_text()), row.inner_text()
    finally:
        keep(page, "ui-registered-model.png")
