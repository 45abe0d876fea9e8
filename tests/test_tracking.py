"""One tracking store from any working directory; tags, best-run search and model logging."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from week2 import config, tracking, utils


def test_setup_mlflow_gives_one_store_whatever_the_working_directory(store, monkeypatch):
    ids = []
    for folder in (store / "a", store / "b" / "c"):
        folder.mkdir(parents=True)
        monkeypatch.chdir(folder)
        ids.append(tracking.setup_mlflow("same-experiment"))
    assert ids[0] == ids[1]
    experiment = mlflow.get_experiment(ids[0])
    assert experiment.artifact_location == (store / "mlartifacts" / "same-experiment").as_uri()
    assert not list((store / "a").iterdir()) and not list((store / "b" / "c").iterdir())


def test_git_tags_name_the_checkout_commit_and_branch():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=config.REPO_ROOT, capture_output=True, text=True)
    expected = head.stdout.strip() if head.returncode == 0 else tracking.UNKNOWN_GIT  # no commit yet
    tags = tracking.git_tags()
    assert tags["git_commit"] == expected
    assert tags["git_branch"]


def test_git_tags_fall_back_clearly_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "REPO_ROOT", tmp_path)
    assert tracking.git_tags() == {"git_commit": tracking.UNKNOWN_GIT, "git_branch": tracking.UNKNOWN_GIT}


def test_run_tags_carry_developer_and_extras(monkeypatch):
    monkeypatch.setenv("WEEK2_DEVELOPER", "ada")
    tags = tracking.run_tags(model="ridge", train_month="2021-01")
    assert tags["developer"] == "ada" and tags["model"] == "ridge" and "git_commit" in tags


def test_best_run_is_found_by_metric_across_experiments(store):
    for experiment, scores in {"exp-a": [7.5, 6.9], "exp-b": [7.1]}.items():
        tracking.setup_mlflow(experiment)
        for score in scores:
            with mlflow.start_run(tags={"score": str(score)}):
                mlflow.log_metric("val_rmse", score)
        with mlflow.start_run():  # a run without the metric is never the best
            mlflow.log_param("note", "no metric")

    best = tracking.best_run(["exp-a", "exp-b"])
    assert best.data.metrics["val_rmse"] == 6.9
    assert best.data.tags["score"] == "6.9"
    with pytest.raises(LookupError, match="run the notebook"):
        tracking.best_run("exp-a", metric="test_rmse")


def test_logged_pipeline_predicts_from_raw_trips_and_is_self_contained(store):
    X = pd.DataFrame(
        {"PULocationID": [1, 2, 1, 5], "DOLocationID": [3, 3, 4, 5], "trip_distance": [1.0, 2, 3, 4]}
    )
    y = [5.0, 10.0, 15.0, 20.0]
    pipeline = utils.make_pipeline(LinearRegression()).fit(X, y)
    tracking.setup_mlflow("models")
    with mlflow.start_run():
        info = tracking.log_pipeline(pipeline, X)

    assert [c.name for c in info.signature.inputs] == utils.RAW_COLUMNS
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    assert loaded.predict(X) == pytest.approx(pipeline.predict(X))

    model_dir = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(store / "dl")))
    requirements = (model_dir / "requirements.txt").read_text()
    assert "mlflow==" in requirements and "scikit-learn==" in requirements
    assert "week2" not in requirements  # shipped as code, not a package no index has
    assert (model_dir / "code" / "week2" / "utils.py").is_file()


def test_requirements_are_inferred_once_per_set_of_libraries(store, monkeypatch, capfd):
    """MLflow's inference (a new Python process per model) runs for the first pipeline of a kind only."""
    from sklearn.linear_model import Ridge
    from xgboost import XGBRegressor

    X = pd.DataFrame({"PULocationID": [1, 2, 1], "DOLocationID": [3, 3, 4], "trip_distance": [1.0, 2, 3]})
    y = [5.0, 10.0, 15.0]
    inferred = []

    def infer(model_uri, flavor, *args, **kwargs):  # stands in for the slow subprocess
        inferred.append(flavor)
        return [f"inferred-{len(inferred)}==1.0"]

    monkeypatch.setattr(mlflow.models, "infer_pip_requirements", infer)
    monkeypatch.setattr(tracking, "_requirements_by_libraries", {})
    tracking.setup_mlflow("requirements")
    logged = []
    for estimator in (LinearRegression(), Ridge(), XGBRegressor(n_estimators=2)):
        with mlflow.start_run():
            logged.append(tracking.log_pipeline(utils.make_pipeline(estimator).fit(X, y), X))

    assert len(inferred) == 2  # scikit-learn alone once, scikit-learn with xgboost once
    capfd.readouterr()
    linear, ridge, boosted = map(tracking.model_requirements, logged)
    assert "Downloading artifacts" not in capfd.readouterr().err  # quiet in a notebook
    assert "inferred-1==1.0" in linear and ridge == linear
    assert "inferred-2==1.0" in boosted
