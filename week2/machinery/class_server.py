"""The class tracking server: one MLflow for a cohort, one workspace and one account per student.

`make class-server` starts scenario 3's stack (PostgreSQL, rclone's S3 server, `mlflow server
--app-name basic-auth`, see servers.py) in a folder and on ports of its own, with MLflow's
workspaces on (`--enable-workspaces`): experiment and model names are unique per workspace, so every
student keeps the homework's own names, and the runs in a student's workspace are the submission.
MLflow's own settings do the rest:

- basic_auth.ini (MLFLOW_AUTH_CONFIG_PATH): users and roles in PostgreSQL, `default_permission =
  NO_PERMISSIONS` (an account reaches only what a role gives it), no access to the `default`
  workspace for anyone but the admin (`grant_default_workspace_access = false`), and the credential
  cache on: checking a password against its hash costs ~0.1-0.25 s of CPU, on every request.
- the SQLAlchemy pools of every worker's engines sized so that together they stay within
  PostgreSQL's max_connections (`pool_settings`);
- the workspace artifact-root cache (MLFLOW_WORKSPACE_ARTIFACT_ROOT_CACHE_CAPACITY) holds every
  workspace of a class of WEEK2_CLASS_SIZE students.

`make class-enroll ROSTER=roster.csv` (`enroll`) gives every username of the roster an account and
a workspace of the same name, and the workspace's `user` role only (the seeded `admin` role could
create accounts); it writes the student's four variables to build/class/credentials/<name>.env.
Run again, it adds new names, keeps existing passwords, and deletes the accounts of names left out
(their workspaces and runs stay, for grading). The secrets (admin password, database password, S3 keys) are
generated at the first start into the folder's secrets.json, as scenario 3's are.
"""

from __future__ import annotations

import csv
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from week2 import config
from week2.files import write_text_atomically
from week2.machinery import servers
from week2.machinery.servers import ADMIN, AUTH_DB, BACKEND_DB, BUCKET, ServerError, Stack

SECRET_NAMES = (
    "admin_password",
    "flask_secret_key",
    "postgres_password",
    "s3_access_key_id",
    "s3_secret_access_key",
)
AUTH_CONFIG = """\
# MLflow basic auth of the class server (written by week2.machinery.class_server at every start).
# No secret in here: the database password comes from PGPASSWORD, the admin's from
# MLFLOW_AUTH_ADMIN_PASSWORD.
[mlflow]
# An account reaches only what its roles give it: a student, their own workspace.
default_permission = NO_PERMISSIONS
database_uri = {database_uri}
admin_username = {admin}
# The `default` workspace is the instructor's: no role there, no access.
grant_default_workspace_access = false
# Every request carries the password: without this cache each one costs a hash check (~0.1 s of
# CPU). A changed password or a removed account may work for up to this long on other workers.
auth_cache_ttl_seconds = 60
"""
POSTGRES_MAX_CONNECTIONS = 100
"""PostgreSQL's own default, set explicitly: the pools below are sized to fit it."""
OPERATOR_CONNECTIONS = 10
"""Left for everything but the workers: the server's parent process, psql, a grader reading the tables."""
ENGINES_PER_WORKER = 4
"""SQLAlchemy engines each MLflow worker opens: tracking, model registry and workspaces on the
backend database, users and roles on the auth database (counted in pg_stat_activity)."""
STUDENT_ROLE = "user"
"""The role MLflow seeds in every new workspace: USE on the workspace (read it, create in it, manage
what one created). Its `admin` role, MANAGE, could manage the workspace's roles and accounts."""
STUDENT_WORKSPACE = "Student workspace (make class-enroll)"
"""The description that marks the workspaces enrol made, which a later roster may leave out."""
SYNTHETIC_ROLE_PREFIX = "__user_"
"""MLflow's hidden per-user roles, which hold the grants a user has on what they created."""
INSTRUCTOR_WORKSPACE = "instructor"
"""Where `make class-grade` runs the reference solution, beside the students' workspaces."""
RESERVED_NAMES = {ADMIN, "default", INSTRUCTOR_WORKSPACE}


def class_stack() -> Stack:
    ports = {
        "WEEK2_CLASS_PORT": config.class_port(),
        "WEEK2_CLASS_S3_PORT": config.class_s3_port(),
        "WEEK2_CLASS_POSTGRES_PORT": config.class_postgres_port(),
    }
    return Stack("The class server", "class-server", config.servers_dir() / "class", ports, SECRET_NAMES)


def class_url() -> str:
    return class_stack().url


def credentials_folder() -> Path:
    return config.build_dir() / "class" / "credentials"


def pool_settings(workers: int) -> dict[str, str]:
    """MLflow's pool settings with which `workers` workers' engines fit PostgreSQL's max_connections.

    Each engine holds up to pool_size + max_overflow connections. MLflow passes max_overflow to
    SQLAlchemy only when it is not 0 (0 would mean SQLAlchemy's default, 10), so it is 1 or more.
    """
    per_engine = (POSTGRES_MAX_CONNECTIONS - OPERATOR_CONNECTIONS) // (workers * ENGINES_PER_WORKER)
    if per_engine < 2:
        most = (POSTGRES_MAX_CONNECTIONS - OPERATOR_CONNECTIONS) // (2 * ENGINES_PER_WORKER)
        raise ServerError(
            f"WEEK2_CLASS_WORKERS={workers}: that many workers' connections would not fit PostgreSQL's "
            f"{POSTGRES_MAX_CONNECTIONS}; set it to {most} or fewer."
        )
    overflow = max(1, per_engine // 3)  # a burst may open a few more, closed again when it is over
    return {
        "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": str(per_engine - overflow),
        "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": str(overflow),
    }


def _start_class_mlflow(stack: Stack, keys: dict[str, str]) -> None:
    auth_config = stack.folder / "basic_auth.ini"
    database_uri = servers.postgres_uri(stack, AUTH_DB)
    auth_config.write_text(AUTH_CONFIG.format(database_uri=database_uri, admin=ADMIN))
    workers = config.class_workers()
    env = servers.auth_server_env(
        stack,
        keys,
        auth_config,
        **pool_settings(workers),
        # One entry per workspace, and the admin's `default`: a smaller cache would look the
        # artifact roots up again and again in a deadline hour.
        MLFLOW_WORKSPACE_ARTIFACT_ROOT_CACHE_CAPACITY=str(config.class_size() + 1),
        # Every new workspace gets MLflow's `admin` and `user` roles; enrol gives students `user`.
        MLFLOW_RBAC_SEED_DEFAULT_ROLES="true",
    )
    # GraphQL's authorization is on unless this says otherwise: a stray "false" in the instructor's
    # shell would open every student's runs to every other through /graphql.
    env.pop("MLFLOW_SERVER_ENABLE_GRAPHQL_AUTH", None)
    command = servers.mlflow_server_command(
        stack.mlflow_port,
        servers.postgres_uri(stack, BACKEND_DB),
        f"s3://{BUCKET}/artifacts",  # a workspace's artifacts go under workspaces/<name>/
        "--app-name", "basic-auth",
        "--enable-workspaces",
        workers=workers,
    )  # fmt: skip
    servers.start_auth_server(stack, command, env)


def start_class_server() -> str:
    """Start the class server (or find it running); return its URL."""
    # Too many workers to fit PostgreSQL's connections are refused before anything starts.
    pool_settings(config.class_workers())
    settings = {"max_connections": str(POSTGRES_MAX_CONNECTIONS)}
    return servers.start_stack(class_stack(), _start_class_mlflow, settings)


def stop_class_server(delete: bool = False) -> str:
    """Stop the class server; with `delete`, delete its data, secrets and the students' credentials."""
    said = servers.stop_and_say(class_stack(), delete)
    if delete:
        shutil.rmtree(credentials_folder(), ignore_errors=True)
    return said


# --- Enrolment ----------------------------------------------------------------------------------


def read_roster(path: Path) -> list[str]:
    """The usernames in the roster CSV at `path` (a `username` column); a ServerError says what to fix."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.workspace.abstract_store import WorkspaceNameValidator

    try:
        with open(path, newline="", encoding="utf-8-sig") as file:  # a spreadsheet's BOM is not a name
            reader = csv.DictReader(file)
            rows, header = list(reader), reader.fieldnames or []
    except (FileNotFoundError, IsADirectoryError):
        raise ServerError(
            f"The roster {path} is not a file: give the path of a CSV file (ROSTER=roster.csv)."
        ) from None
    except (UnicodeDecodeError, csv.Error) as unreadable:
        raise ServerError(
            f"The roster {path} is not a readable CSV file ({unreadable}): save it as CSV, UTF-8."
        ) from None
    if "username" not in header:
        raise ServerError(
            f"The roster {path} has no username column (its header: {', '.join(header) or 'none'}): "
            "add one, one student's username a row."
        )
    names: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        name = (row["username"] or "").strip()
        try:
            WorkspaceNameValidator.validate(name)  # the username names the student's workspace too
            if name in RESERVED_NAMES:
                raise MlflowException(f"'{name}' is the instructor's")
        except MlflowException as refused:
            raise ServerError(
                f"The roster {path}, line {line}: {name!r} cannot be a student's username "
                f"({refused.message}); use lowercase letters, digits and inner hyphens, 2 to 63 characters."
            ) from None
        if name in names:
            raise ServerError(
                f"The roster {path}, line {line}: {name} is there twice (line {names[name]} too)."
            )
        names[name] = line
    if not names:
        raise ServerError(f"The roster {path} lists no student: one username a row under a username header.")
    if len(names) > config.class_size():
        raise ServerError(
            f"The roster {path} lists {len(names)} students, more than "
            f"WEEK2_CLASS_SIZE={config.class_size()}: set WEEK2_CLASS_SIZE={len(names)} or more and restart "
            "the class server (make class-server-stop, then make class-server)."
        )
    return list(names)


def _read_env_file(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


# --- the student's side: submitting the homework ------------------------------------------------

CLASS_VARIABLES = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_WORKSPACE",
)
DEADLINE_VARIABLE = "WEEK2_CLASS_DEADLINE"
"""An optional deadline (ISO 8601, e.g. 2026-12-20T23:59:00Z) in a credentials file or the environment."""


def submission_settings(path: Path | None, environment: dict[str, str]) -> dict[str, str]:
    """The class server's four variables (and the deadline, if any) a submission uses.

    From the credentials file `path` (make homework CLASS=…), or from `environment` when it names a
    workspace and an account on a server; {} when neither does (no submission: the local store).
    """
    if path is None:
        found = {name: environment[name] for name in CLASS_VARIABLES if environment.get(name)}
        if "MLFLOW_WORKSPACE" not in found or "MLFLOW_TRACKING_USERNAME" not in found:
            return {}
        source = "the environment"
    else:
        if not Path(path).is_file():
            raise ServerError(
                f"CLASS={path}: no such file: give the credentials file your instructor sent you, "
                "e.g. CLASS=alice.env"
            )
        found = {name: value for name, value in _read_env_file(Path(path)).items() if value}
        source = str(path)
    missing = [name for name in CLASS_VARIABLES if name not in found]
    if missing:
        raise ServerError(
            f"{source} lacks {', '.join(missing)}: use the credentials file your instructor sent you"
        )
    if not found["MLFLOW_TRACKING_URI"].startswith(("http://", "https://")):
        raise ServerError(
            f"{source}: MLFLOW_TRACKING_URI={found['MLFLOW_TRACKING_URI']} is no class server address"
        )
    deadline = found.get(DEADLINE_VARIABLE) or environment.get(DEADLINE_VARIABLE)
    return {
        **{name: found[name] for name in CLASS_VARIABLES},
        **({DEADLINE_VARIABLE: deadline} if deadline else {}),
    }


def parse_deadline(text: str) -> datetime:
    """An ISO 8601 time with its zone (a Z or +01:00); one line saying how to write it if not."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ServerError(f"deadline {text!r} is not a time with its zone: write e.g. 2026-12-20T23:59:00Z")
    return moment


def check_submission(settings: dict[str, str], now: datetime | None = None) -> None:
    """Refuse, in one line each, a submission that cannot count: after the deadline, the server down,
    the account refused (a wrong password, or a name left out of the roster), the workspace missing
    or not the student's. Nothing is written before this passes."""
    import requests
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri, user, workspace = (
        settings[name] for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_WORKSPACE")
    )
    now = now or datetime.now(UTC)
    if DEADLINE_VARIABLE in settings and now > parse_deadline(settings[DEADLINE_VARIABLE]):
        raise ServerError(
            f"the deadline, {settings[DEADLINE_VARIABLE]}, has passed (it is {now:%Y-%m-%dT%H:%M:%SZ}): runs "
            "started now are not graded; ask your instructor before you submit late"
        )
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=(5, 10)).raise_for_status()
    except requests.RequestException as error:
        raise ServerError(
            f"the class server {uri} does not answer ({type(error).__name__}): try again later, or ask your "
            "instructor whether it runs"
        ) from None
    try:
        # The workspaces a student may use; another's answers searches with nothing rather than 403.
        usable = {found.name for found in MlflowClient(uri).list_workspaces()}
    except MlflowException as error:
        if error.get_http_status_code() == 401:
            raise ServerError(
                f"{uri} refused {user}'s username or password: use the credentials file your instructor sent "
                "you (an account left out of the roster is closed: ask them)"
            ) from None
        raise
    if workspace not in usable:
        raise ServerError(
            f"{uri} has no workspace {workspace!r} that {user} may use: MLFLOW_WORKSPACE must be the one "
            "in your credentials file (your username)"
        )


def admin_settings() -> dict[str, str]:
    """The class server's address and its admin's account, for the instructor's commands."""
    stack = class_stack()
    if not stack.runs():
        raise ServerError(
            f"The class server does not answer on {stack.url}: start it with make class-server."
        )
    return {
        "MLFLOW_TRACKING_URI": stack.url,
        "MLFLOW_TRACKING_USERNAME": ADMIN,
        "MLFLOW_TRACKING_PASSWORD": servers.read_secrets(stack)["admin_password"],
    }


def student_credentials(username: str, password: str) -> dict[str, str]:
    """What a student's MLflow client needs: the server, their account, their workspace."""
    return {
        "MLFLOW_TRACKING_URI": class_url(),
        "MLFLOW_TRACKING_USERNAME": username,
        "MLFLOW_TRACKING_PASSWORD": password,
        "MLFLOW_WORKSPACE": username,
    }


@dataclass
class Enrolment:
    """What `enroll` did: names added, kept, whose password was reset (its file was lost), left out."""

    added: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    reset: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def enroll(usernames: Sequence[str]) -> Enrolment:
    """Give every username an account, a workspace of its name and that workspace's `user` role only.

    Idempotent: existing accounts keep the password their credentials file holds; students with a
    workspace of ours who are not in `usernames` lose their accounts (their workspaces and runs stay).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import RestException

    stack = class_stack()
    admin = admin_settings()
    done = Enrolment()
    credentials_folder().mkdir(mode=0o700, parents=True, exist_ok=True)
    credentials_folder().chmod(0o700)  # the passwords inside are the only copies: for the instructor only
    with servers.environment(admin):
        auth, tracking = servers.auth_client(stack.url), MlflowClient(stack.url)
        workspaces = {w.name: w for w in tracking.list_workspaces()}
        for name in usernames:
            path = credentials_folder() / f"{name}.env"
            password = _read_env_file(path).get("MLFLOW_TRACKING_PASSWORD")
            try:
                auth.get_user(name)
            except RestException as missing:
                if missing.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                password = secrets.token_urlsafe(18)
                auth.create_user(name, password)
                done.added.append(name)
            else:
                if password is None:  # its file is lost: the only copy of the password was in it
                    password = secrets.token_urlsafe(18)
                    auth.update_user_password(name, password)
                    done.reset.append(name)
                else:
                    done.kept.append(name)
            if name not in workspaces:
                tracking.create_workspace(name, description=STUDENT_WORKSPACE)
            _give_only_the_user_role(auth, name)
            write_text_atomically(
                path,
                "".join(f"{k}={v}\n" for k, v in student_credentials(name, password).items()),
                mode=0o600,
            )
        for name, workspace in workspaces.items():
            if workspace.description == STUDENT_WORKSPACE and name not in usernames:
                (credentials_folder() / f"{name}.env").unlink(missing_ok=True)
                try:
                    # MLflow deletes the account with its roles and grants; the runs stay.
                    auth.delete_user(name)
                except RestException as missing:
                    if missing.error_code != "RESOURCE_DOES_NOT_EXIST":
                        raise
                    continue  # left out by an earlier roster already
                done.left_out.append(name)
    return done


def _give_only_the_user_role(auth, name: str) -> None:
    """`name` holds the `user` role of the workspace `name`, and no other role anywhere.

    MLflow's hidden per-user role (`__user_<id>__`) stays: it holds what the student created.
    """
    roles = {role.name: role for role in auth.list_roles(name)}
    student_role = roles.get(STUDENT_ROLE)
    if student_role is None:  # MLflow did not seed it (a workspace made by hand): make MLflow's
        student_role = auth.create_role(name, STUDENT_ROLE)
        auth.add_role_permission(student_role.id, "workspace", "*", "USE")
    held = [role for role in auth.list_user_roles(name) if not role.name.startswith(SYNTHETIC_ROLE_PREFIX)]
    for role in held:
        if role.id != student_role.id:
            auth.unassign_role(name, role.id)
    if all(role.id != student_role.id for role in held):
        auth.assign_role(name, student_role.id)


# --- Command line ------------------------------------------------------------------------------


def main_class(command: str, args: Sequence[str] = ()) -> int:
    """`python -m week2 class-server|class-server-stop [--delete]|class-enroll ROSTER` (the Makefile's)."""
    if command == "class-server":
        if args:
            raise ServerError(f"Unexpected {' '.join(args)!r} after class-server: it takes no option.")
        stack = class_stack()
        state = "already answers" if stack.runs() else "started"
        start_class_server()
        print(f"The class server {state} on {stack.url} (workspaces, basic auth)")
        print(f"  PostgreSQL on {servers.HOST}:{stack.postgres_port}, S3 endpoint on {stack.s3_endpoint}")
        print(f"  the admin's password and the other secrets: {stack.secrets_path}")
        print(f"  its data: {stack.folder} (kept from one start to the next)")
        print("  enrol:    make class-enroll ROSTER=roster.csv (a username column)")
        print("  stop it:  make class-server-stop (DELETE=1 also deletes its data and secrets)")
    elif command == "class-server-stop":
        if list(args) not in ([], ["--delete"]):
            raise ServerError(
                f"Unexpected {' '.join(args)!r} after class-server-stop: its only option is --delete "
                "(make class-server-stop DELETE=1), which deletes the class's runs, artifacts and secrets."
            )
        print(stop_class_server(delete=bool(args)))
    elif command == "class-enroll":
        if len(args) != 1:
            raise ServerError(
                "class-enroll takes one roster, a CSV file with a username column: "
                "make class-enroll ROSTER=roster.csv"
            )
        usernames = read_roster(Path(args[0]))
        done = enroll(usernames)
        new, kept = len(done.added), len(done.kept)
        print(f"Enrolled {len(usernames)} students on {class_url()}: {new} new, {kept} kept their password")
        if done.reset:
            print(f"  new password (their credentials file was missing): {', '.join(done.reset)}")
        if done.left_out:
            print(
                f"  left out of the roster, no access any more (their runs stay): {', '.join(done.left_out)}"
            )
        print(f"  credentials to hand out, one file each (mode 600): {credentials_folder()}/<username>.env")
    return 0
