"""Encoder: any HF backbone -> contextual token states (+ appended tokens, attention)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from colcompress.models.states import TokenStates


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
    """

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

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
            Return the last layer's attention probabilities (needs a backbone
            loaded with ``attn_implementation="eager"``).

        Returns
        -------
        TokenStates
            ``hidden[B, N, H]``; ``extra_hidden[B, T, H]`` and
            ``attentions[B, heads, N + T, N + T]`` when asked for.
        """
        mask = attention_mask.bool()
        if extra_embeddings is None:
            out = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                output_attentions=output_attentions,
            )
            attentions = out.attentions[-1] if output_attentions else None
            return TokenStates(out.last_hidden_state, mask, input_ids, None, attentions)
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
        out = self.model(
            inputs_embeds=inputs,
            attention_mask=full_mask,
            position_ids=position_ids,
            output_attentions=output_attentions,
        )
        hidden = out.last_hidden_state
        attentions = out.attentions[-1] if output_attentions else None
        return TokenStates(hidden[:, :n], mask, input_ids, hidden[:, n:], attentions)
