"""Utilization figures: strength bars, similarity heatmaps, correlation scatter plots.

Figures are built on :class:`matplotlib.figure.Figure` directly (Agg canvas, no
pyplot state), so importing this module never changes the caller's backend; the
``*_figure`` functions return the figure (a notebook displays it), the ``plot_*``
functions write a PNG atomically (temporary file, then rename) and return its path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from colcompress.atomic import atomic_path
from colcompress.evaluation.utilization import UtilizationStats

StatsLike = UtilizationStats | Mapping


def _stats(stats: StatsLike) -> UtilizationStats:
    return stats if isinstance(stats, UtilizationStats) else UtilizationStats.from_dict(stats)


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` as PNG through a temporary file renamed into place.

    Returns
    -------
    Path
        ``path``; parent directories are created.
    """
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(path)


def draw_strength(ax: Axes, stats: StatsLike, title: str | None = None) -> None:
    """Bar chart of per-position matching strength on ``ax`` (CV and Gini in the title)."""
    s = _stats(stats)
    positions = np.arange(s.num_positions)
    ax.bar(positions, s.strength, width=1.0, color="tab:blue", linewidth=0)
    ax.set_xlim(-0.5, max(s.num_positions, 1) - 0.5)
    ax.set_xlabel("document position")
    ax.set_ylabel("matching strength")
    evenness = ", ".join(
        f"{name} {value:.{digits}f}"
        for name, value, digits in (("CV", s.cv, 1), ("Gini", s.gini, 3))
        if value is not None
    )
    ax.set_title("\n".join(t for t in (title, evenness) if t), fontsize="medium")


def draw_similarity(
    ax: Axes, stats: StatsLike, title: str | None = None, colorbar: bool = True
) -> AxesImage | None:
    """Heatmap of the inter-position cosine similarity on ``ax`` (colour scale -1..1).

    Returns
    -------
    matplotlib.image.AxesImage or None
        The image (for a shared colour bar), None when the run has no similarity matrix.
    """
    s = _stats(stats)
    if s.similarity is None:
        ax.text(0.5, 0.5, "no similarity matrix", ha="center", va="center")
        ax.set_axis_off()
        return None
    matrix = np.array(
        [[np.nan if v is None else v for v in row] for row in s.similarity], dtype=np.float64
    )
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xlabel("position j")
    ax.set_ylabel("position i")
    if title:
        ax.set_title(title, fontsize="medium")
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="mean cosine similarity", shrink=0.8)
    return image


def strength_figure(stats: StatsLike, title: str | None = None) -> Figure:
    """Figure with the per-position matching strength bars."""
    fig = _new_figure(6, 3.5)
    draw_strength(fig.add_subplot(), stats, title)
    return fig


def similarity_figure(stats: StatsLike, title: str | None = None) -> Figure:
    """Figure with the inter-position similarity heatmap."""
    fig = _new_figure(5, 4.5)
    draw_similarity(fig.add_subplot(), stats, title)
    return fig


def utilization_grid_figure(runs: Mapping[str, StatsLike]) -> Figure:
    """The paper's Figure 3: one column per run, strength bars above similarity heatmap.

    Parameters
    ----------
    runs : mapping of label -> UtilizationStats (or its ``to_dict()``)
        In column order.
    """
    if not runs:
        raise ValueError("utilization_grid_figure needs at least one run")
    n = len(runs)
    fig = _new_figure(3.2 * n + 0.8, 6.4)
    axes = fig.subplots(2, n, squeeze=False, height_ratios=[1, 1.3])
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
    """Scatter of ``ys`` against ``xs`` with dashed least-squares lines (Figure 4).

    The legend gives each series' Pearson r.

    Parameters
    ----------
    xs : sequence of float, length n
        E.g. 1/CV of each run.
    ys : sequence of float, length n, or mapping of series name -> sequence
        One metric, or several (one coloured series and regression line each).
    labels : sequence of str, length n, optional
        Run names written next to the points.
    """
    x = np.asarray(xs, dtype=np.float64)
    series = dict(ys) if isinstance(ys, Mapping) else {ylabel: ys}
    if labels is not None and len(labels) != x.size:
        raise ValueError(f"{len(labels)} labels for {x.size} points")
    fig = _new_figure(6, 4.5)
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
        for label, xi, yi in zip(labels or [], x, y, strict=False):  # labels checked above
            ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def plot_strength(stats: StatsLike, path: str | os.PathLike, title: str | None = None) -> Path:
    """Write the matching-strength bar chart to ``path`` (PNG); return the path."""
    return save_png(strength_figure(stats, title), path)


def plot_similarity(stats: StatsLike, path: str | os.PathLike, title: str | None = None) -> Path:
    """Write the inter-position similarity heatmap to ``path`` (PNG); return the path."""
    return save_png(similarity_figure(stats, title), path)


def plot_utilization_grid(runs: Mapping[str, StatsLike], path: str | os.PathLike) -> Path:
    """Write the Figure 3-style grid (see :func:`utilization_grid_figure`); return the path."""
    return save_png(utilization_grid_figure(runs), path)


def plot_correlation(
    xs: Sequence[float],
    ys: Sequence[float] | Mapping[str, Sequence[float]],
    labels: Sequence[str] | None,
    path: str | os.PathLike,
    xlabel: str = "1 / evenness",
    ylabel: str = "retrieval metric",
) -> Path:
    """Write the scatter plot with regression line(s) (see :func:`correlation_figure`)."""
    return save_png(correlation_figure(xs, ys, labels, xlabel, ylabel), path)
