from hyperopt import hp

space = {**sweep.SEARCH_SPACE, "subsample": hp.uniform("subsample", 0.5, 1.0)}


def subsample_objective(params: dict) -> dict:
    with mlflow.start_run(nested=True):
        metrics = sweep.train_trial(params, setup)
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
    return {"loss": metrics["val_rmse"], "status": STATUS_OK}


with mlflow.start_run(
    run_name="sweep-with-subsample", tags={"exercise": "03.1", **data_tags}
) as exercise_parent:
    fmin(
        subsample_objective,
        space,
        algo=tpe.suggest,
        max_evals=4,
        trials=Trials(),
        rstate=np.random.default_rng(SEED),
        show_progressbar=False,
    )

(best_child,) = mlflow.search_runs(
    experiment_ids=[exercise_parent.info.experiment_id],
    filter_string=f"tags.mlflow.parentRunId = '{exercise_parent.info.run_id}'",
    order_by=["metrics.val_rmse ASC"],
    max_results=1,
    output_format="list",
)
client.set_tag(exercise_parent.info.run_id, "best_child", best_child.info.run_id)
print(f"best child: {best_child.info.run_name} · val RMSE {best_child.data.metrics['val_rmse']:.4f}")
print("subsample:", best_child.data.params["subsample"])
