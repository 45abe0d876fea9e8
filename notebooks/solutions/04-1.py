# The best candidate not registered above that passes the gate (the weakest one may well not).
spare = next(run for run in candidates[REGISTER_TOP:] if run.data.metrics["val_rmse"] <= THRESHOLD)
version = mlflow.register_model(
    f"models:/{spare.outputs.model_outputs[0].model_id}", MODEL_NAME, tags={"exercise": "04.1"}
)
client.update_model_version(
    MODEL_NAME,
    version.version,
    description=f"Exercise 04.1: {spare.info.run_name}, val_rmse {spare.data.metrics['val_rmse']:.3f}",
)
client.set_registered_model_alias(MODEL_NAME, "exercise-04", version.version)
print(f"v{version.version} is @exercise-04:", client.get_registered_model(MODEL_NAME).aliases)
