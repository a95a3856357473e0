"""Checkpoint formats a model loads from (``model.format``).

- ``hf``: a transformers encoder (embedded name, hub id or folder); colcompress adds
  a new projection and its own markers and lengths from the config.
- ``stanford``: a Stanford ColBERT checkpoint (colbert-ai; colbertv2.0).
- ``pylate``: a PyLate / sentence-transformers ColBERT model (answerai-colbert-small).

Checkpoint formats are loaded as they are: their projection, markers, lengths,
query augmentation and skiplist, so encoding matches the original library.
"""

from __future__ import annotations

from typing import Any

from colcompress.hub import local_folder
from colcompress.models.formats.pylate import read_pylate
from colcompress.models.formats.spec import Pretrained
from colcompress.models.formats.stanford import read_stanford

FORMATS = ("hf", "stanford", "pylate")
_READERS = {"stanford": read_stanford, "pylate": read_pylate}


def check_format(format: str) -> None:
    if format not in FORMATS:
        raise ValueError(f"model.format must be one of {FORMATS}, got {format!r}")


def read_pretrained(format: str, name: str) -> Pretrained:
    """Read the checkpoint ``name`` (a folder or a hub id) in ``format``.

    Raises
    ------
    ValueError
        When ``format`` is not a checkpoint format or the folder is not in it.
    FileNotFoundError
        When ``name`` is neither a folder nor available from the hub.
    """
    check_format(format)
    if format == "hf":
        raise ValueError("model.format=hf has no checkpoint settings to read")
    return _READERS[format](local_folder(name, "model.backbone"))


def model_sizes(model_cfg: Any) -> tuple[int, int]:
    """The document encoder's hidden size and the vector dimension a model config gives.

    Parameters
    ----------
    model_cfg : mapping
        ``colcompress/conf/model/*`` keys: ``backbone``, ``format`` (default ``hf``), ``dim``,
        ``random_config``; for image documents ``vision_config`` or
        ``vision_backbone`` (the document tower, whose hidden size is returned).

    Returns
    -------
    (hidden, dim) : tuple of int
    """
    format = model_cfg.get("format") or "hf"
    check_format(format)
    if format == "hf":
        from transformers import AutoConfig

        from colcompress.models.backbone import resolve_backbone
        from colcompress.models.vision import vision_config

        config = AutoConfig.from_pretrained(
            resolve_backbone(model_cfg["backbone"]), **(model_cfg.get("random_config") or {})
        )
        dim = int(model_cfg.get("dim") or config.hidden_size)
        tower, folder = model_cfg.get("vision_config"), model_cfg.get("vision_backbone")
        if tower is not None or folder is not None:
            return int(vision_config(tower, folder).hidden_size), dim
        return int(config.hidden_size), dim
    pretrained = read_pretrained(format, model_cfg["backbone"])
    return pretrained.hidden_size, pretrained.dim
