"""Encoder: any HF backbone -> contextual token states (+ appended tokens, attention)."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from colcompress.models.states import TokenStates

#: Which query rows of the last layer's attention an encoder records.
ROWS = ("all", "appended")
#: The attention implementation name of a recorded layer (see :class:`AttentionRecorder`).
RECORDED = "colcompress_recorded"


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


def _recorded_attention(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    **kwargs: Any,
) -> tuple[Tensor, Tensor | None]:
    """The attention function of a recorded layer: its :class:`AttentionRecorder`'s."""
    return module.attention_recorder.attend(module, query, key, value, attention_mask, **kwargs)


AttentionInterface.register(RECORDED, _recorded_attention)


def additive_rows(mask: Tensor | None, rows: int | None, dtype: torch.dtype) -> Tensor | None:
    """The additive mask eager attention adds to its logits, for the last ``rows`` queries.

    Parameters
    ----------
    mask : Tensor[B, 1, L or 1, K] or None
        The mask built for the backbone's attention: boolean (SDPA, True where a
        query attends to a key) or additive (eager). None: no masking.
    rows : int or None
        Keep the last ``rows`` query rows; None keeps them all.
    dtype : torch.dtype
        The logits' dtype.

    Returns
    -------
    Tensor[B, 1, rows or L or 1, K] or None
        0 where attended, the dtype's minimum elsewhere.

    Raises
    ------
    ValueError
        A mask that is not 4-D (flash attention's): not supported.
    """
    if mask is None:
        return None
    if mask.dim() != 4:
        raise ValueError(
            f"recording attention needs the 4-D masks of sdpa or eager attention, got a "
            f"{mask.dim()}-D mask: load the backbone with attn_implementation sdpa or eager"
        )
    if rows is not None and mask.shape[-2] > 1:
        mask = mask[:, :, -rows:]
    if mask.dtype != torch.bool:
        return mask
    additive = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return additive.masked_fill(~mask, torch.finfo(dtype).min)


class AttentionRecorder:
    """Keeps the attention probabilities of one attention module (a backbone's last).

    The module's attention function becomes :meth:`attend` (its own config copy names
    :data:`RECORDED`). While recording, the probabilities are those of the module's
    own eager attention function (the backbone's definition: scaling, grouped keys,
    soft-capping, softmax dtype), over the mask built for the backbone's attention:

    - ``rows="all"``: every query row ``[B, heads, L, L]``; the layer then runs eager
      attention, whose output uses exactly these probabilities.
    - ``rows="appended"``: the rows of the ``T`` tokens appended last
      ``[B, heads, T, L]`` (AGC's universal queries); the layer's output comes from
      the backbone's own kernel (SDPA) as in every other layer, and only these ``T``
      rows are materialised on top of it.

    Otherwise (and for every layer but this one) the backbone's kernel runs. The
    recorded layer has no attention dropout, so the probabilities (a saliency for
    AGC and attention pruning) are the softmax itself, not a randomly zeroed and
    rescaled copy of it during training.

    Parameters
    ----------
    module : nn.Module
        An attention module that calls its model's attention interface
        (``ALL_ATTENTION_FUNCTIONS``) and whose modeling file defines
        ``eager_attention_forward``.
    rows : {"all", "appended"}

    Raises
    ------
    ValueError
        An unknown ``rows``, or a module without an eager attention function.
    """

    def __init__(self, module: nn.Module, rows: str = "all") -> None:
        if rows not in ROWS:
            raise ValueError(f"attention rows must be one of {ROWS}, got {rows!r}")
        eager = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
        if eager is None:
            raise ValueError(
                f"{type(module).__name__} has no eager_attention_forward in its modeling "
                "module: cannot record its attention"
            )
        self.rows = rows
        self.eager = eager
        self.fused = ALL_ATTENTION_FUNCTIONS.get_interface(
            module.config._attn_implementation, eager
        )
        module.config = copy.copy(module.config)
        module.config._attn_implementation = RECORDED
        module.attention_recorder = self
        self.active = False
        self.appended = 0
        self.weights: Tensor | None = None

    def attend(
        self,
        module: nn.Module,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        attention_mask: Tensor | None,
        **kwargs: Any,
    ) -> tuple[Tensor, Tensor | None]:
        """The recorded layer's attention (an ``AttentionInterface`` function).

        Parameters
        ----------
        module : nn.Module
        query : Tensor[B, heads, L, d]
        key, value : Tensor[B, kv_heads, K, d]
        attention_mask : Tensor[B, 1, L, K] or None
        **kwargs
            The module's arguments (``scaling``, ``dropout``, ...).

        Returns
        -------
        (Tensor[B, L, heads, d], Tensor or None)
            The attention output and the recorded probabilities (None when not
            recording).
        """
        kwargs["dropout"] = 0.0
        if not self.active:
            return self.fused(module, query, key, value, attention_mask, **kwargs)
        if attention_mask is None and getattr(module, "is_causal", False):
            raise ValueError(
                f"{type(module).__name__} is causal but got no attention mask: its recorded "
                "probabilities would ignore causality"
            )
        if self.rows == "all":
            mask = additive_rows(attention_mask, None, query.dtype)
            output, self.weights = self.eager(module, query, key, value, mask, **kwargs)
            return output, self.weights
        output, _ = self.fused(module, query, key, value, attention_mask, **kwargs)
        t = self.appended
        mask = additive_rows(attention_mask, t, query.dtype)
        _, self.weights = self.eager(module, query[:, :, -t:], key, value, mask, **kwargs)
        return output, self.weights


@contextmanager
def recording(
    recorder: AttentionRecorder | None, wanted: bool, owner: str, appended: int
) -> Iterator[Callable[[], Tensor | None]]:
    """Record the last layer's attention during one forward pass.

    Parameters
    ----------
    recorder : AttentionRecorder or None
        The encoder's recorder (None: built without ``record_attention``).
    wanted : bool
        Whether the caller asked for the attention probabilities.
    owner : str
        The encoder's class name, for the errors.
    appended : int
        T, the tokens appended after the sequences in this pass.

    Yields
    ------
    Callable[[], Tensor or None]
        Returns the recorded probabilities after the pass (``[B, heads, L, L]``, or
        ``[B, heads, T, L]`` for a recorder of the appended rows), or None when they
        were not asked for. The recorder is reset on leaving.

    Raises
    ------
    ValueError
        Attention asked of an encoder without a recorder, or the appended tokens'
        rows asked of a pass without appended tokens.
    """
    if wanted and recorder is None:
        raise ValueError(f"output_attentions needs a {owner} built with record_attention=True")
    if recorder is None:
        yield lambda: None
        return
    if wanted and recorder.rows == "appended" and appended == 0:
        raise ValueError(
            f"{owner} records the attention rows of appended tokens, but none were appended"
        )
    recorder.active = wanted
    recorder.appended = appended
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
        (``output_attentions=True``; see :class:`AttentionRecorder`).
    attention_rows : {"all", "appended"}
        Record every token's attention row, or only the appended tokens' rows.
    """

    def __init__(
        self, model: PreTrainedModel, record_attention: bool = False, attention_rows: str = "all"
    ) -> None:
        super().__init__()
        self.model = model
        self._recorder = (
            AttentionRecorder(last_attention_module(model), attention_rows)
            if record_attention
            else None
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
            ``attentions[B, heads, R, N + T]`` (``R = N + T`` rows, or the ``T``
            appended ones with ``attention_rows="appended"``) when asked for.
        """
        t = 0 if extra_embeddings is None else extra_embeddings.shape[0]
        name = type(self).__name__
        with recording(self._recorder, output_attentions, name, t) as attentions:
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
