"""Figures across runs: the utilization grid (Figure 3) and correlation scatter plots
(Figure 4) of Qin et al. (2026); one run's figures, and :func:`save_png`, are
:mod:`colcompress.evaluation.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from colcompress.evaluation.plots import draw_similarity, draw_strength, new_figure
from colcompress.evaluation.utilization import UtilizationStats


def utilization_grid_figure(runs: Mapping[str, UtilizationStats]) -> Figure:
    """One column per run (label -> stats, in column order): strength bars above the
    similarity heatmap, one shared colour bar."""
    if not runs:
        raise ValueError("utilization_grid_figure needs at least one run")
    fig = new_figure(3.2 * len(runs) + 0.8, 6.4)
    axes = fig.subplots(2, len(runs), squeeze=False, height_ratios=[1, 1.3])
    image = None
    for col, (label, stats) in enumerate(runs.items()):
        draw_strength(axes[0, col], stats, label)
        image = draw_similarity(axes[1, col], stats, colorbar=False) or image
        if col:
            axes[0, col].set_ylabel("")
            axes[1, col].set_ylabel("")
    if image is not None:
        fig.colorbar(image, ax=axes[1, :].tolist(), label="mean cosine similarity", shrink=0.8)
    return fig


def correlation_figure(
    xs: Sequence[float],
    ys: Sequence[float] | Mapping[str, Sequence[float]],
    labels: Sequence[str] | None = None,
    xlabel: str = "1 / evenness",
    ylabel: str = "retrieval metric",
) -> Figure:
    """Scatter of ``ys`` (one series, or name -> series) against ``xs[n]``, dashed
    least-squares lines, each series' Pearson r in the legend, ``labels[n]`` at the points.
    """
    x = np.asarray(xs, dtype=np.float64)
    series = dict(ys) if isinstance(ys, Mapping) else {ylabel: ys}
    if labels is not None and len(labels) != x.size:
        raise ValueError(f"{len(labels)} labels for {x.size} points")
    fig = new_figure(6, 4.5)
    ax = fig.add_subplot()
    for name, values in series.items():
        y = np.asarray(values, dtype=np.float64)
        if y.shape != x.shape:
            raise ValueError(f"series {name!r} has {y.size} values for {x.size} points")
        fit = x.size >= 2 and np.ptp(x) > 0 and np.ptp(y) > 0
        label = f"{name} (r = {np.corrcoef(x, y)[0, 1]:.3f})" if fit else name
        points = ax.scatter(x, y, label=label, zorder=3)
        if fit:
            slope, intercept = np.polyfit(x, y, 1)
            grid = np.linspace(x.min(), x.max(), 50)
            ax.plot(grid, slope * grid + intercept, "--", color=points.get_facecolor()[0])
        for label, xi, yi in zip(labels or [], x, y):
            ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig
