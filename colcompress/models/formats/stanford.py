"""Stanford ColBERT checkpoints (colbert-ai's ``save``: colbertv2.0's layout).

The folder holds transformers' ``config.json`` (architecture ``HF_ColBERT``), one
state dict with the encoder under its base-model prefix (``bert.*``) and the
bias-free projection ``linear.weight[D, H]``, the tokenizer, and
``artifact.metadata``: colbert-ai's ``ColBERTConfig`` as JSON (``query_token_id``,
``doc_token_id``, ``query_maxlen``, ``doc_maxlen``, ``attend_to_mask_tokens``,
``mask_punctuation``, ``dim``, ...). Missing keys take ``ColBERTConfig``'s defaults.

colbert-ai encodes a query as ``[CLS] [unused0] tokens [SEP]`` padded to
``query_maxlen`` with [MASK] (every position scored; attended to only with
``attend_to_mask_tokens``), a document as ``[CLS] [unused1] tokens [SEP]`` truncated
to ``doc_maxlen``, without the vectors of punctuation (the first token id of each
``string.punctuation`` symbol); vectors are ``normalize(linear(bert(ids)))``.
"""

from __future__ import annotations

import string
from pathlib import Path

from colcompress.models.formats.spec import Pretrained, read_json, read_tensor

METADATA = "artifact.metadata"
# ColBERTConfig's defaults (colbert/infra/config/settings.py).
DEFAULTS = {
    "query_token_id": "[unused0]",
    "doc_token_id": "[unused1]",
    "query_maxlen": 32,
    "doc_maxlen": 220,
    "attend_to_mask_tokens": False,
    "mask_punctuation": True,
    "similarity": "cosine",
    "interaction": "colbert",
}


def read_stanford(folder: Path) -> Pretrained:
    """Read a Stanford ColBERT checkpoint folder.

    Raises
    ------
    ValueError
        When the folder is not in colbert-ai's layout, or uses a scoring colcompress
        does not implement (``similarity: l2``, ``interaction: flipr``).
    """
    expected = f"a Stanford ColBERT checkpoint ({METADATA}, config.json, linear.weight)"
    if not (folder / METADATA).is_file():
        raise ValueError(
            f"{folder} is not a Stanford ColBERT checkpoint: no {METADATA} (colbert-ai writes "
            "it next to config.json and the weights); a folder with modules.json is a PyLate "
            "model (model.format=pylate)"
        )
    meta = read_json(folder / METADATA, expected)
    meta = meta.get("config", meta)
    read_json(folder / "config.json", expected)
    settings = {key: meta.get(key, default) for key, default in DEFAULTS.items()}
    if settings["similarity"] != "cosine" or settings["interaction"] != "colbert":
        raise ValueError(
            f"{folder / METADATA}: similarity={settings['similarity']!r}, "
            f"interaction={settings['interaction']!r}; colcompress implements cosine MaxSim "
            "(similarity: cosine, interaction: colbert)"
        )
    try:
        projection = read_tensor(folder, "linear.weight")
    except KeyError as error:
        raise ValueError(f"{error.args[0]}: expected {expected}") from error
    if "dim" in meta and int(meta["dim"]) != projection.shape[0]:
        raise ValueError(
            f"{folder / METADATA} says dim={meta['dim']} but linear.weight has "
            f"{projection.shape[0]} rows"
        )
    return Pretrained(
        folder=folder,
        backbone=folder,
        projection=projection,
        query_marker=settings["query_token_id"],
        doc_marker=settings["doc_token_id"],
        query_length=int(settings["query_maxlen"]),
        doc_length=int(settings["doc_maxlen"]),
        query_augmentation=True,
        attend_to_augmentation=bool(settings["attend_to_mask_tokens"]),
        skiplist=tuple(string.punctuation) if settings["mask_punctuation"] else (),
        skiplist_by="encode",
    )
