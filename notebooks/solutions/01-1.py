with mlflow.start_run(
    run_name="ridge-alpha-10", tags={"exercise": "01.1", "model": "ridge_alpha_10", **data_tags}
):
    mlflow.log_params({"estimator": "Ridge", "alpha": 10.0})
    mlflow.log_input(train_dataset, context="training")
    mlflow.log_input(val_dataset, context="validation")
    pipeline = utils.make_pipeline(Ridge(alpha=10.0)).fit(X_train, y_train)
    mlflow.log_metric("val_rmse", utils.rmse(y_val, pipeline.predict(X_val)))
    mlflow.sklearn.log_model(pipeline, name="model", input_example=X_train.head(5))
