"""Figures the notebooks show and log as run artifacts (`mlflow.log_figure`).

pyplot is imported inside each function: importing it builds a font cache in the home folder,
and importing a week2 module must write nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def duration_distribution(durations: pd.Series, title: str = "Trip duration") -> Figure:
    """Histogram of trip durations in minutes, with the 1..60 minute window the course keeps."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    clipped = durations.clip(lower=-5, upper=90)
    ax.hist(clipped, bins=95, range=(-5, 90), color="#4C72B0")
    for edge in (1, 60):
        ax.axvline(edge, color="#C44E52", linestyle="--", linewidth=1)
    kept = durations.between(1, 60).mean()
    ax.set(title=f"{title}: {kept:.1%} of trips within 1..60 min", xlabel="minutes", ylabel="trips")
    fig.tight_layout()
    return fig


def predicted_vs_actual(y_true, y_pred, title: str) -> Figure:
    """Scatter of predicted against actual duration, with the diagonal a perfect model would hit."""
    import matplotlib.pyplot as plt

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rng = np.random.default_rng(0)
    shown = rng.choice(len(y_true), size=min(len(y_true), 5000), replace=False)  # keep plots light
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(y_true[shown], y_pred[shown], s=3, alpha=0.3, color="#4C72B0")
    ax.plot([0, 60], [0, 60], color="#C44E52", linewidth=1)
    ax.set(title=title, xlabel="actual minutes", ylabel="predicted minutes", xlim=(0, 60), ylim=(0, 60))
    fig.tight_layout()
    return fig


def metric_bars(table: pd.DataFrame, metric: str, label: str, title: str) -> Figure:
    """Horizontal bars of `metric` per row of `table`, best (lowest) at the top."""
    import matplotlib.pyplot as plt

    ordered = table.sort_values(metric, ascending=False)
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(ordered) + 1.2))
    bars = ax.barh(ordered[label].astype(str), ordered[metric], color="#4C72B0")
    ax.bar_label(bars, fmt="%.3f", padding=3)
    ax.set(title=title, xlabel=metric)
    ax.margins(x=0.15)
    fig.tight_layout()
    return fig


def candidate_comparison(
    table: pd.DataFrame, label: str, columns: dict[str, str], limits: dict[str, float] | None = None
) -> Figure:
    """One bar panel per column of `table` (`columns` maps it to a title), lower is better in each.

    `limits` draws a dashed line in a column's panel, e.g. the validation gate's threshold.
    """
    import matplotlib.pyplot as plt

    size = (3.2 * len(columns), 0.45 * len(table) + 1.6)
    fig, axes = plt.subplots(1, len(columns), figsize=size, sharey=True)
    for ax, (column, title) in zip(np.atleast_1d(axes), columns.items(), strict=True):
        bars = ax.barh(table[label].astype(str), table[column], color="#4C72B0")
        ax.bar_label(bars, fmt="%.3g", padding=3)
        if limits and column in limits:
            ax.axvline(limits[column], color="#C44E52", linestyle="--", linewidth=1)
        ax.set(title=title)
        ax.margins(x=0.25)
    np.atleast_1d(axes)[0].invert_yaxis()  # the first row of the table on top
    fig.tight_layout()
    return fig


def sweep_progress(losses, title: str = "Sweep: validation RMSE per trial") -> Figure:
    """Each trial's loss in the order TPE tried it, with the best so far as a step line."""
    import matplotlib.pyplot as plt

    losses = np.asarray(losses, dtype=float)
    trials = np.arange(1, len(losses) + 1)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.scatter(trials, losses, s=18, color="#4C72B0", label="trial")
    ax.step(trials, np.minimum.accumulate(losses), where="post", color="#C44E52", label="best so far")
    ax.set(title=title, xlabel="trial", ylabel="validation RMSE (min)")
    ax.legend()
    fig.tight_layout()
    return fig


def loss_against_params(
    table: pd.DataFrame, params: list[str], loss: str, log_scale: tuple[str, ...] = ()
) -> Figure:
    """One scatter panel per parameter: `loss` against the parameter's value, best trial in red.

    `table` has one row per trial; parameters in `log_scale` get a logarithmic axis.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(params), figsize=(3.3 * len(params), 3.2), sharey=True)
    best = table[loss].idxmin()
    for ax, param in zip(np.atleast_1d(axes), params, strict=True):
        ax.scatter(table[param], table[loss], s=16, color="#4C72B0")
        ax.scatter(table.loc[best, param], table.loc[best, loss], s=40, color="#C44E52", label="best")
        if param in log_scale:
            ax.set_xscale("log")
        ax.set(xlabel=param)
    np.atleast_1d(axes)[0].set(ylabel=loss)
    np.atleast_1d(axes)[0].legend()
    fig.tight_layout()
    return fig
