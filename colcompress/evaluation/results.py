"""A run's ``results.json``: its writer, versions and default row label."""

from __future__ import annotations

import json
import math
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from colcompress.atomic import write_text_atomic

PACKAGES = ("colcompress", "torch", "fast-plaid", "transformers", "lightning", "hydra-core", "ranx")


def versions() -> dict[str, str]:
    """Versions of Python and the packages a result depends on."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_label(method: str, budget: int | None, train_budget: int | None = None) -> str:
    """The row label of a run whose config sets no ``label``.

    ``<method>@<budget>`` (just ``<method>`` without a fixed budget), followed by
    `` (train <B>)`` when the index budget differs from the training budget ``B``.
    """
    label = method if budget is None else f"{method}@{budget}"
    return label if train_budget is None else f"{label} (train {train_budget})"


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write JSON atomically (see :func:`write_text_atomic`); non-finite floats become null."""
    return write_text_atomic(json.dumps(_clean(data), indent=2, sort_keys=False), path)
