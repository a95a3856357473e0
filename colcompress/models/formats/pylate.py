"""PyLate / sentence-transformers ColBERT models (``pylate.models.ColBERT.save``).

The folder holds ``modules.json`` (a ``Transformer`` module, usually at the root,
then a ``Dense`` module in ``1_Dense/``: ``config.json`` with ``in_features``,
``out_features``, ``bias``, ``activation_function``, ``use_residual`` and
``model.safetensors`` with ``linear.weight[D, H]``), the transformer's
``sentence_bert_config.json`` (``do_lower_case``) and
``config_sentence_transformers.json`` (``query_prefix``, ``document_prefix``,
``query_length``, ``document_length``, ``do_query_expansion``,
``attend_to_expansion_tokens``, ``skiplist_words``, ``prompts``,
``default_prompt_name``). Missing keys take PyLate's defaults.

PyLate adds the prefixes to the tokenizer as tokens, prepends the default prompt
to every text, strips (and with ``do_lower_case`` lower-cases) it, tokenises to the
length less one, inserts the prefix id after [CLS], pads queries with [MASK] to
``query_length`` when ``do_query_expansion`` (all scored, attended to only with
``attend_to_expansion_tokens``), drops document vectors whose token id is
``convert_tokens_to_ids(word)`` of a skiplist word, and L2-normalises
``Dense(transformer(ids))``.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from colcompress.models.formats.spec import Pretrained, read_json, read_tensor

MODULES = "modules.json"
SETTINGS = "config_sentence_transformers.json"
TRANSFORMER_CONFIGS = ("sentence_bert_config.json", "sentence_roberta_config.json")
IDENTITY = "torch.nn.modules.linear.Identity"
# PyLate's defaults (pylate/models/colbert.py) for keys a model does not set.
DEFAULTS: dict[str, Any] = {
    "query_prefix": "[Q] ",
    "document_prefix": "[D] ",
    "query_length": 32,
    "document_length": 180,
    "do_query_expansion": True,
    "attend_to_expansion_tokens": False,
    "skiplist_words": list(string.punctuation),
    "prompts": {},
    "default_prompt_name": None,
}


def _modules(folder: Path) -> tuple[Path, Path]:
    """The transformer folder and the Dense folder named by ``modules.json``."""
    path = folder / MODULES
    if not path.is_file():
        raise ValueError(
            f"{folder} is not a PyLate / sentence-transformers model: no {MODULES}; a folder "
            "with artifact.metadata is a Stanford ColBERT checkpoint (model.format=stanford)"
        )
    modules = read_json(path, "a list of sentence-transformers modules")
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ValueError(f"{path}: expected a JSON list of modules")
    modules = sorted(modules, key=lambda m: int(m.get("idx", 0)))
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds != ["Transformer", "Dense"]:
        raise ValueError(
            f"{path} lists modules {kinds}; expected a ColBERT model: "
            "['Transformer', 'Dense'] (a transformer and one projection)"
        )
    return folder / modules[0].get("path", ""), folder / modules[1]["path"]


def _dense(dense: Path) -> Any:
    config = read_json(dense / "config.json", "a Dense module's config")
    problems = []
    if config.get("bias", True):
        problems.append("bias=true")
    if config.get("activation_function", IDENTITY) != IDENTITY:
        problems.append(f"activation_function={config['activation_function']}")
    if config.get("use_residual", False):
        problems.append("use_residual=true")
    if problems:
        raise ValueError(
            f"{dense / 'config.json'}: {', '.join(problems)}; colcompress loads a bias-free "
            f"linear projection ({IDENTITY}, no residual)"
        )
    try:
        weight = read_tensor(dense, "linear.weight")
    except KeyError as error:
        raise ValueError(f"{error.args[0]}: expected the Dense module's weight") from error
    shape = (int(config.get("out_features", -1)), int(config.get("in_features", -1)))
    if tuple(weight.shape) != shape:
        raise ValueError(
            f"{dense}: linear.weight is {tuple(weight.shape)}, config.json says {shape}"
        )
    return weight


def read_pylate(folder: Path) -> Pretrained:
    """Read a PyLate model folder.

    Raises
    ------
    ValueError
        When the folder is not a PyLate ColBERT model with one bias-free Dense
        projection.
    """
    transformer, dense = _modules(folder)
    projection = _dense(dense)
    settings = dict(DEFAULTS)
    if (folder / SETTINGS).is_file():
        stored = read_json(folder / SETTINGS, "sentence-transformers settings")
        settings.update({k: stored[k] for k in DEFAULTS if stored.get(k) is not None})
    lowercase = False
    for name in TRANSFORMER_CONFIGS:
        if (transformer / name).is_file():
            config = read_json(transformer / name, "the Transformer module's settings")
            lowercase = bool(config.get("do_lower_case", False))
            break
    query_prefix, doc_prefix = settings["query_prefix"], settings["document_prefix"]
    expansion = bool(settings["do_query_expansion"])
    prompt = settings["prompts"].get(settings["default_prompt_name"]) or ""
    return Pretrained(
        folder=folder,
        backbone=transformer,
        projection=projection,
        query_marker=query_prefix or None,
        doc_marker=doc_prefix or None,
        query_length=int(settings["query_length"]),
        doc_length=int(settings["document_length"]),
        query_augmentation=expansion,
        attend_to_augmentation=expansion and bool(settings["attend_to_expansion_tokens"]),
        skiplist=tuple(settings["skiplist_words"]),
        skiplist_by="vocabulary",
        added_tokens=tuple(p for p in (query_prefix, doc_prefix) if p),
        prompt=prompt,
        strip=True,
        lowercase=lowercase,
    )
