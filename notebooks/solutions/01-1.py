with mlflow.start_run(
    run_name="ridge-alpha-10", tags={"exercise": "01.1", "model": "ridge_alpha_10", **data_tags}
):
    mlflow.log_params({"estimator": "Ridge", "alpha": 10.0})
    train_dataset = mlflow.data.from_pandas(
        df_train[SEEN_COLUMNS], source=str(train_path), targets="duration", name="train"
    )
    val_dataset = mlflow.data.from_pandas(
        df_val[SEEN_COLUMNS], source=str(val_path), targets="duration", name="validation"
    )
    mlflow.log_input(train_dataset, context="training")
    mlflow.log_input(val_dataset, context="validation")
    pipeline = utils.make_pipeline(Ridge(alpha=10.0)).fit(X_train, y_train)
    mlflow.log_metric("val_rmse", utils.rmse(y_val, pipeline.predict(X_val)))
    mlflow.sklearn.log_model(
        pipeline,
        name="model",
        signature=SIGNATURE,
        input_example=X_train.head(5),
        skops_trusted_types=TRUSTED,
        code_paths=WEEK2_CODE,
        pip_requirements=REQUIREMENTS,
    )
