"""Draw the course's diagrams into images/: the ML lifecycle and the three scenarios' architectures.

Run with `make images` (or `python images/draw_diagrams.py [folder]`). The pictures are plain
matplotlib boxes and arrows so that anyone can change them by editing this file, not a binary drawing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a script: never open a window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402
from PIL import Image  # noqa: E402

IMAGES = Path(__file__).resolve().parent
DPI = 100  # 1 unit of the drawings is 1 inch, i.e. 100 pixels: sharp enough, small files
COLORS = {"client": "#DCE9F7", "server": "#FCE5CD", "store": "#D9EAD3", "step": "#EEE6F6"}
INK, GREY = "#333333", "#666666"


def box(ax, x, y, text, kind, width=2.6, height=1.0, stacked=False):
    """A rounded box centred on (x, y), drawn as a pile of three if `stacked`; returns its rectangle."""
    for offset in (0.16, 0.08, 0.0) if stacked else (0.0,):
        patch = FancyBboxPatch(
            (x - width / 2 + offset, y - height / 2 + offset), width, height,
            boxstyle="round,pad=0.06,rounding_size=0.12", facecolor=COLORS[kind], edgecolor="#444", lw=1.2,
        )  # fmt: skip
        ax.add_patch(patch)
    ax.text(x, y, text, ha="center", va="center", fontsize=10, linespacing=1.4)
    return x, y, width, height


def label(ax, x, y, text, color=INK, va="center"):
    """Small text on a white patch, so it can sit on a line and stay readable."""
    ax.text(x, y, text, ha="center", va=va, fontsize=9, color=color, linespacing=1.3,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})  # fmt: skip


def link(ax, x0, x1, y, text):
    """A horizontal two-way arrow from x0 to x1 at height y, labelled above its middle."""
    ax.add_patch(FancyArrowPatch((x0, y), (x1, y), arrowstyle="<|-|>", mutation_scale=14, color=INK, lw=1.3))
    label(ax, (x0 + x1) / 2, y + 0.1, text, va="bottom")


def canvas(title, width, height):
    fig, ax = plt.subplots(figsize=(width, height))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    ax.set_title(title, fontsize=13, loc="left", fontweight="bold")
    return fig, ax


def bracket(ax, left, right, y, text, color):
    """A bracket over the boxes from `left` to `right`, naming the part of MLflow that covers them."""
    x0, x1 = left[0] - left[2] / 2, right[0] + right[2] / 2
    ax.plot([x0, x0, x1, x1], [y - 0.15, y, y, y - 0.15], color=color, linewidth=1.5)
    ax.text((x0 + x1) / 2, y + 0.12, text, ha="center", va="bottom", fontsize=10, color=color)


def lifecycle():
    fig, ax = canvas("The ML lifecycle, and the parts of it MLflow keeps track of", 11, 3.2)
    steps = ["Get data", "Prepare\nfeatures", "Train &\ntune", "Evaluate &\ncompare", "Register &\npromote",
             "Deploy &\nserve", "Monitor"]  # fmt: skip
    boxes = [box(ax, 0.75 + i * 1.58, 1.5, s, "step", width=1.2, height=0.95) for i, s in enumerate(steps)]
    for (x, y, width, _), (next_x, *_) in zip(boxes, boxes[1:], strict=False):
        start, end = (x + width / 2 + 0.08, y), (next_x - width / 2 - 0.08, y)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=13, color=INK))
    tracking = "MLflow Tracking: params, metrics, datasets, plots, models"
    bracket(ax, boxes[0], boxes[3], 2.35, tracking, "#1F4E79")
    bracket(ax, boxes[4], boxes[5], 2.35, "MLflow Model Registry:\nversions, aliases, serving", "#7F3F00")
    # The loop back: monitoring finds drift, and the cycle starts again with fresh data.
    loop = {"arrowstyle": "-|>", "connectionstyle": "arc3,rad=-0.12", "color": GREY, "linewidth": 1.2}
    ax.annotate("", xy=(boxes[0][0], 0.9), xytext=(boxes[-1][0], 0.9), arrowprops=loop)
    label(ax, (boxes[0][0] + boxes[-1][0]) / 2, 0.33, "retrain when the data drifts", color=GREY)
    return fig


def scenario(number, title, client, server, backend, artifacts, links, note):
    """Clients on the left, the tracking server (if any) in the middle, the two stores on the right.

    `links` labels the arrows: (client to server,) backend store, artifact store.
    """
    fig, ax = canvas(f"Scenario {number}: {title}", 11, 4.4)
    store_y, artifact_y, middle_y, gap = 3.4, 1.3, 2.35, 0.12
    # Without a server the client library itself reaches both stores, so its box spans their height.
    client_height = 1.6 if server else 3.0
    box(ax, 1.55, middle_y, client, "client", width=2.8, height=client_height, stacked=number > 1)
    client_right = 1.55 + 2.8 / 2 + (0.16 if number > 1 else 0) + gap
    if server:
        box(ax, 5.5, middle_y, server, "server", width=2.4, height=3.0)
        link(ax, client_right, 4.3 - gap, middle_y, links[0])
        links, source_right = links[1:], 6.7 + gap
    else:
        source_right = client_right
    box(ax, 9.55, store_y, backend, "store", width=2.5, height=1.0)
    box(ax, 9.55, artifact_y, artifacts, "store", width=2.5, height=1.0)
    link(ax, source_right, 8.3 - gap, store_y, links[0])
    link(ax, source_right, 8.3 - gap, artifact_y, links[1])
    ax.text(0.1, 0.25, note, ha="left", va="center", fontsize=9.5, color=GREY, style="italic")
    return fig


FIGURES = {
    "ml-lifecycle.png": lifecycle,
    "scenario-1-local.png": lambda: scenario(
        1, "one data scientist, no tracking server",
        "notebook or script\n(mlflow library)\nMLFLOW_TRACKING_URI=\nsqlite:///…/mlflow.db", None,
        "backend store: SQLite file\nmlflow.db", "artifact store: local folder\nmlartifacts/",
        ["runs, params, metrics,\nregistry", "models, plots, files"],
        "No server: the mlflow library writes the SQLite file and the artifact folder itself; "
        "`mlflow ui` only reads them.",
    ),
    "scenario-2-team-server.png": lambda: scenario(
        2, "a team sharing one tracking server",
        "the team's notebooks\nMLFLOW_TRACKING_URI=\nhttp://127.0.0.1:5001",
        "mlflow server\n127.0.0.1:5001\n--artifacts-destination\n./mlartifacts",
        "backend store: SQLite file\nmlflow.db", "artifact store: local folder\n./mlartifacts",
        ["REST\nover HTTP", "runs, params,\nmetrics, registry", "models, plots,\nfiles"],
        "Artifacts go through the server (mlflow-artifacts:/ URIs): the clients only talk HTTP "
        "and never open the stores.",
    ),
    "scenario-3-remote-server.png": lambda: scenario(
        3, "many data scientists, a remote server with authentication",
        "data scientists\nMLFLOW_TRACKING_USERNAME\nMLFLOW_TRACKING_PASSWORD",
        "mlflow server\n--app-name basic-auth\n--artifacts-destination\ns3://bucket",
        "backend store: PostgreSQL\nruns, registry, users", "artifact store:\nS3-compatible bucket",
        ["HTTP +\nbasic auth", "SQL", "S3 API"],
        "Only the server holds the database password and the S3 keys: clients need no S3 credentials.",
    ),
}  # fmt: skip


def shrink_png(path: Path) -> None:
    """Rewrite `path` with a 256-colour palette, optimised: a third of the size, no visible loss."""
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    out = Path(argv[0]) if argv else IMAGES
    out.mkdir(parents=True, exist_ok=True)
    for name, draw in FIGURES.items():
        fig = draw()
        fig.savefig(out / name, dpi=DPI)
        plt.close(fig)
        shrink_png(out / name)
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
