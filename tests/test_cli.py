"""`python -m week2 ui` (what `make ui` runs): the classic view's address, telemetry off, our store."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

import pytest
import requests

from week2 import __main__ as cli
from week2 import config
from week2.machinery import servers

CLASSIC_VIEW = "#/experiments?workflowType=machine_learning"  # as MLflow 3.17's UI spells it


class _Exec(Exception):
    """Raised instead of replacing the test process with `mlflow ui`."""


def _no_exec(*args):
    raise _Exec


def test_make_ui_prints_the_classic_view_and_starts_mlflow_without_telemetry(store, monkeypatch, capsys):
    port = servers.free_ports(1)[0]
    monkeypatch.setenv("WEEK2_UI_PORT", str(port))
    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    started = {}

    def execv(program, command):
        started.update(program=program, command=command, telemetry=os.environ.get("MLFLOW_DISABLE_TELEMETRY"))
        raise _Exec

    monkeypatch.setattr(os, "execv", execv)
    with pytest.raises(_Exec):
        cli.main(["ui"])

    assert f"http://127.0.0.1:{port}/{CLASSIC_VIEW}" in capsys.readouterr().out
    assert started["telemetry"] == "true"  # inherited by `mlflow ui`, which execv starts
    command = started["command"]
    assert command[command.index("--backend-store-uri") + 1] == config.tracking_uri()
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == str(port)


def test_make_ui_creates_a_fresh_store_before_mlflow_ui_opens_it(tmp_path, monkeypatch):
    """`mlflow ui` does not import week2, so it would create the tables without the store's lock."""
    database = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")
    monkeypatch.setenv("WEEK2_UI_PORT", str(servers.free_ports(1)[0]))
    monkeypatch.setattr(os, "execv", _no_exec)
    with pytest.raises(_Exec):
        cli.main(["ui"])

    with closing(sqlite3.connect(database)) as store:
        assert store.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
        assert store.execute("SELECT name FROM experiments").fetchall() == [("Default",)]


def test_make_ui_names_a_dead_tracking_server_in_one_line(monkeypatch, capsys):
    server = servers.free_ports(1)[0]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server}")
    monkeypatch.setattr(os, "execv", lambda *args: pytest.fail("mlflow ui must not start"))
    assert cli.main(["ui"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: MLFLOW_TRACKING_URI=http://127.0.0.1:{server} does not answer (ConnectionError): "
        "start it (make server, or make scenario3) or unset MLFLOW_TRACKING_URI to use the course's store."
    )


@pytest.mark.servers
def test_the_printed_address_is_the_ui_of_our_store(store):
    port = servers.free_ports(1)[0]
    env = {**os.environ, "WEEK2_UI_PORT": str(port)}
    ui = subprocess.Popen(
        [sys.executable, "-m", "week2", "ui"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        address = ui.stdout.readline().split()[3]
        assert address == f"http://127.0.0.1:{port}/{CLASSIC_VIEW}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                page = requests.get(address, timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.5)
        assert page.status_code == 200 and "<html" in page.text.lower()
        listed = requests.post(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search", json={"max_results": 10}
        )
        assert listed.status_code == 200
    finally:
        os.killpg(ui.pid, signal.SIGTERM)  # the session we started: mlflow ui and its workers
        ui.wait(timeout=60)
