"""Draw the course's diagrams into images/: the ML lifecycle and the three scenarios' architectures.

Run with `make images` (or `python images/draw_diagrams.py`). The pictures are plain matplotlib
boxes and arrows so that anyone can change them by editing this file, not a binary drawing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a script: never open a window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

IMAGES = Path(__file__).resolve().parent
COLORS = {"client": "#DCE9F7", "server": "#FCE5CD", "store": "#D9EAD3", "step": "#EEE6F6"}


def box(ax, x, y, text, kind, width=2.6, height=1.0):
    """A rounded box centred on (x, y); returns (x, y, width, height) for arrows."""
    patch = FancyBboxPatch(
        (x - width / 2, y - height / 2), width, height,
        boxstyle="round,pad=0.08,rounding_size=0.15", facecolor=COLORS[kind], edgecolor="#444", linewidth=1.2,
    )  # fmt: skip
    ax.add_patch(patch)
    ax.text(x, y, text, ha="center", va="center", fontsize=9.5, wrap=True)
    return x, y, width, height


def _edge(rect, towards, gap=0.06):
    """Where the line from the centre of `rect` towards a point leaves the box, plus a small gap."""
    x, y, width, height = rect
    dx, dy = towards[0] - x, towards[1] - y
    half_w, half_h = width / 2 + gap, height / 2 + gap
    t = min(half_w / abs(dx) if dx else float("inf"), half_h / abs(dy) if dy else float("inf"))
    return x + t * dx, y + t * dy


def arrow(ax, a, b, label="", both=False):
    """An arrow between the edges of boxes `a` and `b`, with an optional label at its middle."""
    start, end = _edge(a, b[:2]), _edge(b, a[:2])
    style = "<|-|>" if both else "-|>"
    ax.add_patch(
        FancyArrowPatch(
            start, end, arrowstyle=style, mutation_scale=14, color="#333", linewidth=1.2, shrinkA=0, shrinkB=0
        )
    )
    if label:
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        ax.text(mx, my + 0.22, label, ha="center", va="bottom", fontsize=8, color="#333",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})  # fmt: skip


def canvas(title, width=10, height=4.2):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    ax.set_title(title, fontsize=12, loc="left")
    return fig, ax


def lifecycle():
    fig, ax = canvas("The ML lifecycle, and where MLflow keeps track of it", 11, 3.6)
    steps = ["Get data", "Prepare\nfeatures", "Train &\ntune", "Evaluate &\ncompare", "Register &\npromote",
             "Deploy &\nserve", "Monitor"]  # fmt: skip
    centres = [box(ax, 0.9 + i * 1.55, 2.1, s, "step", width=1.1, height=1.0) for i, s in enumerate(steps)]
    for a, b in zip(centres, centres[1:], strict=False):
        arrow(ax, a, b)
    loop = {"arrowstyle": "-|>", "connectionstyle": "arc3,rad=-0.25", "color": "#888"}
    ax.annotate("", xy=(centres[0][0], 1.5), xytext=(centres[-1][0], 1.5), arrowprops=loop)
    ax.text(5.55, 0.35, "retrain when the data drifts", ha="center", fontsize=8.5, color="#555")
    ax.text(
        3.9,
        3.05,
        "MLflow tracking: params, metrics, datasets, artifacts",
        ha="center",
        fontsize=9,
        color="#1F4E79",
    )
    ax.text(
        7.8, 3.05, "MLflow models & registry: versions, aliases", ha="center", fontsize=9, color="#7F3F00"
    )
    return fig


def scenario(number, title, client, server, backend, artifacts):
    fig, ax = canvas(f"Scenario {number}: {title}", 11, 4.2)
    c = box(ax, 1.5, 2.1, client, "client", width=2.6, height=1.3)
    stores_x = 9.5
    if server:
        s = box(ax, 5.3, 2.1, server, "server", width=2.4, height=1.3)
        arrow(ax, c, s, "REST (HTTP)", both=True)
        source = s
    else:
        source = c
    b = box(ax, stores_x, 3.2, backend, "store", width=2.4, height=0.9)
    a = box(ax, stores_x, 1.0, artifacts, "store", width=2.4, height=0.9)
    arrow(ax, source, b, "runs, params,\nmetrics, registry", both=True)
    arrow(ax, source, a, "models, plots,\nfiles", both=True)
    return fig


FIGURES = {
    "ml-lifecycle.png": lifecycle,
    "scenario-1-local.png": lambda: scenario(
        1, "one data scientist, no server",
        "notebook / script\n(mlflow client)", None,
        "backend store\nSQLite file mlflow.db", "artifact store\nfolder mlartifacts/",
    ),
    "scenario-2-team-server.png": lambda: scenario(
        2, "a team sharing a local tracking server",
        "notebooks of the team\nMLFLOW_TRACKING_URI=\nhttp://127.0.0.1:5001",
        "mlflow server\n(proxies artifacts)",
        "backend store\nSQLite file", "artifact store\nlocal folder",
    ),
    "scenario-3-remote-server.png": lambda: scenario(
        3, "many data scientists, a remote server",
        "many users\nusername + password", "mlflow server\n--app-name basic-auth",
        "backend store\nPostgreSQL", "artifact store\nS3 bucket",
    ),
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    out = Path(argv[0]) if argv else IMAGES
    out.mkdir(parents=True, exist_ok=True)
    for name, draw in FIGURES.items():
        fig = draw()
        fig.savefig(out / name, dpi=130, bbox_inches="tight")
        plt.close(fig)
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
