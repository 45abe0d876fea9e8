from sklearn.tree import DecisionTreeRegressor

mlflow.sklearn.autolog(log_input_examples=True, log_datasets=False, silent=True)
with mlflow.start_run(
    run_name="decision-tree", tags={"exercise": "02.1", "model": "decision_tree", **data_tags}
):
    utils.make_pipeline(DecisionTreeRegressor(max_depth=10, random_state=SEED)).fit(X_train, y_train)
mlflow.sklearn.autolog(disable=True)

found = mlflow.search_runs(experiment_names=[EXPERIMENT], filter_string="tags.exercise = '02.1'")
print(found[["run_id", "tags.model", "metrics.training_root_mean_squared_error"]])

tree_run = mlflow.get_run(found.run_id[0])
tree_model = mlflow.get_logged_model(tree_run.outputs.model_outputs[0].model_id)
mlflow.models.update_model_requirements(tree_model.artifact_location, "remove", ["psutil"])
