"""Supervision of every process the course starts: start, wait until ready, find, stop.

A `Service` is one background process with a name and a folder: it runs in a session of its own
(so a terminal's Ctrl+C or a closing shell does not reach it, and stopping it stops everything it
forked), its stdout and stderr go to `<folder>/<name>.log`, and `<folder>/<name>.pid` records its
pid, start time and command line. A later process (`make server-stop` in another shell) finds it
from that record, and only signals a process whose start time AND command line are the recorded
ones: a pid reused by another program is never touched. Anyone can write a record, so a service
that knows its command lines (`is_ours`) trusts one only when it names such a command line. When
the record is lost (`make clean`, a deleted folder), a service that knows its port and command
finds its process by both.

Ports are checked the way a server binds them: a port is free when we could listen on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import psutil

from week2.errors import Week2Error
from week2.files import write_text_atomically

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 15
LOG_LINES = 20

# Processes started by this Python process, kept so that stopping one also reaps it.
_STARTED: dict[int, subprocess.Popen] = {}


class ServerError(Week2Error, RuntimeError):
    """A process could not be started, reached or stopped; the message says what to do."""


# --- Ports ---------------------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    """True when a server could listen on 127.0.0.1:`port` (connections closing on it do not count)."""
    with socket.socket() as probe:
        # Servers set SO_REUSEADDR too: a port whose last connections are in TIME_WAIT is free to them.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind((HOST, 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def port_in_use_error(setting: str, port: int) -> ServerError:
    return ServerError(
        f"Port {port} on {HOST} is in use by another program: stop what listens there, "
        f"or set {setting} to a free port."
    )


def require_free_ports(ports: dict[str, int]) -> None:
    """Raise a ServerError naming the setting to change for the first port already in use."""
    for setting, port in ports.items():
        if not port_is_free(port):
            raise port_in_use_error(setting, port)


def _listening_pids(port: int) -> set[int]:
    """Pids of the processes that listen on TCP `port` (only our own are visible unless we are root)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:  # macOS lists connections for root only: ask our processes one by one
        connections = [c._replace(pid=p.pid) for p in psutil.process_iter() for c in _connections_of(p)]
    return {c.pid for c in connections if c.pid and c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def _connections_of(process: psutil.Process) -> list:
    try:
        return process.net_connections(kind="tcp")
    except psutil.Error:
        return []


def command_line(process: psutil.Process) -> list[str]:
    """The process's command line. Linux sometimes reads it as empty while the process maps memory:
    no process of ours has an empty one, so that read is retried."""
    for _ in range(20):
        if cmdline := process.cmdline():
            return cmdline
        time.sleep(0.01)
    return []


def find_by_port_and_command(port: int, command: list[str]) -> psutil.Process | None:
    """The running process started as exactly `command` that (itself or a worker) listens on `port`."""
    for pid in _listening_pids(port):
        with suppress(psutil.Error):
            listener = psutil.Process(pid)
            for candidate in (listener, *listener.parents()):
                if command_line(candidate) == command and not has_exited(candidate):
                    return candidate
    return None


# --- Processes -----------------------------------------------------------------------------------


def run_as(user: str | None) -> dict:
    """Keyword arguments for subprocess that run the child as `user` (its own groups only), or as us."""
    if user is None:
        return {}
    account = pwd.getpwnam(user)
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def has_exited(process: psutil.Process) -> bool:
    # A zombie has exited; it only waits for its parent (or init, for an orphan) to reap it.
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_until_exited(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Wait up to STOP_TIMEOUT_SECONDS for `processes` to exit; return those still running."""
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    running = processes
    while running and time.monotonic() < deadline:
        time.sleep(0.05)
        running = [p for p in running if not has_exited(p)]
    return running


def stop_process_tree(process: psutil.Process, stop_signal: signal.Signals = signal.SIGTERM) -> None:
    """Send `stop_signal` to `process`, wait for it and its descendants, kill whatever lingers.

    Servers fork workers that keep their port open for a moment after their parent has gone, so
    the whole tree is waited for: when this returns, nothing the process started still listens.
    """
    try:
        family = [process, *process.children(recursive=True)]
        process.send_signal(stop_signal)
    except psutil.NoSuchProcess:
        return
    leftovers = _wait_until_exited(family)
    for leftover in leftovers:
        with suppress(psutil.NoSuchProcess):
            leftover.kill()
    _wait_until_exited(leftovers)
    popen = _STARTED.pop(process.pid, None)
    if popen is not None:
        popen.wait(STOP_TIMEOUT_SECONDS)  # reap our own child


@dataclass(frozen=True)
class Service:
    """One background process; its pid record and log live in `folder`.

    `port` and `command`, when given, say where and as what the process runs, so that it can be
    found even without its pid file. `is_ours`, when given, tells a command line of this service
    from any other: a pid record naming another program, however consistent, is not trusted.
    """

    name: str
    folder: Path
    port: int | None = None
    command: tuple[str, ...] | None = None
    is_ours: Callable[[list[str]], bool] | None = None

    @property
    def pid_file(self) -> Path:
        return self.folder / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / f"{self.name}.log"

    def recorded(self) -> psutil.Process | None:
        """The process the pid file names, if it is still the one that was started (time and command)
        and, for a service that knows its command lines, one of them."""
        try:
            record = json.loads(self.pid_file.read_text())
            process = psutil.Process(record["pid"])
            cmdline = command_line(process)
            if (
                process.create_time() == record["started"]
                and cmdline == record["cmdline"]
                and (self.is_ours is None or self.is_ours(cmdline))
                and not has_exited(process)
            ):
                return process
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            pass  # no file, a damaged or old one, or a process that is gone
        return None

    def process(self) -> psutil.Process | None:
        """Our running process: from the pid file, else by port and command line; None if not running."""
        found = self.recorded()
        if found is None and self.port is not None and self.command is not None:
            found = find_by_port_and_command(self.port, list(self.command))
        return found

    def start(
        self, command: list[str], env: dict[str, str] | None = None, user: str | None = None
    ) -> subprocess.Popen:
        """Start `command` in a session of its own, as `user` if given; stdout and stderr go to the log."""
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [str(part) for part in command]
        with open(self.log_file, "ab") as log:
            popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.folder,
                start_new_session=True,
                **run_as(user),
            )
        _STARTED[popen.pid] = popen
        record = {"pid": popen.pid, "started": psutil.Process(popen.pid).create_time(), "cmdline": command}
        write_text_atomically(self.pid_file, json.dumps(record))
        return popen

    def start_and_wait(
        self, command: list[str], ready: Callable[[], bool], what: str, env: dict[str, str] | None = None
    ) -> None:
        """`start`, then `wait_until(ready)`; a start that dies or hangs leaves nothing running."""
        self.start(command, env=env)
        try:
            wait_until(ready, self, what)
        except BaseException:
            self.stop()
            raise

    def stop(self, stop_signal: signal.Signals = signal.SIGTERM) -> bool:
        """Send `stop_signal`, then kill what is left of the process tree; False if it was not running."""
        process = self.process()
        if process is not None:
            stop_process_tree(process, stop_signal)
        self.pid_file.unlink(missing_ok=True)
        return process is not None

    def log_tail(self, lines: int = LOG_LINES) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_end(self) -> str:
        return f"End of {self.log_file}:\n{self.log_tail()}"


def wait_until(
    ready: Callable[[], bool], service: Service, what: str, timeout: float = START_TIMEOUT_SECONDS
) -> None:
    """Poll `ready` until it is true; raise a ServerError with the log's end if the process dies or hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if service.recorded() is None:
            raise ServerError(f"{what} stopped while starting. {service.log_end()}")
        time.sleep(0.25)
    raise ServerError(f"{what} did not answer within {timeout:.0f} s. {service.log_end()}")


def running_services(folder: Path) -> dict[Path, int]:
    """Pid file → pid of every service under `folder` whose recorded process still runs."""
    running = {}
    for pid_file in sorted(Path(folder).rglob("*.pid")):
        process = Service(pid_file.stem, pid_file.parent).recorded()
        if process is not None:
            running[pid_file] = process.pid
    return running


def socket_folder(owner_folder: Path) -> Path:
    """Where the Unix sockets of the servers of `owner_folder` go: /tmp/week2-<uid>-<hash>.

    A socket path may have at most 107 bytes and a checkout may sit at any depth, so sockets never
    live under it; the hash of `owner_folder` keeps two checkouts (or test runs) apart.
    """
    digest = hashlib.sha256(str(Path(owner_folder).resolve()).encode()).hexdigest()[:10]
    return Path("/tmp") / f"week2-{os.getuid()}-{digest}"


def make_private_folder(folder: Path, user: str | None = None) -> Path:
    """Create `folder` with mode 700, owned by `user` (or us); refuse one that someone else made."""
    with suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    account = pwd.getpwnam(user) if user else None
    allowed = {os.getuid(), *([account.pw_uid] if account else [])}
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid not in allowed:
        raise ServerError(f"{folder} is not a folder of ours: remove it, then start again.")
    if account:
        os.chown(folder, account.pw_uid, account.pw_gid)
    folder.chmod(0o700)
    return folder
