"""Take the screenshots (CONCEPTS.md shows them) of the MLflow UI in headless Chromium.

Run with `make images` (or `python images/take_screenshots.py [--store FOLDER] [folder]`). Without
`--store`, a temporary tracking store is filled by running the course's notebooks 01-04 on the
synthetic sample (the notebooks that log the runs and register the model; the scenario notebooks add
nothing to these pages). Then `mlflow ui` is started on the store and three pages are captured:

- ui-runs.png: the runs of the course experiment with the most model families (notebook 02's),
  best validation RMSE first;
- ui-compare-runs.png: notebook 01's runs compared side by side (differing parameters, metrics);
- ui-registered-model.png: the registered model's versions and their aliases;
- ui-sweep-parallel-coordinates.png: notebook 03's trials in the parallel-coordinates plot.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from draw_diagrams import IMAGES, shrink_png

from week2 import config
from week2.machinery import ui

NOTEBOOKS = ("01", "02", "03", "04")  # those present are run: 02 and 03 are optional here
SAMPLE_ROWS = 5000
SWEEP_TRIALS = 8  # notebook 03's trials: its runs are not in the pictures, so keep it quick
ALIASES = ("champion",)
SWEEP_EXPERIMENT, SWEEP_RUN = "03-hyperparameter-sweep", "xgboost-sweep"


def fill_store(folder: Path) -> None:
    """Point this process at a new store in `folder` and run the course's notebooks into it."""
    os.environ.update(ui.sample_store_settings(folder, SAMPLE_ROWS), WEEK2_SWEEP_TRIALS=str(SWEEP_TRIALS))
    ran = ui.run_notebooks(NOTEBOOKS, folder / "executed")
    print("store filled by", ", ".join(p.stem for p in ran), flush=True)


def course_runs(client):
    """(experiment, its runs) for every course experiment that logged a validation RMSE."""
    found = []
    for experiment in client.search_experiments(order_by=["name"]):
        runs = client.search_runs([experiment.experiment_id], "metrics.val_rmse > 0", order_by=["start_time"])
        if runs and experiment.name[:2].isdigit():
            found.append((experiment, runs))
    return found


def take(out: Path) -> list[Path]:
    """Capture the three pages of the store the environment names into `out`; return the files."""
    from mlflow import MlflowClient

    client = MlflowClient(config.tracking_uri())
    experiments = course_runs(client)
    first, first_runs = experiments[0]
    # The experiment comparing the most kinds of model, not the sweep's many trials of one kind.
    varied, varied_runs = max(experiments, key=lambda pair: len({r.data.tags.get("model") for r in pair[1]}))
    shots = []
    with ui.mlflow_ui(config.tracking_uri(), config.artifacts_dir()) as url, ui.browser_page() as page:
        names = [r.info.run_name for r in varied_runs]
        table = ui.show_runs(page, url, varied.experiment_id, names)
        shots.append(ui.screenshot(page, out / "ui-runs.png", bottom=table))

        ids, names = [r.info.run_id for r in first_runs], [r.info.run_name for r in first_runs]
        metrics = ui.show_comparison(page, url, first.experiment_id, ids, names)
        shots.append(ui.screenshot(page, out / "ui-compare-runs.png", bottom=metrics))

        versions = ui.show_registered_model(page, url, config.model_name(), ALIASES)
        shots.append(ui.screenshot(page, out / "ui-registered-model.png", bottom=versions))

        sweep = client.get_experiment_by_name(SWEEP_EXPERIMENT)
        if sweep is not None:
            (parent,) = client.search_runs(
                [sweep.experiment_id], f"attributes.run_name = '{SWEEP_RUN}'", max_results=1
            )
            trials = client.search_runs(
                [sweep.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
            )
            plot = ui.show_parallel_coordinates(
                page, url, sweep.experiment_id, [r.info.run_id for r in trials]
            )
            shots.append(ui.screenshot(page, out / "ui-sweep-parallel-coordinates.png", bottom=plot))
    for shot in shots:
        shrink_png(shot)
        print(shot)
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=IMAGES, help="where to write the PNGs")
    parser.add_argument("--store", type=Path, help="a folder with mlflow.db and mlartifacts/ to use as is")
    options = parser.parse_args(argv)
    if options.store:
        os.environ.update(ui.sample_store_settings(options.store.resolve(), SAMPLE_ROWS))
        take(options.out)
        return 0
    with tempfile.TemporaryDirectory(prefix="week2-screenshots-") as folder:
        fill_store(Path(folder))
        take(options.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
