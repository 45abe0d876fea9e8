"""A registry-webhook receiver: when `@champion` moves, smoke-test the new champion, roll back if it fails.

MLflow's tracking server (3.3 and later) POSTs a JSON delivery to a webhook's URL on registry events,
signed with the webhook's secret: `X-MLflow-Signature: v1,<base64 HMAC-SHA256>` over
`<delivery id>.<timestamp>.<body>`, with the id and the timestamp in headers of their own. This
receiver, bound to 127.0.0.1:
- refuses (401) a delivery whose signature does not check out, or whose timestamp is more than
  `MAX_AGE_SECONDS` away (a replayed delivery);
- acts on `model_version_alias.created` for the alias it guards (`champion`): it loads that version,
  predicts the smoke sample (a parquet file of raw trips), and checks the predictions are finite
  minutes within `PLAUSIBLE_MINUTES`;
- records the outcome on the version as tags (`smoke_test` = passed or failed, `smoke_test.reason`);
- when the test fails, moves the alias back to the newest version whose smoke test passed (or
  removes it when there is none), which fires one more delivery that tests that version again.
`GET /deliveries` lists what it did, newest last, for the notebook and the tests.

The secret comes from the environment (`WEEK2_WEBHOOK_SECRET`), never the command line.
`python -m week2.machinery.webhooks --port P --tracking-uri URI --smoke-sample FILE` runs it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import math
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from week2 import config

SECRET_VARIABLE = "WEEK2_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
MAX_AGE_SECONDS = 300
PLAUSIBLE_MINUTES = (0.0, 180.0)
SMOKE_TAG = "smoke_test"
PASSED, FAILED = "passed", "failed"
ALIAS_CREATED = ("model_version_alias", "created")


def signature(secret: str, delivery_id: str, timestamp: str, body: str) -> str:
    """The signature MLflow sends for `body`: `v1,` and the base64 HMAC-SHA256 of id.timestamp.body."""
    digest = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def is_authentic(secret: str, headers, body: str, now: float | None = None) -> bool:
    """True when the delivery is signed with `secret` and was sent within MAX_AGE_SECONDS."""
    delivery_id, timestamp = headers.get(DELIVERY_ID_HEADER, ""), headers.get(TIMESTAMP_HEADER, "")
    try:
        age = abs((now or time.time()) - int(timestamp))
    except ValueError:
        return False
    expected = signature(secret, delivery_id, timestamp, body)
    return age <= MAX_AGE_SECONDS and hmac.compare_digest(expected, headers.get(SIGNATURE_HEADER, ""))


@dataclass
class Outcome:
    model: str
    version: str
    alias: str
    result: str  # passed, failed, or ignored
    reason: str = ""
    rolled_back_to: str | None = None


class Guard:
    """What the receiver does with an authentic delivery: smoke-test the guarded alias's new version."""

    def __init__(self, tracking_uri: str, smoke_sample: Path, alias: str = "champion") -> None:
        import mlflow
        import pandas as pd
        from mlflow import MlflowClient

        # Loading a version fetches its files through the server (mlflow-artifacts:/): this process
        # talks to that one server only.
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.trips = pd.read_parquet(smoke_sample)
        self.alias = alias
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()

    def smoke_test(self, name: str, version: str) -> str:
        """'' when the version predicts plausible minutes for every smoke trip, else why not."""
        import mlflow
        import numpy as np

        try:
            model = mlflow.pyfunc.load_model(self.client.get_model_version(name, version).source)
            minutes = np.asarray(model.predict(self.trips), dtype=float).ravel()
        except Exception as error:  # any failure to load or predict is what the test looks for
            return f"cannot predict: {_gist(error)}"
        low, high = PLAUSIBLE_MINUTES
        if len(minutes) != len(self.trips):
            return f"{len(minutes)} predictions for {len(self.trips)} trips"
        bad = [m for m in minutes if not (math.isfinite(m) and low <= m <= high)]
        return f"{len(bad)} of {len(minutes)} predictions outside {low:g}-{high:g} minutes" if bad else ""

    def last_good_version(self, name: str, other_than: str) -> str | None:
        versions = self.client.search_model_versions(f"name = '{name}' and tag.{SMOKE_TAG} = '{PASSED}'")
        good = sorted((int(v.version) for v in versions if v.version != other_than), reverse=True)
        return str(good[0]) if good else None

    def handle(self, delivery: dict) -> Outcome:
        data = delivery.get("data", {})
        name, version, alias = data.get("name", ""), str(data.get("version", "")), data.get("alias", "")
        if (delivery.get("entity"), delivery.get("action")) != ALIAS_CREATED or alias != self.alias:
            return self._record(Outcome(name, version, alias, "ignored"))
        with self._lock:  # one alias move at a time: a rollback's own delivery waits for this one
            reason = self.smoke_test(name, version)
            # The reason first: whoever waits for the outcome tag finds the reason beside it.
            self.client.set_model_version_tag(name, version, f"{SMOKE_TAG}.reason", reason or "ok")
            self.client.set_model_version_tag(name, version, SMOKE_TAG, FAILED if reason else PASSED)
            outcome = Outcome(name, version, alias, FAILED if reason else PASSED, reason)
            if reason and self._still_points_at(name, version):
                outcome.rolled_back_to = self.last_good_version(name, other_than=version)
                if outcome.rolled_back_to:
                    self.client.set_registered_model_alias(name, alias, outcome.rolled_back_to)
                else:
                    self.client.delete_registered_model_alias(name, alias)
            return self._record(outcome)

    def _still_points_at(self, name: str, version: str) -> bool:
        # Someone may have moved the alias again since this delivery was sent: never undo their move.
        return self.client.get_registered_model(name).aliases.get(self.alias) == version

    def _record(self, outcome: Outcome) -> Outcome:
        self.outcomes.append(outcome)
        print(f"webhook: {json.dumps(asdict(outcome))}", flush=True)
        return outcome


def _gist(error: Exception, limit: int = 200) -> str:
    """The part of an error worth a version tag: MLflow's schema errors end with the actual reason."""
    message = str(error).rsplit("Error: ", 1)[-1].strip() or type(error).__name__
    return message.splitlines()[0][:limit]


def make_server(port: int, secret: str, guard: Guard, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode("utf-8", "replace")
            if not is_authentic(secret, self.headers, body):
                return self._answer(401, {"error": "signature or timestamp does not check out"})
            try:
                delivery = json.loads(body)
            except ValueError:
                return self._answer(400, {"error": "not JSON"})
            self._answer(200, asdict(guard.handle(delivery)))

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/health":
                return self._answer(200, {"status": "ok"})
            if self.path == "/deliveries":
                return self._answer(200, [asdict(o) for o in guard.outcomes])
            self._answer(404, {"error": "not found"})

        def _answer(self, status: int, document) -> None:
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            print(f"{self.address_string()} {format % args}", flush=True)

    return ThreadingHTTPServer((host, port), Receiver)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m week2.machinery.webhooks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--port", required=True, help="1 to 65535")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--smoke-sample", type=Path, required=True, help="parquet file of raw trips")
    parser.add_argument("--alias", default="champion")
    options = parser.parse_args(argv)
    secret = os.environ.get(SECRET_VARIABLE)
    if not secret:
        print(f"error: set {SECRET_VARIABLE} to the webhook's secret", file=sys.stderr)
        return 2
    try:
        port = config.check_port(options.port, "--port", config.webhook_port())
    except config.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    server = make_server(port, secret, Guard(options.tracking_uri, options.smoke_sample, options.alias))
    print(f"webhook receiver on http://127.0.0.1:{port} guarding @{options.alias}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
