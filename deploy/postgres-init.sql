-- Run once by the postgres image on an empty volume: the auth app keeps its users and
-- permissions in a database of its own, beside the tracking store's `mlflow`.
CREATE DATABASE mlflow_auth OWNER mlflow;
