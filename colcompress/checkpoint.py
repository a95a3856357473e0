"""Rebuild a model from a colcompress checkpoint (for teachers and post-hoc evaluation).

Checkpoints are read with ``torch.load(weights_only=True)``: only tensors and plain
containers are unpickled, so a crafted file cannot run code while it is read.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import torch

from colcompress.models.colbert import ColBERT

PREFIX = "model."
COMPRESSOR = "compressor."

log = logging.getLogger(__name__)


class UnsafeCheckpointError(ValueError):
    """A checkpoint holds objects that ``torch.load(weights_only=True)`` refuses."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (tensors and plain containers only).

    Raises
    ------
    FileNotFoundError
        ``path`` is not a file.
    UnsafeCheckpointError
        The file pickles other objects (code could run while loading it); the
        message names the file and what torch refused.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in lines if "unsupported" in line.lower()), lines[0])
        raise UnsafeCheckpointError(
            f"{path}: refused to load: it holds objects other than tensors and plain "
            f"containers ({reason}). colcompress checkpoints load with "
            "torch.load(weights_only=True); this file was not written by colcompress "
            "or has been tampered with"
        ) from None
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} is not a Lightning checkpoint (a {type(checkpoint).__name__})")
    return checkpoint


def load_model_weights(
    model: ColBERT, path: str | Path, strict: bool = True, fresh_compressor: bool = False
) -> ColBERT:
    """Load the ``model.*`` weights of a Lightning checkpoint into ``model``.

    Parameters
    ----------
    model : ColBERT
        Built with the same backbone and projection as the checkpoint's model. A
        compressor with learned parameters (memtok, seqresize, agc) needs them in the
        checkpoint; parameter-free compressors (post-hoc H-Pool, k-means, pruning)
        apply to any checkpoint.
    path : str or Path
        A ``.ckpt`` written by colcompress training.
    strict : bool
        Require every encoder/projection weight to be present and to match.
    fresh_compressor : bool
        Two-stage training: load the encoder and projection only and keep the
        compressor's own initialisation (a checkpoint's compressor weights, if any,
        are ignored; one initialised from the backbone is initialised again from the
        loaded embeddings), e.g. to start a memtok model from a trained plain ColBERT.
        False (evaluation, fine-tuning) requires the checkpoint to hold them.
    """
    path = Path(path)
    checkpoint = read_checkpoint(path)
    if "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    state = {
        k[len(PREFIX) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(PREFIX)
    }
    if fresh_compressor:
        state = {k: v for k, v in state.items() if not k.startswith(COMPRESSOR)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    untrained = [k for k in missing if k.startswith(COMPRESSOR)]
    if fresh_compressor:
        missing = [k for k in missing if not k.startswith(COMPRESSOR)]
        model.init_compressor_from_backbone()  # from the loaded embeddings
        log.info(
            "%s: encoder and projection loaded; %s parameters %s start from their "
            "initialisation (training.init_compressor=fresh)",
            path,
            type(model.compressor).__name__,
            untrained or "(none)",
        )
    elif untrained:
        raise ValueError(
            f"{path} holds no weights for the compressor's parameters {untrained[:5]}: "
            f"{type(model.compressor).__name__} learns them in training, so evaluate a "
            "checkpoint trained with it (or train it: train=true)"
        )
    if strict and (missing or unexpected):
        raise ValueError(
            f"{path} does not match the configured model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]} (check model.* and compressor=)"
        )
    return model


def model_config(path: str | Path) -> dict[str, Any]:
    """The model config stored in a colcompress checkpoint."""
    checkpoint = read_checkpoint(path)
    if "colcompress_model_config" not in checkpoint:
        raise ValueError(f"{path} carries no colcompress model config")
    return checkpoint["colcompress_model_config"]
