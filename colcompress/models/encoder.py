"""Encoder: any HF backbone -> contextual token states (+ appended tokens, attention)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from colcompress.models.states import TokenStates


def last_attention_module(model: PreTrainedModel) -> nn.Module:
    """The backbone's last self-attention module (the one whose weights HF records
    as ``attentions``).

    Raises
    ------
    ValueError
        When the model class does not declare which module produces attentions.
    """
    spec = getattr(type(model), "_can_record_outputs", None) or {}
    kind = spec.get("attentions")
    kind = getattr(kind, "target_class", kind)
    modules = [m for m in model.modules() if isinstance(kind, type) and isinstance(m, kind)]
    if not modules:
        raise ValueError(
            f"{type(model).__name__} does not declare its attention modules "
            "(_can_record_outputs['attentions']): cannot record last-layer attention"
        )
    return modules[-1]


class AttentionRecorder:
    """Runs one attention module eagerly and keeps its attention probabilities.

    Only that layer pays for materialised ``[B, heads, N, N]`` probabilities; the
    others keep the backbone's fused kernel (SDPA). The module gets its own config
    copy set to eager, its boolean SDPA mask is turned into the additive mask eager
    attention expects, and its attention dropout is switched off, so the recorded
    probabilities (a saliency for AGC and attention pruning) are the softmax
    itself, not a randomly zeroed and rescaled copy of it during training.
    """

    def __init__(self, module: nn.Module) -> None:
        module.config = copy.copy(module.config)
        module.config._attn_implementation = "eager"
        dropout = getattr(module, "dropout", None)
        if isinstance(dropout, nn.Dropout):
            dropout.p = 0.0
        self.active = False
        self.weights: Tensor | None = None
        module.register_forward_pre_hook(self._additive_mask, with_kwargs=True)
        module.register_forward_hook(self._keep)

    @staticmethod
    def _additive_mask(
        module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        mask = kwargs.get("attention_mask")
        if isinstance(mask, Tensor) and mask.dtype == torch.bool:
            dtype = args[0].dtype if args else kwargs["hidden_states"].dtype
            additive = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
            kwargs["attention_mask"] = additive.masked_fill(~mask, torch.finfo(dtype).min)
        return args, kwargs

    def _keep(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if self.active:
            self.weights = output[1]


@contextmanager
def recording(
    recorder: AttentionRecorder | None, wanted: bool, owner: str
) -> Iterator[Callable[[], Tensor | None]]:
    """Record the last layer's attention during one forward pass.

    Parameters
    ----------
    recorder : AttentionRecorder or None
        The encoder's recorder (None: built without ``record_attention``).
    wanted : bool
        Whether the caller asked for the attention probabilities.
    owner : str
        The encoder's class name, for the error.

    Yields
    ------
    Callable[[], Tensor or None]
        Returns the recorded probabilities ``[B, heads, N, N]`` after the pass, or
        None when they were not asked for. The recorder is reset on leaving.

    Raises
    ------
    ValueError
        Attention asked of an encoder without a recorder.
    """
    if wanted and recorder is None:
        raise ValueError(f"output_attentions needs a {owner} built with record_attention=True")
    if recorder is None:
        yield lambda: None
        return
    recorder.active = wanted
    recorder.weights = None
    try:
        yield lambda: recorder.weights if wanted else None
    finally:
        recorder.active = False
        recorder.weights = None


class Encoder(nn.Module):
    """Runs a transformer backbone and returns its last-layer token states.

    Learnable tokens (a compressor's memory tokens or universal queries) can be
    appended to every sequence: they are placed right after each sequence's real
    tokens in position (position ids ``len_i .. len_i + T - 1``) and attend and are
    attended bidirectionally.

    Parameters
    ----------
    model : PreTrainedModel
        A HF encoder (``AutoModel``) whose forward accepts ``inputs_embeds`` and
        ``position_ids``.
    record_attention : bool
        Make the last layer's attention probabilities available
        (``output_attentions=True``); only that layer then runs eager attention.
    """

    def __init__(self, model: PreTrainedModel, record_attention: bool = False) -> None:
        super().__init__()
        self.model = model
        self._recorder = (
            AttentionRecorder(last_attention_module(model)) if record_attention else None
        )

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        extra_embeddings: Tensor | None = None,
        output_attentions: bool = False,
    ) -> TokenStates:
        """Encode a batch.

        Parameters
        ----------
        input_ids : Tensor[B, N]
        attention_mask : Tensor[B, N]
            1 for tokens that may be attended to.
        extra_embeddings : Tensor[T, H] or None
            Input embeddings of learnable tokens to append to every sequence.
        output_attentions : bool
            Return the last layer's attention probabilities (needs
            ``record_attention=True``).

        Returns
        -------
        TokenStates
            ``hidden[B, N, H]``; ``extra_hidden[B, T, H]`` and
            ``attentions[B, heads, N + T, N + T]`` when asked for.
        """
        with recording(self._recorder, output_attentions, type(self).__name__) as attentions:
            return self._forward(input_ids, attention_mask, extra_embeddings, attentions)

    def _forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        extra_embeddings: Tensor | None,
        attentions: Callable[[], Tensor | None],
    ) -> TokenStates:
        mask = attention_mask.bool()
        if extra_embeddings is None:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask)
            return TokenStates(out.last_hidden_state, mask, input_ids, None, attentions())
        batch, n = input_ids.shape
        t = extra_embeddings.shape[0]
        lengths = mask.sum(1)  # [B]
        limit = self.model.config.max_position_embeddings
        if int(lengths.max()) + t > limit:
            raise ValueError(
                f"sequence length {int(lengths.max())} + {t} appended tokens exceeds the "
                f"backbone's max_position_embeddings={limit}: lower model.doc_length or the "
                "compressor's number of tokens"
            )
        words = self.model.get_input_embeddings()(input_ids)  # [B, N, H]
        extra = extra_embeddings.to(words.dtype).unsqueeze(0).expand(batch, t, -1)
        inputs = torch.cat([words, extra], dim=1)
        positions = torch.arange(n, device=input_ids.device).expand(batch, n)
        extra_positions = lengths[:, None] + torch.arange(t, device=input_ids.device)[None, :]
        position_ids = torch.cat([positions, extra_positions], dim=1)
        full_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, t)], dim=1)
        out = self.model(inputs_embeds=inputs, attention_mask=full_mask, position_ids=position_ids)
        hidden = out.last_hidden_state
        return TokenStates(hidden[:, :n], mask, input_ids, hidden[:, n:], attentions())
