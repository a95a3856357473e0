"""Figures across runs: the utilization grid (Figure 3) and correlation scatter plots
(Figure 4) of Qin et al. (2026), and the matching strength of uncompressed image runs
over their patch grid; one run's figures, and :func:`save_png`, are
:mod:`colcompress.evaluation.plots`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from colcompress.analysis.records import AnalysisError, RunRecord
from colcompress.evaluation.plots import draw_similarity, draw_strength, new_figure
from colcompress.evaluation.utilization import UtilizationStats

IMAGE_MODEL = "colcompress.models.image_colbert.ImageColBERT"
NO_COMPRESSION = "colcompress.compressors.base.NoCompression"


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


def patch_strength(record: RunRecord) -> tuple[np.ndarray, np.ndarray]:
    """An uncompressed image run's matching strength laid out on its patch grid.

    A vision tower's visual tokens are its leading tokens (CLIP's class token; none
    for SigLIP) followed by the ``G x G`` patches in row-major order (the patch
    convolution's output flattened), ``G = image_size // patch_size``. Uncompressed,
    the document positions are these tokens. ``G`` is read from the run's
    ``model.vision_config``; a run with a pretrained tower (``model.vision_backbone``)
    records no image size, and ``G`` is then the square root of the number of
    positions, or of one less (a class token).

    Parameters
    ----------
    record : RunRecord
        A run of ``model._target_`` ImageColBERT with ``compressor=none`` and
        utilization statistics of P positions.

    Returns
    -------
    grid : ndarray of shape [G, G]
        ``strength[c + r * G + x]`` at row r (top to bottom), column x (left to right).
    leading : ndarray of shape [c]
        The strength of the c = P - G^2 leading tokens (c is 0 or 1).

    Raises
    ------
    AnalysisError
        Naming the run: it is not an image run, its compressor's output positions are
        not patch positions (every compressor but ``none`` pools, clusters, resizes,
        prunes and compacts, or replaces the tokens), it has no utilization statistics,
        or P does not fit a patch grid.
    """
    model = record.config.get("model") or {}
    if model.get("_target_") != IMAGE_MODEL:
        raise AnalysisError(
            f"{record.path}: model {model.get('_target_')!r} is not {IMAGE_MODEL}; only "
            "image documents have a patch grid"
        )
    compressor = (record.config.get("compressor") or {}).get("_target_")
    if compressor != NO_COMPRESSION:
        raise AnalysisError(
            f"{record.path}: compressor {record.method!r} ({compressor}) indexes output "
            "slots whose positions are not patch positions; the patch grid needs an "
            "uncompressed run (compressor=none)"
        )
    strength = np.asarray(record.utilization.strength, dtype=np.float64)
    positions = strength.size
    vision = model.get("vision_config") or {}
    if "image_size" in vision and "patch_size" in vision:
        side = int(vision["image_size"]) // int(vision["patch_size"])
        source = (
            f"model.vision_config (image_size {vision['image_size']}, "
            f"patch_size {vision['patch_size']})"
        )
    else:
        side = math.isqrt(positions)
        side = side if side * side == positions else math.isqrt(max(positions - 1, 0))
        source = "the number of positions"
    leading = positions - side * side
    if side < 1 or leading not in (0, 1):
        raise AnalysisError(
            f"{record.path}: {positions} positions do not fit a {side}x{side} patch grid "
            f"from {source}: expected {side * side} patches, after at most one class token"
        )
    return strength[leading:].reshape(side, side), strength[:leading]


def patch_grid_figure(runs: Mapping[str, RunRecord]) -> Figure:
    """One heatmap per run (label -> record, in panel order) of its matching strength
    over the patch grid (:func:`patch_strength`), the class token's strength in the
    title, one colour scale and colour bar for all panels."""
    if not runs:
        raise ValueError("patch_grid_figure needs at least one run")
    grids = {label: patch_strength(record) for label, record in runs.items()}
    low = min(float(grid.min()) for grid, _ in grids.values())
    high = max(float(grid.max()) for grid, _ in grids.values())
    fig = new_figure(3.6 * len(grids) + 1.0, 4.0)
    axes = fig.subplots(1, len(grids), squeeze=False)[0]
    for ax, (label, (grid, leading)) in zip(axes, grids.items(), strict=True):
        image = ax.imshow(grid, cmap="viridis", vmin=low, vmax=high, interpolation="nearest")
        side = grid.shape[0]
        title = f"{label}\n{side}x{side} patches"
        if leading.size:
            title += f", class token {leading[0]:.3g}"
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("patch column")
        ax.set_ylabel("patch row")
    fig.colorbar(image, ax=axes.tolist(), label="matching strength", shrink=0.8)
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
