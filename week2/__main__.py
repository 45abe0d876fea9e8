"""Command line of the course: `python -m week2 {course,data,ui,score,serve,server,scenario3,reproduce,…}`.

The Makefile calls these; they also work on their own inside `.venv`.
"""

from __future__ import annotations

import argparse
import os
import sys

SERVER_COMMANDS = ["server", "server-stop", "scenario3", "scenario3-stop"]
CLASS_COMMANDS = ["class-server", "class-server-stop", "class-enroll"]
STORE_COMMANDS = ["course", "ui", "score", "serve", "reproduce"]
"""The commands that use the tracking store: its folder must be there, its server must answer."""


def main_ui(argv: list[str] | None = None) -> int:
    """`mlflow ui` on the course's tracking store, bound to 127.0.0.1 only."""
    from week2 import config, tracking
    from week2.errors import Week2Error

    uri = tracking.check_store()
    if tracking.uses_server(uri):
        raise Week2Error(
            f"MLFLOW_TRACKING_URI={uri} is a server with a UI of its own: open {uri} in a browser."
        )
    if tracking.sqlite_path(uri):
        tracking.create_store(uri)  # `mlflow ui` would create a new store's tables without our lock
    port = config.ui_port()
    command = [
        sys.executable, "-m", "mlflow", "ui",
        "--backend-store-uri", uri,
        "--default-artifact-root", config.artifacts_dir().as_uri(),
        "--host", "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip
    address = tracking.classic_view(f"http://127.0.0.1:{port}")
    print(f"MLflow UI on {address} for {uri} (Ctrl+C stops it)", flush=True)
    os.execv(sys.executable, command)
    return 0  # not reached: execv replaces this process


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line that says where help is, not the usage block and the error."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see python -m week2 --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m week2", description=__doc__.splitlines()[0])
    commands = ["course", "data", "ui", "score", "serve", "reproduce", *SERVER_COMMANDS, *CLASS_COMMANDS]
    parser.add_argument("command", choices=commands)
    parser.add_argument(
        "args",
        nargs="*",
        help="data: the months (YYYY-MM), default the course's; score: the month; class-enroll: the roster",
    )
    # score, serve, scenario3-stop and class-server-stop take options of their own (--alias, --port,
    # --delete…), passed on to them.
    options, extra = parser.parse_known_args(argv)
    if extra and options.command not in ("score", "serve", "scenario3-stop", "class-server-stop"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")

    from week2 import config
    from week2.errors import Week2Error

    # Telemetry off and a short retry budget for MLflow here and in every process started from here.
    config.apply_mlflow_defaults()
    try:
        # Every setting is read before anything is done, so a malformed one creates or deletes nothing.
        config.check_all()
        if options.command in STORE_COMMANDS:
            from week2 import tracking

            tracking.check_store()
        if options.command == "course":
            from week2.machinery.course import main_course

            return main_course(options.args)
        if options.command == "data":
            from week2.data import main_data

            return main_data(options.args) or 0
        if options.command == "score":
            from week2.machinery.serving import main_score

            return main_score(options.args + extra)
        if options.command in SERVER_COMMANDS:
            from week2.machinery.servers import main_servers

            return main_servers(options.command, options.args + extra)
        if options.command in CLASS_COMMANDS:
            from week2.machinery.class_server import main_class

            return main_class(options.command, options.args + extra)
        if options.command == "serve":
            from week2.machinery.serving import main_serve

            return main_serve(options.args + extra)
        if options.command == "reproduce":
            from week2.reproduce import main_reproduce

            return main_reproduce(options.args)
        return main_ui(options.args)
    except Week2Error as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
