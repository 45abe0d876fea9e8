"""The registry-webhook receiver: signatures checked, a champion that cannot predict rolled back."""

from __future__ import annotations

import json
import time

import mlflow
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient
from mlflow.webhooks.delivery import _generate_hmac_signature
from sklearn.linear_model import LinearRegression

from week2 import tracking, utils
from week2.machinery import servers, webhooks

SECRET = "a-secret-only-the-server-and-receiver-know"
MODEL = "webhook-guarded"


def signed_headers(body: str, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        webhooks.DELIVERY_ID_HEADER: "delivery-1",
        webhooks.TIMESTAMP_HEADER: timestamp,
        webhooks.SIGNATURE_HEADER: _generate_hmac_signature(secret, "delivery-1", timestamp, body),
    }


def test_the_signature_is_the_one_mlflow_sends_and_forgeries_are_refused():
    body = json.dumps({"entity": "model_version_alias", "action": "created", "data": {}})
    assert webhooks.is_authentic(SECRET, signed_headers(body), body)
    assert not webhooks.is_authentic(SECRET, signed_headers(body, secret="guessed"), body)
    assert not webhooks.is_authentic(SECRET, signed_headers(body), body.replace("created", "deleted"))
    assert not webhooks.is_authentic(SECRET, signed_headers(body, timestamp=int(time.time()) - 3600), body)
    assert not webhooks.is_authentic(SECRET, {}, body)


@pytest.fixture(scope="module")
def guarded(server_settings, sample_xy, tmp_path_factory):
    """The team server, its receiver guarding @champion, a webhook to it, and a good version 1."""
    (X_train, y_train), (X_val, _), _ = sample_xy
    smoke = tmp_path_factory.mktemp("smoke") / "smoke.parquet"
    X_val.head(50).to_parquet(smoke)
    url = servers.start_team_server()
    receiver = servers.start_webhook_receiver(smoke)
    mlflow.set_tracking_uri(url)
    client = MlflowClient()
    client.create_webhook(
        name="smoke-test-champion",
        url=f"{receiver}/",
        events=["model_version_alias.created"],
        secret=servers.webhook_secret(),
    )
    mlflow.set_experiment("webhooks")
    with mlflow.start_run():
        good = tracking.log_pipeline(
            utils.make_pipeline(LinearRegression()).fit(X_train, y_train),
            X_train,
            registered_model_name=MODEL,
        )
    yield client, receiver, good
    servers.stop_team_server()
    mlflow.set_tracking_uri(None)


def wait_for(condition, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError("the webhook's effect did not show in time")


def smoke_tag(client, version: str) -> str | None:
    return client.get_model_version(MODEL, version).tags.get(webhooks.SMOKE_TAG)


def deliveries(receiver: str) -> list[dict]:
    return requests.get(f"{receiver}/deliveries", timeout=10).json()


@pytest.mark.servers
def test_moving_champion_to_a_version_that_cannot_predict_rolls_it_back(guarded):
    client, receiver, good = guarded
    client.set_registered_model_alias(MODEL, "champion", good.registered_model_version)
    assert wait_for(lambda: smoke_tag(client, good.registered_model_version)) == webhooks.PASSED

    # Version 2 was trained on other columns than a trip has: it cannot score the smoke sample.
    with mlflow.start_run():
        frame = pd.DataFrame({"passenger_count": [1.0, 2.0, 3.0]})
        broken = mlflow.sklearn.log_model(
            LinearRegression().fit(frame, [10.0, 12.0, 14.0]),
            name="model",
            input_example=frame,
            registered_model_name=MODEL,
        )
    client.set_registered_model_alias(MODEL, "champion", broken.registered_model_version)

    assert wait_for(lambda: smoke_tag(client, broken.registered_model_version)) == webhooks.FAILED
    reason = client.get_model_version(MODEL, broken.registered_model_version).tags["smoke_test.reason"]
    assert reason.startswith("cannot predict") and "passenger_count" in reason
    wait_for(lambda: client.get_registered_model(MODEL).aliases["champion"] == good.registered_model_version)
    failed = [d for d in deliveries(receiver) if d["result"] == webhooks.FAILED]
    assert [d["rolled_back_to"] for d in failed] == [good.registered_model_version]


@pytest.mark.servers
def test_a_forged_delivery_is_refused_and_changes_nothing(guarded):
    client, receiver, good = guarded
    before = deliveries(receiver)
    data = {"name": MODEL, "alias": "champion", "version": "1"}
    body = json.dumps({"entity": "model_version_alias", "action": "created", "data": data})
    forged = signed_headers(body, secret="guessed")
    answer = requests.post(f"{receiver}/", data=body, headers=forged, timeout=10)
    assert answer.status_code == 401
    assert deliveries(receiver) == before


@pytest.mark.servers
def test_the_receiver_stops_with_the_team_server(guarded):
    _, receiver, _ = guarded
    assert servers.is_healthy(receiver)
    port = int(receiver.rsplit(":", 1)[1])
    servers.stop_team_server()
    assert not servers.is_healthy(receiver)
    assert servers.port_is_free(port)
