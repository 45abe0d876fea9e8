"""Supervision of our processes: only ours are signalled, found without a pid file, ports told apart.

The team-server tests start a real `mlflow server` in a private folder on free ports; the
scenario-3 test starts it from a servers folder at a 200+ character path with a space.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
from conftest import process_gone, run_week2, skip_without_postgres

from week2.machinery import processes, servers


def test_a_pid_whose_program_changed_is_never_signalled(tmp_path):
    # The shell execs into `sleep`: same pid, same start time, another command line.
    service = processes.Service("changes", tmp_path)
    popen = service.start(["sh", "-c", "sleep 0.3; exec sleep 60"])
    try:
        assert service.recorded() is not None
        deadline = time.monotonic() + 10
        while psutil.Process(popen.pid).cmdline() != ["sleep", "60"] and time.monotonic() < deadline:
            time.sleep(0.05)

        assert service.process() is None
        assert service.stop() is False
        assert popen.poll() is None  # still running: we never signalled it
    finally:
        popen.kill()
        popen.wait()


def test_an_old_pid_record_without_command_line_is_not_trusted(tmp_path):
    service = processes.Service("old", tmp_path)
    me = psutil.Process()
    service.pid_file.write_text(json.dumps({"pid": me.pid, "started": me.create_time()}))
    assert service.process() is None
    assert service.stop() is False  # and this test process is still alive to say so


def test_a_pid_record_naming_another_program_of_ours_is_not_trusted(tmp_path, monkeypatch, capsys):
    """A record that agrees with itself (pid, start time, command line) but names a student's program."""
    monkeypatch.setenv("WEEK2_SERVERS_DIR", str(tmp_path))
    folder = servers.team_server_folder()
    folder.mkdir()
    theirs = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        process = psutil.Process(theirs.pid)
        record = {"pid": theirs.pid, "started": process.create_time(), "cmdline": process.cmdline()}
        for name in ("mlflow", "webhooks"):  # the two processes server-stop stops
            (folder / f"{name}.pid").write_text(json.dumps(record))

        assert servers.main_servers("server-stop") == 0
        assert capsys.readouterr().out == "No team tracking server was running.\n"
        assert theirs.poll() is None  # never signalled
    finally:
        theirs.kill()
        theirs.wait()


def test_a_port_is_free_only_when_a_server_could_listen_on_it():
    with socket.socket() as listener:
        listener.bind((processes.HOST, 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not processes.port_is_free(port)
        with pytest.raises(processes.ServerError, match=f"Port {port} .*in use.*set WEEK2_X"):
            processes.require_free_ports({"WEEK2_X": port})
    assert processes.port_is_free(port)


def test_the_socket_folder_is_short_private_and_apart_for_each_servers_folder(tmp_path):
    deep = tmp_path / ("a" * 120) / "with space" / ("b" * 120)
    folder = processes.socket_folder(deep)
    assert len(str(folder / ".s.PGSQL.65535")) < 107  # the limit of a Unix socket's path
    assert folder != processes.socket_folder(tmp_path)
    made = processes.make_private_folder(folder)
    try:
        assert made.stat().st_mode & 0o777 == 0o700
    finally:
        made.rmdir()


@pytest.fixture
def foreign_health_server(server_settings, tmp_path):
    """A plain HTTP server, not ours, that answers /health with 200 on the team server's port."""
    (tmp_path / "health").write_text("OK")
    port = server_settings["WEEK2_SERVER_PORT"]
    other = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not servers.is_healthy(servers.team_server_url()) and time.monotonic() < deadline:
            time.sleep(0.1)
        yield other
    finally:
        other.kill()
        other.wait()


@pytest.mark.servers
def test_another_program_answering_health_on_our_port_is_refused_and_left_alone(foreign_health_server):
    with pytest.raises(servers.ServerError, match="in use.*WEEK2_SERVER_PORT"):
        servers.ensure_team_server()

    started = run_week2("server")
    assert started.returncode == 2
    assert started.stderr.strip().startswith("error: Port") and "WEEK2_SERVER_PORT" in started.stderr
    assert "No team tracking server was running" in run_week2("server-stop").stdout
    assert foreign_health_server.poll() is None  # never signalled


@pytest.mark.servers
def test_a_team_server_whose_pid_file_was_lost_is_found_and_stopped(server_settings):
    assert run_week2("server").returncode == 0
    pid_file = servers.team_server_folder() / "mlflow.pid"
    pid = json.loads(pid_file.read_text())["pid"]
    pid_file.unlink()  # make clean, or a deleted folder

    again = run_week2("server")
    assert again.returncode == 0 and "already answers" in again.stdout  # ours, not "in use"
    stopped = run_week2("server-stop")
    assert stopped.returncode == 0 and "Team tracking server stopped." in stopped.stdout
    assert process_gone(pid)
    assert processes.port_is_free(server_settings["WEEK2_SERVER_PORT"])


@pytest.fixture
def long_servers_folder(server_settings, monkeypatch):
    """WEEK2_SERVERS_DIR at a path of more than 200 characters with a space in it."""
    base = Path(os.environ["WEEK2_SERVERS_DIR"]).parent
    folder = base / ("a" * 90) / "with space" / ("b" * 90) / "servers"
    folder.mkdir(parents=True)
    monkeypatch.setenv("WEEK2_SERVERS_DIR", str(folder))
    assert len(str(folder)) > 200
    return folder


@pytest.mark.servers
@pytest.mark.slow
def test_scenario3_starts_and_stops_from_a_200_character_path_with_a_space(long_servers_folder):
    skip_without_postgres()
    started = run_week2("scenario3")
    try:
        assert started.returncode == 0, started.stderr
        assert requests.get(f"{servers.scenario3_url()}/health", timeout=10).text == "OK"
        assert servers.postgres_connection().close() is None  # PostgreSQL answers, over TCP
        assert processes.socket_folder(servers.scenario3_folder()).is_dir()
    finally:
        stopped = run_week2("scenario3-stop", "--delete")  # also PostgreSQL's data, wherever it is
    assert stopped.returncode == 0, stopped.stderr
    assert not processes.socket_folder(servers.scenario3_folder()).exists()
