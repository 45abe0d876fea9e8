"""Set-up where students work: `make` without Python 3.11, `make lab` as root, Codespaces, CI, pre-commit.

The Makefile's choice of Python is tried with a PATH of fakes (no download can happen here): a
`python3.11`, a `python3` or a `uv` that record what they were asked and create nothing but a fake
.venv in a temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import requests
import yaml
from conftest import REPO_ROOT

from week2.config import UI_PORT_DEFAULT
from week2.machinery import servers

MAKE = shutil.which("make") or "make"
BIN = Path(sys.executable).parent
# What the Makefile's recipes call besides the Python it chooses (and what the fakes call).
TOOLS = ("grep", "awk", "touch", "mkdir", "cp", "basename")

# A fake interpreter: logs its arguments; answers the Makefile's "is this 3.11?" with $FAKE_STATUS;
# `-m venv DIR` makes DIR/bin/python a copy of itself (always 3.11 there).
FAKE_PYTHON = """#!/bin/bash
echo "$(basename "$0") $*" >> "$FAKE_LOG"
if [ "$1" = -c ] && [[ "$2" == *version_info* ]]; then exit {status}; fi
if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && cp "$VENV_PYTHON" "$3/bin/python"; fi
"""
FAKE_UV = """#!/bin/bash
echo "uv $*" >> "$FAKE_LOG"
[ "$1" = venv ] || exit 2
mkdir -p "${@: -1}/bin" && cp "$VENV_PYTHON" "${@: -1}/bin/python"
"""


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def fake_path(tmp_path: Path, **programs: str) -> dict[str, str]:
    """The environment of a machine whose PATH holds only `programs` (name → script) and TOOLS."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in TOOLS:
        (folder / tool).symlink_to(shutil.which(tool))
    for name, text in programs.items():
        _script(folder / name, text)
    return {
        "PATH": str(folder),
        "HOME": str(tmp_path),
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "VENV_PYTHON": str(_script(tmp_path / "venv-python", FAKE_PYTHON.format(status=0))),
    }


def make(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MAKE, "--no-print-directory", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def calls(env: dict[str, str]) -> list[str]:
    log = Path(env["FAKE_LOG"])
    return log.read_text().splitlines() if log.exists() else []


PYTHON_311 = FAKE_PYTHON.format(status=0)
NOT_311 = FAKE_PYTHON.format(status=1)  # e.g. Ubuntu 24.04's python3, a 3.12


@pytest.mark.parametrize(
    ("programs", "creator"),
    [
        ({"python3.11": PYTHON_311, "python3": NOT_311, "uv": FAKE_UV}, "python3.11 -m venv"),
        ({"python3": PYTHON_311, "uv": FAKE_UV}, "python3 -m venv"),
        ({"python3": NOT_311, "uv": FAKE_UV}, "uv venv --quiet --seed --python 3.11"),
    ],
    ids=["python3.11", "python3-is-3.11", "uv-managed"],
)
def test_make_creates_the_venv_with_the_first_python_311_it_finds_else_uvs(tmp_path, programs, creator):
    env = fake_path(tmp_path, **programs)
    venv = tmp_path / "venv"

    done = make(env, "venv", f"VENV={venv}")

    assert done.returncode == 0, done.stdout + done.stderr
    created = [call for call in calls(env) if "venv" in call.split()[:3]]
    assert created == [f"{creator} {venv}"]
    assert "python -m pip install --quiet --disable-pip-version-check -r requirements.txt" in calls(env)
    assert (venv / ".installed").is_file()


@pytest.mark.parametrize(
    ("programs", "argument", "says"),
    [
        ({"python3": NOT_311}, None, "error: no Python 3.11 found: install uv"),
        (
            {"python3": NOT_311, "uv": FAKE_UV},
            "python3",
            "error: PYTHON=python3 is not Python 3.11: install uv",
        ),
    ],
    ids=["none-and-no-uv", "PYTHON-given-is-not-3.11"],
)
def test_without_python_311_make_says_in_one_line_how_to_get_it_and_creates_nothing(
    tmp_path, programs, argument, says
):
    env = fake_path(tmp_path, **programs)
    venv = tmp_path / "venv"
    chosen = [f"PYTHON={argument}"] if argument else []

    done = make(env, "venv", f"VENV={venv}", *chosen)

    assert done.returncode != 0
    assert len(done.stdout.splitlines()) == 1, done.stdout
    line = done.stdout.strip()
    assert line.startswith(says), line
    assert "uv" in line and "make PYTHON=/path/to/python3.11" in line
    assert not venv.exists()
    # `make` alone still lists the targets, and ends with the same line.
    helped = make(env, f"VENV={venv}", *chosen)
    assert helped.returncode == 0
    assert "make course" in helped.stdout and helped.stdout.splitlines()[-1] == line


def test_make_alone_with_python_311_lists_the_targets_and_nothing_more(tmp_path):
    env = fake_path(tmp_path, python3=PYTHON_311)
    done = make(env, f"VENV={tmp_path / 'venv'}")
    assert done.returncode == 0
    targets = re.findall(r"^  make (\S+)", done.stdout, flags=re.MULTILINE)
    assert {"venv", "course", "test", "test-fast", "ui", "lab", "lint"} <= set(targets)
    assert "error" not in done.stdout
    assert calls(env) == ["python3 -c import sys; sys.exit(sys.version_info[:2] != (3, 11))"]


@pytest.mark.servers
def test_make_lab_serves_jupyterlab_on_notebooks_also_for_root(tmp_path):
    (port,) = servers.free_ports(1)
    token = secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_PORT": str(port),
        "JUPYTER_TOKEN": token,
        "BROWSER": "true",  # a browser "opened" by running `true`
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    venv = Path(sys.prefix)
    # -o: take the venv as installed (it is the one running this test), only start the lab.
    command = [MAKE, "-s", "-o", str(venv / ".installed"), "lab", f"VENV={venv}"]
    lab = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        status = _wait_for(f"{url}/api/status", token, lab)
        assert status.status_code == 200, status.text
        page = requests.get(f"{url}/lab", params={"token": token}, timeout=10)
        assert page.status_code == 200 and "JupyterLab" in page.text
        contents = requests.get(f"{url}/api/contents", params={"token": token}, timeout=10).json()
        assert "01-duration-prediction.ipynb" in {item["name"] for item in contents["content"]}
        assert requests.get(f"{url}/api/status", timeout=10).status_code == 403  # the token is required
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        try:
            output = lab.communicate(timeout=30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
            output = lab.communicate()[0].decode(errors="replace")
    assert "Running as root is not recommended" not in output
    assert servers.port_is_free(port)


def _wait_for(url: str, token: str, process: subprocess.Popen, seconds: float = 90) -> requests.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"make lab exited with {process.returncode}: {process.stdout.read().decode()}")
        try:
            return requests.get(url, params={"token": token}, timeout=5)
        except requests.ConnectionError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer on {url} within {seconds} s")


def _jsonc(path: Path) -> dict:
    """devcontainer.json is JSON with // comment lines."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("//")]
    return json.loads("\n".join(lines))


def test_codespaces_build_the_venv_with_python_311_and_forward_the_ui_and_the_lab():
    devcontainer = _jsonc(REPO_ROOT / ".devcontainer" / "devcontainer.json")
    assert re.search(r":1-3\.11-", devcontainer["image"]), devcontainer["image"]
    assert devcontainer["postCreateCommand"] == "make venv"
    assert devcontainer["forwardPorts"] == [UI_PORT_DEFAULT, 8888]
    labels = {port: attributes["label"] for port, attributes in devcontainer["portsAttributes"].items()}
    assert "make ui" in labels[str(UI_PORT_DEFAULT)] and "make lab" in labels["8888"]
    # The forwarded UI answers under the codespace's host name, beside localhost.
    allowed = devcontainer["remoteEnv"]["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert {"localhost:*", "127.0.0.1:*", "*.app.github.dev"} <= set(allowed)


WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"


def _actionlint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "actionlint"), "-oneline", *map(str, paths)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_ci_workflow_runs_ci_run_on_ubuntu_with_python_311_and_passes_actionlint(tmp_path):
    workflow = yaml.safe_load(WORKFLOW.read_text())
    (job,) = workflow["jobs"].values()
    assert job["runs-on"].startswith("ubuntu-")
    python = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python@"))
    assert python["with"]["python-version"] == "3.11"
    assert job["steps"][-1]["run"] == "bash .ci/run"

    linted = _actionlint(WORKFLOW)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    # ... and actionlint does look: the same workflow with a typo in an expression fails.
    broken = tmp_path / "ci.yml"
    broken.write_text(WORKFLOW.read_text().replace("${{ github.ref }}", "${{ github.reff }}"))
    assert _actionlint(broken).returncode == 1


def test_pre_commit_runs_ruff_and_strips_notebook_outputs_offline(tmp_path):
    config = REPO_ROOT / ".pre-commit-config.yaml"
    hooks = [hook for repo in yaml.safe_load(config.read_text())["repos"] for hook in repo["hooks"]]
    assert [hook["id"] for hook in hooks] == ["ruff-check", "ruff-format", "nbstripout"]
    assert all(hook["language"] == "system" for hook in hooks)  # the venv's tools: no download

    # A repository with the course's config, an executed notebook and a badly formatted script.
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    for name in (".pre-commit-config.yaml", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, repo / name)
    (repo / ".venv").symlink_to(sys.prefix)
    notebook = json.loads((REPO_ROOT / "notebooks" / "01-duration-prediction.ipynb").read_text())
    code = next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")
    code["execution_count"] = 1
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["/home/me/secret/path\n"]}]
    (repo / "notebooks" / "01.ipynb").write_text(json.dumps(notebook, indent=1) + "\n")
    (repo / "script.py").write_text("x = {'a':1}\n")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "GIT_CONFIG_GLOBAL": os.devnull}
    for command in (["git", "init", "-q"], ["git", "add", "."]):
        subprocess.run(command, cwd=repo, env=env, check=True)
    pre_commit = [str(BIN / "pre-commit"), "run", "--all-files"]

    first = subprocess.run(pre_commit, cwd=repo, env=env, capture_output=True, text=True, timeout=120)

    assert first.returncode == 1, first.stdout  # files were changed: the commit would stop
    cleaned = json.loads((repo / "notebooks" / "01.ipynb").read_text())
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in cleaned["cells"])
    assert (repo / "script.py").read_text() == 'x = {"a": 1}\n'
    subprocess.run(["git", "add", "."], cwd=repo, env=env, check=True)
    second = subprocess.run(pre_commit, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout


def test_make_test_fast_leaves_out_only_registered_markers():
    pytest_config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    registered = {line.split(":")[0] for line in pytest_config["markers"]}
    assert pytest_config["strict_markers"] is True
    selection = re.search(r"^FAST_TESTS := (.+)$", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE)[1]
    left_out = set(re.findall(r"not (\w+)", selection))
    assert left_out == {"servers", "browser", "spark", "real_data", "slow"} <= registered
