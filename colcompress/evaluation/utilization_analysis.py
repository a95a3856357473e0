"""The utilization analysis of an evaluation run: :func:`utilization_from_vectors` on
the relevant pairs of the evaluated collection, and its two figures."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from colcompress.evaluation.plots import plot_similarity, plot_strength
from colcompress.evaluation.utilization import (
    DEFAULT_SIMILARITY_POSITIONS,
    utilization_from_vectors,
)

if TYPE_CHECKING:
    from colcompress.data.beir import BeirData
    from colcompress.evaluation.encode import Encoded
    from colcompress.models.colbert import ColBERT


@dataclass
class UtilizationAnalysis:
    """Analysis hook for ``evaluate_model(..., analyses=[UtilizationAnalysis(...)])``.

    Called as ``f(model, data, docs, queries)`` after the evaluation pass, with
    ``docs.vectors`` in ``data.corpus`` order and ``queries.vectors`` in ``data.queries``
    order; the relevant pairs are the qrels > 0. Positions are row indices of the
    indexed vectors. A fixed budget fixes the positions (slots no relevant document
    fills count, with strength 0, against evenness); without one they grow with the
    data. ColBERT_P scoring (``model.relu``) is followed.

    Attributes
    ----------
    similarity_positions : int, optional
        Size of the similarity matrix (default: the compressor's budget, else 32).
    similarity_sample, batch_size, device
        As in :func:`utilization_from_vectors`.
    output_dir : path, optional
        Also write ``utilization_strength.png`` and ``utilization_similarity.png`` here.
    """

    similarity_positions: int | None = None
    similarity_sample: int | None = None
    batch_size: int = 64
    device: torch.device | str = "cpu"
    output_dir: str | os.PathLike | None = None

    def __call__(
        self, model: ColBERT, data: BeirData, docs: Encoded, queries: Encoded
    ) -> dict[str, dict]:
        """Return ``{"utilization": UtilizationStats.to_dict()}`` (and write PNGs)."""
        doc_index = {d: i for i, d in enumerate(data.corpus)}
        pairs = [
            (qi, doc_index[d])
            for qi, q in enumerate(data.queries)
            for d, rel in data.qrels.get(q, {}).items()
            if rel > 0 and d in doc_index
        ]
        budget = getattr(model.compressor, "budget", None)
        if getattr(model.compressor, "budget_mode", "fixed") != "fixed":
            budget = None  # per-document budgets: positions grow with the documents
        stats = utilization_from_vectors(
            queries.vectors,
            docs.vectors,
            pairs,
            num_positions=budget,
            similarity_positions=self.similarity_positions
            or budget
            or DEFAULT_SIMILARITY_POSITIONS,
            similarity_sample=self.similarity_sample,
            relu=bool(getattr(model, "relu", False)),
            batch_size=self.batch_size,
            device=self.device,
        )
        if self.output_dir is not None:
            plot_strength(stats, Path(self.output_dir) / "utilization_strength.png")
            plot_similarity(stats, Path(self.output_dir) / "utilization_similarity.png")
        return {"utilization": stats.to_dict()}
