"""Save a colcompress model in PyLate's format (``pylate.models.ColBERT(path)`` loads it).

The folder written::

    modules.json                        Transformer at the root, then 1_Dense
    config.json, model.safetensors      the encoder (transformers' save_pretrained)
    tokenizer files                     the tokenizer, markers included
    sentence_bert_config.json           max_seq_length, do_lower_case
    config_sentence_transformers.json   prefixes, lengths, query expansion, skiplist
    1_Dense/config.json                 in/out features, no bias, identity activation
    1_Dense/model.safetensors           linear.weight [D, H]

Markers become PyLate's prefixes (``""`` for none), [MASK] augmentation its query
expansion, the skiplist its ``skiplist_words`` (the skipped tokens). A compressor is
not part of the export: PyLate encodes every token vector.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from colcompress import __version__
from colcompress.models.colbert import ColBERT
from colcompress.models.formats.pylate import IDENTITY, MODULES, SETTINGS

log = logging.getLogger(__name__)
DENSE = "1_Dense"


def pylate_settings(model: ColBERT) -> dict[str, Any]:
    """``config_sentence_transformers.json`` for ``model``: PyLate's encoding settings."""
    tokens = model.tokenizer.convert_ids_to_tokens
    return {
        "__version__": {"colcompress": __version__},
        "prompts": {"default": model.prompt} if model.prompt else {},
        "default_prompt_name": "default" if model.prompt else None,
        "similarity_fn_name": "MaxSim",
        "query_prefix": tokens(model.query_marker_id) if model.query_marker_id is not None else "",
        "document_prefix": tokens(model.doc_marker_id) if model.doc_marker_id is not None else "",
        "query_length": model.query_length,
        "document_length": model.doc_length,
        "do_query_expansion": model.query_augmentation,
        "attend_to_expansion_tokens": model.query_augmentation and model.attend_to_augmentation,
        "skiplist_words": tokens(model.skip_ids.tolist()),
    }


def export_pylate(model: ColBERT, folder: str | os.PathLike) -> Path:
    """Write ``model``'s encoder and projection as a PyLate model folder.

    The folder is assembled under a temporary name beside ``folder`` and renamed into
    place when complete.

    Parameters
    ----------
    model : ColBERT
        L2-normalised, plain MaxSim (PyLate's scoring).
    folder : path
        Must not exist, or be empty.

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    ValueError
        When the model's scoring is not PyLate's (``normalize=clip``, ``maxsim_relu``)
        or its documents are not texts (PyLate encodes text).
    FileExistsError
        When ``folder`` holds files.
    """
    folder = Path(folder)
    if model.document_modality != "text":
        raise ValueError(
            f"PyLate encodes text documents; {type(model).__name__} encodes "
            f"{model.document_modality} documents and has no PyLate equivalent"
        )
    if model.normalize != "l2" or model.relu:
        raise ValueError(
            "PyLate L2-normalises vectors and scores plain MaxSim: a model with "
            f"normalize={model.normalize!r}, relu={model.relu} has no PyLate equivalent"
        )
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(f"{folder} exists and is not an empty folder: choose a new one")
    if any(True for _ in model.compressor.parameters()):
        log.warning(
            "%s's learned parameters are not exported: PyLate encodes every token vector",
            type(model.compressor).__name__,
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        _write(model, tmp)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _write(model: ColBERT, folder: Path) -> None:
    model.encoder.model.save_pretrained(folder)
    model.tokenizer.save_pretrained(folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": DENSE, "type": "pylate.models.Dense.Dense"},
    ]
    _dump(modules, folder / MODULES)
    _dump(
        {"max_seq_length": model.doc_length, "do_lower_case": model.lowercase},
        folder / "sentence_bert_config.json",
    )
    _dump(pylate_settings(model), folder / SETTINGS)
    dense = folder / DENSE
    dense.mkdir()
    weight = model.projection.weight.detach().float().cpu().contiguous()
    _dump(
        {
            "in_features": int(weight.shape[1]),
            "out_features": int(weight.shape[0]),
            "bias": False,
            "activation_function": IDENTITY,
            "use_residual": False,
        },
        dense / "config.json",
    )
    save_file({"linear.weight": weight}, str(dense / "model.safetensors"))


def _dump(data: Any, path: Path) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
