"""Command line of the course: `python -m week2 {course,data,ui,score,serve,server,scenario3,reproduce,…}`.

The Makefile calls these; they also work on their own inside `.venv`.
"""

from __future__ import annotations

import argparse
import os
import sys

UI_PORT_DEFAULT = 5000
SERVER_COMMANDS = ["server", "server-stop", "scenario3", "scenario3-stop"]


def main_ui(argv: list[str] | None = None) -> int:
    """`mlflow ui` on the course's tracking store, bound to 127.0.0.1 only."""
    from week2 import config

    port = os.environ.get("WEEK2_UI_PORT", str(UI_PORT_DEFAULT))
    command = [
        sys.executable, "-m", "mlflow", "ui",
        "--backend-store-uri", config.tracking_uri(),
        "--default-artifact-root", config.artifacts_dir().as_uri(),
        "--host", "127.0.0.1",
        "--port", port,
    ]  # fmt: skip
    print(f"MLflow UI on http://127.0.0.1:{port} for {config.tracking_uri()} (Ctrl+C stops it)", flush=True)
    os.execv(sys.executable, command)
    return 0  # not reached: execv replaces this process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m week2", description=__doc__.splitlines()[0])
    commands = ["course", "data", "ui", "score", "serve", "reproduce", *SERVER_COMMANDS]
    parser.add_argument("command", choices=commands)
    parser.add_argument(
        "args", nargs="*", help="data: the months to get (YYYY-MM), default the course's; score: the month"
    )
    # score, serve and scenario3-stop take options of their own (--alias, --port, --delete…),
    # passed on to them.
    options, extra = parser.parse_known_args(argv)
    if extra and options.command not in ("score", "serve", "scenario3-stop"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")

    from week2.errors import Week2Error

    try:
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
