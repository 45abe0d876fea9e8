"""Bad input everywhere: every malformed setting or argument gets one line, exit status 2, and no change.

Each case runs `python -m week2 …` (and `make …` where it is cheap) in another process, with the
course's folders pointed into a temporary folder that is compared before and after: a refused
value must leave every file where it was. The line must name the setting or argument.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tree_with_mtimes

from week2.machinery import servers

REPO_ROOT = Path(__file__).resolve().parent.parent
ARABIC_INDIC_2021 = "\u0662\u0660\u0662\u0661"  # int() and \d read these as 2021
DEADLINE_SECONDS = 30  # a server that does not answer is named within this

# (command line, environment changes, what the one line must contain). In arguments and values,
# {file} is a file in the way, {tmp} the test's folder and {dead} a port where nothing listens.
# STORE_THERE: a store whose folder exists, so that the refusal comes from the argument.
STORE_THERE = {"MLFLOW_TRACKING_URI": "sqlite:///{tmp}/mlflow.db"}
CASES = {
    "unknown command": (["sever"], {}, "argument command: invalid choice: 'sever'"),
    "option data does not take": (["data", "--force"], {}, "unrecognized arguments: --force"),
    "month with a leading space": (["data", " 2021-01"], {}, "month=' 2021-01'"),
    "month with a trailing newline": (["data", "2021-01\n"], {}, "month='2021-01\\n'"),
    "month in Arabic-Indic digits": (["data", f"{ARABIC_INDIC_2021}-01"], {}, "month="),
    "month of year 0": (["data", "0000-01"], {}, "month='0000-01'"),
    "month 13": (["data", "2021-13"], {}, "month='2021-13'"),
    "train month with stray spaces": (["data"], {"WEEK2_TRAIN_MONTH": " 2021-01"}, "WEEK2_TRAIN_MONTH"),
    "val month of year 0": (["data"], {"WEEK2_VAL_MONTH": "0000-02"}, "WEEK2_VAL_MONTH"),
    "test month in other digits": (
        ["data"],
        {"WEEK2_TEST_MONTH": f"{ARABIC_INDIC_2021}-03"},
        "WEEK2_TEST_MONTH",
    ),
    "threshold nan": (["data"], {"WEEK2_RMSE_THRESHOLD": "nan"}, "WEEK2_RMSE_THRESHOLD='nan'"),
    "threshold inf": (["data"], {"WEEK2_RMSE_THRESHOLD": "inf"}, "WEEK2_RMSE_THRESHOLD='inf'"),
    "threshold negative": (["data"], {"WEEK2_RMSE_THRESHOLD": "-1"}, "WEEK2_RMSE_THRESHOLD='-1'"),
    "seed in other digits": (["data"], {"WEEK2_SEED": "\u0663"}, "WEEK2_SEED"),
    "sample rows as a float": (["data"], {"WEEK2_SAMPLE_ROWS": "1e4"}, "WEEK2_SAMPLE_ROWS"),
    "no sweep trials": (["data"], {"WEEK2_SWEEP_TRIALS": "0"}, "WEEK2_SWEEP_TRIALS"),
    "server port 0": (["server-stop"], {"WEEK2_SERVER_PORT": "0"}, "WEEK2_SERVER_PORT=0"),
    "scenario-3 port too high": (
        ["scenario3-stop"],
        {"WEEK2_SCENARIO3_PORT": "65536"},
        "WEEK2_SCENARIO3_PORT",
    ),
    "s3 port a word": (["data"], {"WEEK2_S3_PORT": "http"}, "WEEK2_S3_PORT"),
    "postgres port negative": (["data"], {"WEEK2_POSTGRES_PORT": "-5"}, "WEEK2_POSTGRES_PORT"),
    "serve port too high": (["serve"], {"WEEK2_SERVE_PORT": "99999"}, "WEEK2_SERVE_PORT"),
    "ui port a word": (["ui"], {"WEEK2_UI_PORT": "abc"}, "WEEK2_UI_PORT"),
    "serve --port too high": (["serve", "--port", "70000"], STORE_THERE, "--port=70000 is not a TCP port"),
    "serve --port 0": (["serve", "--port", "0"], STORE_THERE, "--port=0 is not a TCP port"),
    "serve --port a word": (["serve", "--port", "http"], STORE_THERE, "--port='http' is not a whole number"),
    "score --output under a file": (
        ["score", "--output", "{file}/scored.parquet"],
        STORE_THERE,
        "--output={file}/scored.parquet: {file} is a file",
    ),
    "score --output a folder": (["score", "--output", "{tmp}"], STORE_THERE, "--output={tmp} is a folder"),
    "unknown data mode": (["data"], {"WEEK2_DATA": "offline"}, "WEEK2_DATA"),
    "unknown sweep backend": (["data"], {"WEEK2_SWEEP_BACKEND": "dask"}, "WEEK2_SWEEP_BACKEND"),
    "no sweep parallelism": (["data"], {"WEEK2_SWEEP_PARALLELISM": "0"}, "WEEK2_SWEEP_PARALLELISM"),
    "spark master with a space": (["data"], {"WEEK2_SPARK_MASTER": "local[2] "}, "WEEK2_SPARK_MASTER"),
    "model name with a space": (["data"], {"WEEK2_MODEL_NAME": " nyc"}, "WEEK2_MODEL_NAME"),
    "developer with a space": (["data"], {"WEEK2_DEVELOPER": "ada "}, "WEEK2_DEVELOPER"),
    "data folder is a file": (["data"], {"WEEK2_DATA_DIR": "{file}"}, "WEEK2_DATA_DIR"),
    "artifacts below a file": (["data"], {"WEEK2_ARTIFACTS": "{file}/artifacts"}, "WEEK2_ARTIFACTS"),
    "servers folder is a file": (["server"], {"WEEK2_SERVERS_DIR": "{file}"}, "WEEK2_SERVERS_DIR"),
    "mirror folder missing": (["data"], {"WEEK2_TLC_MIRROR": "{tmp}/no-mirror"}, "WEEK2_TLC_MIRROR"),
    "tracking URI misspelt": (
        ["data"],
        {"MLFLOW_TRACKING_URI": "sqllite:///mlflow.db"},
        "MLFLOW_TRACKING_URI",
    ),
    "tracking URI a folder name": (["course"], {"MLFLOW_TRACKING_URI": "mlruns"}, "MLFLOW_TRACKING_URI"),
    "tracking folder missing": (
        ["ui"],
        {"MLFLOW_TRACKING_URI": "sqlite:///{tmp}/missing/mlflow.db"},
        "MLFLOW_TRACKING_URI=sqlite:///{tmp}/missing/mlflow.db: the folder {tmp}/missing does not exist",
    ),
    "tracking server dead": (
        ["score"],
        {"MLFLOW_TRACKING_URI": "http://127.0.0.1:{dead}"},
        "MLFLOW_TRACKING_URI=http://127.0.0.1:{dead} does not answer",
    ),
    "class server workers beyond postgres": (
        ["class-server"],
        {"WEEK2_CLASS_WORKERS": "12"},
        "WEEK2_CLASS_WORKERS=12: that many workers",
    ),
    "class port a word": (["class-server-stop"], {"WEEK2_CLASS_PORT": "web"}, "WEEK2_CLASS_PORT"),
    "class size 0": (["class-enroll", "roster.csv"], {"WEEK2_CLASS_SIZE": "0"}, "WEEK2_CLASS_SIZE"),
    "class-server-stop option": (["class-server-stop", "--remove"], {}, "its only option is --delete"),
    "class-enroll without a roster": (["class-enroll"], {}, "class-enroll takes one roster"),
    "class roster a folder": (["class-enroll", "week2"], {}, "The roster week2 is not a file"),
}

MAKE_CASES = {
    "make data with a bad month": (["data", "MONTHS=2021-1"], {}, "month='2021-1'"),
    "make ui on port 0": (["ui"], {"WEEK2_UI_PORT": "0"}, "WEEK2_UI_PORT=0"),
    "make course with threshold nan": (["course"], {"WEEK2_RMSE_THRESHOLD": "nan"}, "WEEK2_RMSE_THRESHOLD"),
    "make serve with a dead store": (
        ["serve"],
        {"MLFLOW_TRACKING_URI": "sqlite:///{tmp}/gone/mlflow.db"},
        "does not exist",
    ),
    "make class-server-stop DELETE=yes": (
        ["class-server-stop", "DELETE=yes"],
        {},
        "DELETE=yes: write DELETE=1",
    ),
    "make class-enroll without ROSTER": (
        ["class-enroll"],
        {},
        "no roster: make class-enroll ROSTER=roster.csv",
    ),
}


@pytest.fixture
def sandbox(tmp_path):
    """(folder, environment): the course's folders and store in `folder`, which has one file in the way."""
    (tmp_path / "in-the-way").write_text("a file, not a folder")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEEK2_", "MLFLOW_"))}
    env.update(
        {
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}",
            "WEEK2_ARTIFACTS": str(tmp_path / "store" / "mlartifacts"),
            "WEEK2_DATA_DIR": str(tmp_path / "data"),
            "WEEK2_SERVERS_DIR": str(tmp_path / "servers"),
            "WEEK2_DATA": "sample",
        }
    )
    return tmp_path, env


def _fill(text: str, folder: Path, dead_port: int) -> str:
    return text.format(file=folder / "in-the-way", tmp=folder, dead=dead_port)


def _refused(command: list[str], changes: dict[str, str], says: str, sandbox) -> subprocess.CompletedProcess:
    """Run `command` with `changes`; assert one line naming `says`, status 2, and no file changed."""
    folder, env = sandbox
    dead_port = servers.free_ports(1)[0]
    env = {**env, **{name: _fill(value, folder, dead_port) for name, value in changes.items()}}
    command = [_fill(part, folder, dead_port) for part in command]
    before_sandbox, before_repo = tree_with_mtimes(folder), tree_with_mtimes(REPO_ROOT)
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < DEADLINE_SECONDS + 15  # + starting Python on a busy machine
    ours = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert result.returncode == 2, result.stderr
    assert len(ours) == 1 and ours[0].startswith("error: "), result.stderr
    assert _fill(says, folder, dead_port) in ours[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert tree_with_mtimes(folder) == before_sandbox
    assert tree_with_mtimes(REPO_ROOT) == before_repo
    return result


@pytest.mark.parametrize(("command", "changes", "says"), CASES.values(), ids=CASES.keys())
def test_python_m_week2_refuses_bad_input_in_one_line(command, changes, says, sandbox):
    _refused([sys.executable, "-m", "week2", *command], changes, says, sandbox)


@pytest.mark.skipif(os.geteuid() == 0, reason="as root every folder is writable: chmod proves nothing")
def test_an_unwritable_data_folder_is_refused(sandbox):
    folder, _ = sandbox
    locked = folder / "locked"
    locked.mkdir(mode=0o500)
    try:
        _refused(
            [sys.executable, "-m", "week2", "data"],
            {"WEEK2_DATA_DIR": "{tmp}/locked/data"},
            "not writable",
            sandbox,
        )
    finally:
        locked.chmod(0o700)


def _make_is_ready() -> bool:
    """True when `make` would not (re)install .venv first: a test must never run pip."""
    if not (REPO_ROOT / ".venv" / ".installed").is_file():
        return False
    return (
        subprocess.run(["make", "-q", ".venv/.installed"], cwd=REPO_ROOT, capture_output=True).returncode == 0
    )


@pytest.mark.skipif(not _make_is_ready(), reason="make would install .venv first")
@pytest.mark.parametrize(("target", "changes", "says"), MAKE_CASES.values(), ids=MAKE_CASES.keys())
def test_make_targets_refuse_bad_input_in_one_line(target, changes, says, sandbox):
    _refused(["make", "--no-print-directory", *target], changes, says, sandbox)
