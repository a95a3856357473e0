"""A run's ``results.json``: writing it, and reading which method made it."""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Mapping
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


def method_name(results: Mapping[str, Any], default: str = "?") -> str:
    """The compressor a ``results.json`` was produced by.

    ``method``, else ``config.compressor`` as a string, else its ``method``, ``name``
    or the class name of its ``_target_``, else ``default``.
    """
    if isinstance(results.get("method"), str):
        return results["method"]
    compressor = (results.get("config") or {}).get("compressor")
    if isinstance(compressor, str):
        return compressor
    if isinstance(compressor, Mapping):
        for key in ("method", "name"):
            if isinstance(compressor.get(key), str):
                return compressor[key]
        if isinstance(compressor.get("_target_"), str):
            return compressor["_target_"].rsplit(".", 1)[-1]
    return default


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
