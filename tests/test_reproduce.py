"""`python -m week2 reproduce RUN_ID`: a notebook-01 run comes out the same; changed data shows by digest."""

from __future__ import annotations

import shutil
import warnings

import mlflow
import pandas as pd
import pytest
from conftest import run_week2
from sklearn.linear_model import Lasso

from week2 import __main__ as week2_cli
from week2 import config, data, reproduce, tracking, utils


def log_notebook_01_run(experiment: str, train_path, val_path, columns=utils.SEEN_COLUMNS) -> str:
    """One baseline run logged as notebook 01 logs it: tags, parameters, both months (`columns` of
    each), val_rmse, the model."""
    estimator = Lasso(alpha=0.01)
    df_train, df_val = utils.read_dataframe(train_path), utils.read_dataframe(val_path)
    (X_train, y_train), (X_val, y_val) = utils.split_xy(df_train), utils.split_xy(df_val)
    tracking.setup_mlflow(experiment)
    with mlflow.start_run(run_name="lasso", tags=tracking.run_tags(model="lasso")) as run:
        mlflow.log_params({"estimator": type(estimator).__name__, **estimator.get_params()})
        for df, path, context, name in ((df_train, train_path, "training", "green-train"),
                                        (df_val, val_path, "validation", "green-val")):  # fmt: skip
            with warnings.catch_warnings():  # the two notices notebook 01 silences too
                warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
                warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
                seen = mlflow.data.from_pandas(df[columns], source=str(path), targets=utils.TARGET, name=name)
                mlflow.log_input(seen, context=context)
        pipeline = utils.make_pipeline(estimator).fit(X_train, y_train)
        mlflow.log_metric("val_rmse", utils.rmse(y_val, pipeline.predict(X_val)))
        tracking.log_pipeline(pipeline, X_train)
    return run.info.run_id


@pytest.fixture(scope="module")
def months(private_store):
    """Copies of the sample's training and validation months (a test changes one)."""
    months = config.months()
    _, paths = data.resolve_months([months.train, months.val])
    copies = [private_store / f"copy-{path.name}" for path in paths]
    for path, copy in zip(paths, copies, strict=True):
        shutil.copy(path, copy)
    return copies


@pytest.fixture(scope="module")
def run_id(months):
    return log_notebook_01_run("reproduce-tests", *months)


def test_a_notebook_01_run_is_reproduced_within_a_millionth(run_id):
    result = reproduce.reproduce(run_id)
    assert result.reproduced_rmse == pytest.approx(result.recorded_rmse, abs=1e-6)
    assert result.reproduced
    comparisons = {c.what.split(" (")[0]: c for c in result.comparisons}
    assert comparisons["git commit"].same
    assert comparisons["data training green-train"].same
    assert comparisons["data validation green-val"].same
    assert comparisons["library scikit-learn"].recorded == __import__("sklearn").__version__
    assert all(c.same for c in result.comparisons), result.report()


def test_a_run_that_logged_the_whole_prepared_month_finds_the_same_data(months):
    run_id = log_notebook_01_run("reproduce-tests", *months, columns=slice(None))
    comparisons = [c for c in reproduce.reproduce(run_id).comparisons if c.what.startswith("data ")]
    assert len(comparisons) == 2 and all(c.same for c in comparisons), comparisons


def test_the_command_ends_with_the_val_rmse_line(run_id):
    done = run_week2("reproduce", run_id)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    recorded = mlflow.get_run(run_id).data.metrics["val_rmse"]
    assert last.startswith(f"val_rmse: recorded {recorded:.6f}, reproduced {recorded:.6f}, difference ")
    assert float(last.rsplit(" ", 1)[1]) <= 1e-6
    assert "(DIFFERS)" not in done.stdout


def week2_main(capsys, *args: str) -> tuple[int, str, str]:
    """`python -m week2 ARGS` in this process (a new one costs seconds here): status, stdout, stderr."""
    status = week2_cli.main(list(args))
    printed = capsys.readouterr()
    return status, printed.out, printed.err


def test_a_changed_data_file_is_reported_by_its_digest(months, run_id, capsys):
    _, val_path = months
    recorded = next(
        i.dataset.digest for i in mlflow.get_run(run_id).inputs.dataset_inputs if "val" in i.dataset.name
    )
    trips = pd.read_parquet(val_path)
    trips["trip_distance"] = trips["trip_distance"] * 1.5  # someone "fixed" the distances in place
    trips.to_parquet(val_path)

    status, out, err = week2_main(capsys, "reproduce", run_id)
    assert status == 1, err  # it ran, but the run did not come out the same
    changed = [line for line in out.splitlines() if line.startswith("data validation")]
    assert len(changed) == 1 and changed[0].endswith("(DIFFERS)"), out
    present = reproduce.digest(utils.read_dataframe(val_path)[utils.SEEN_COLUMNS])
    assert f"recorded {recorded}, present {present}" in changed[0]
    assert recorded != present
    assert any(line.startswith("data training") and line.endswith("(same)") for line in out.splitlines())
    assert not out.splitlines()[-1].endswith("difference 0.0e+00")


def test_an_unknown_run_id_is_one_line_and_status_2(private_store, capsys):
    status, _, err = week2_main(capsys, "reproduce", "0123456789abcdef0123456789abcdef")
    assert status == 2
    assert err.strip().count("\n") == 0 and err.startswith("error: no run '0123456789abcdef"), err


def test_a_run_without_datasets_is_one_line_and_status_2(private_store, capsys):
    tracking.setup_mlflow("reproduce-tests")
    with mlflow.start_run() as run:
        mlflow.log_params({"estimator": "Lasso", "alpha": 0.01})
        mlflow.log_metric("val_rmse", 7.0)
    status, _, err = week2_main(capsys, "reproduce", run.info.run_id)
    assert status == 2
    assert err.strip().count("\n") == 0, err
    assert "logged no training and no validation dataset" in err


def test_a_run_without_the_estimator_parameter_is_refused(months):
    train_path, val_path = months
    tracking.setup_mlflow("reproduce-tests")
    with mlflow.start_run() as run:  # autolog-style: parameters, but not the estimator's class
        mlflow.log_params({"alpha": 0.01})
        tracking.log_dataset(utils.read_dataframe(train_path), train_path, context="training", name="t")
        tracking.log_dataset(utils.read_dataframe(val_path), val_path, context="validation", name="v")
        mlflow.log_metric("val_rmse", 7.0)
    with pytest.raises(reproduce.ReproduceError, match="parameter 'estimator' is None"):
        reproduce.reproduce(run.info.run_id)


def test_usage_without_a_run_id(capsys):
    status, _, err = week2_main(capsys, "reproduce")
    assert status == 2 and err.startswith("error: usage: python -m week2 reproduce RUN_ID"), err
