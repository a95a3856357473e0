"""One run's utilization figures: matching-strength bars, inter-position similarity.

Figures are :class:`matplotlib.figure.Figure` objects on an Agg canvas (no pyplot
state, so importing this module leaves the caller's backend alone). Figures across
runs are in :mod:`colcompress.analysis.plots`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from colcompress.atomic import atomic_path
from colcompress.evaluation.utilization import UtilizationStats

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.image import AxesImage


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` as PNG (parents created, atomically); return ``path``."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    return Path(path)


def draw_strength(ax: Axes, stats: UtilizationStats, title: str | None = None) -> None:
    """Bar chart of per-position matching strength on ``ax`` (CV and Gini in the title)."""
    ax.bar(np.arange(stats.num_positions), stats.strength, width=1.0, color="tab:blue", linewidth=0)
    ax.set_xlim(-0.5, max(stats.num_positions, 1) - 0.5)
    ax.set_xlabel("document position")
    ax.set_ylabel("matching strength")
    evenness = ", ".join(
        f"{name} {value:.{digits}f}"
        for name, value, digits in (("CV", stats.cv, 1), ("Gini", stats.gini, 3))
        if value is not None
    )
    ax.set_title("\n".join(t for t in (title, evenness) if t), fontsize="medium")


def draw_similarity(ax: Axes, stats: UtilizationStats, colorbar: bool = True) -> AxesImage | None:
    """Heatmap of the inter-position cosine similarity on ``ax`` (colour scale -1..1).

    Returns the image (for a shared colour bar); None when the run has no similarity matrix.
    """
    if stats.similarity is None:
        ax.text(0.5, 0.5, "no similarity matrix", ha="center", va="center")
        ax.set_axis_off()
        return None
    matrix = np.array(stats.similarity, dtype=np.float64)  # None (no document): NaN
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xlabel("position j")
    ax.set_ylabel("position i")
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="mean cosine similarity", shrink=0.8)
    return image


def plot_strength(
    stats: UtilizationStats, path: str | os.PathLike, title: str | None = None
) -> Path:
    """Write the matching-strength bar chart to ``path`` (PNG); return the path."""
    fig = new_figure(6, 3.5)
    draw_strength(fig.add_subplot(), stats, title)
    return save_png(fig, path)


def plot_similarity(stats: UtilizationStats, path: str | os.PathLike) -> Path:
    """Write the inter-position similarity heatmap to ``path`` (PNG); return the path."""
    fig = new_figure(5, 4.5)
    draw_similarity(fig.add_subplot(), stats)
    return save_png(fig, path)
