"""Vision-language models as encoders: a batch of token sequences with visual tokens ->
last-layer token states (+ appended tokens, attention).

A vision-language model (Qwen2-VL, Qwen2.5-VL, Qwen2.5-Omni's thinker, PaliGemma)
encodes a sequence whose placeholder tokens are replaced by the vision tower's (and
the audio tower's) features. Here its
language model is run on input embeddings built as the model builds them, so that a
compressor's learnable tokens can be appended after each sequence's tokens, the
attention mask can be chosen (bidirectional or causal), and the last layer's
attention can be recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from colcompress.models.encoder import AttentionRecorder, last_attention_module, recording
from colcompress.models.states import TokenStates
from colcompress.models.vlm_inputs import VLMBatch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def plain_config(value: Any) -> Any:
    """Nested mappings and sequences (a config's ``DictConfig`` / ``ListConfig``) as
    plain dicts and lists, which transformers' config classes take."""
    if isinstance(value, Mapping):
        return {str(k): plain_config(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [plain_config(v) for v in value]
    return value


def weights_dtype(name: str | None) -> torch.dtype:
    """The torch dtype of ``model.dtype`` (None: float32).

    Raises
    ------
    ValueError
        An unknown name.
    """
    if name is None:
        return torch.float32
    if name not in DTYPES:
        raise ValueError(f"model.dtype must be one of {sorted(DTYPES)} or null, got {name!r}")
    return DTYPES[name]


def attention_mask(real: Tensor, bidirectional: Tensor) -> Tensor:
    """Which keys each query may attend to.

    Parameters
    ----------
    real : Tensor[B, L]
        Bool, True for real tokens (padding False).
    bidirectional : Tensor[B, L]
        Bool, tokens that attend to each other in both directions; the others
        attend causally (to themselves and the tokens before them).

    Returns
    -------
    Tensor[B, 1, L, L]
        Bool, ``[b, 0, i, j]`` True when query ``i`` attends to key ``j``: ``j`` is
        real and (``j <= i`` or both are bidirectional); every token also attends to
        itself, so a padding row is never empty (an empty row's softmax is NaN,
        which would reach the real tokens through its value).
    """
    length = real.shape[1]
    index = torch.arange(length, device=real.device)
    causal = index[None, :] <= index[:, None]  # [L, L]: key j <= query i
    both = bidirectional[:, :, None] & bidirectional[:, None, :]  # [B, L, L]
    allowed = real[:, None, :] & (causal[None] | both)
    allowed |= torch.eye(length, dtype=torch.bool, device=real.device)[None]
    return allowed[:, None]


def positions_after(positions: Tensor, real: Tensor, count: int) -> Tensor:
    """Positions of ``count`` tokens appended after each sequence's real tokens.

    Parameters
    ----------
    positions : Tensor[..., B, N]
        Position ids of the sequences (one row per rotary axis for M-RoPE).
    real : Tensor[B, N]
        Bool, True for real tokens.
    count : int

    Returns
    -------
    Tensor[..., B, count]
        ``1 + max`` of a sequence's real positions (over every axis), counting up;
        the same on every axis.
    """
    masked = positions.masked_fill(~real, torch.iinfo(positions.dtype).min)
    last = masked.amax(dim=-1)  # [..., B]
    while last.dim() > 1:
        last = last.amax(dim=0)
    steps = torch.arange(1, count + 1, device=positions.device)
    after = last[:, None] + steps[None, :]  # [B, count]
    return after.expand(*positions.shape[:-1], count)


def set_dropout(model: nn.Module, p: float) -> None:
    """Set every dropout of a model to ``p``: its ``nn.Dropout`` modules and the
    attention-probability dropout of its attention modules (``attention_dropout``)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"model.dropout={p!r}; expected a probability in [0, 1) or null")
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = p


class VLMEncoder(nn.Module):
    """Runs a vision-language model and returns its last-layer token states.

    Parameters
    ----------
    model : PreTrainedModel
        A ``Qwen2VLModel``, ``Qwen2_5_VLModel``, ``Qwen2_5OmniThinkerModel`` (audio too)
        or ``PaliGemmaModel``.
    bidirectional : bool
        Every token attends to every real token (with Qwen2-VL models: the
        language model's causal mask is replaced); False keeps the model's own mask
        (causal for Qwen2-VL, bidirectional over PaliGemma's prefix).
    mrope : bool
        Qwen2-VL models: 3-D rotary positions of the visual tokens (the model's
        ``get_rope_index``); False numbers every token ``0 .. N - 1`` as transformers'
        ``ColQwen2ForRetrieval`` does (it calls the model with embeddings only).
        Qwen2.5-Omni always takes its own positions, PaliGemma its ``1 .. N``.
    record_attention : bool
        Make the last layer's attention probabilities available
        (``output_attentions=True``; see
        :class:`~colcompress.models.encoder.AttentionRecorder`).
    attention_rows : {"all", "appended"}
        Record every token's attention row, or only the appended tokens' rows.

    Raises
    ------
    ValueError
        The model is not one of these.
    """

    def __init__(
        self,
        model: nn.Module,
        bidirectional: bool,
        mrope: bool = True,
        record_attention: bool = False,
        attention_rows: str = "all",
    ) -> None:
        super().__init__()
        kind = model.config.model_type
        if kind not in ("qwen2_vl", "qwen2_5_vl", "qwen2_5_omni_thinker", "paligemma"):
            raise ValueError(
                f"{type(model).__name__} ({kind}) is not a vision-language model this encoder "
                "runs: expected Qwen2VLModel, Qwen2_5_VLModel, Qwen2_5OmniThinkerModel or "
                "PaliGemmaModel"
            )
        self.model = model
        self.paligemma = kind == "paligemma"
        self.omni = kind == "qwen2_5_omni_thinker"
        self.bidirectional = bidirectional
        self.mrope = mrope and not self.paligemma
        language = model.language_model
        if bidirectional:
            for module in language.modules():
                if hasattr(module, "is_causal"):
                    module.is_causal = False
        self._recorder = (
            AttentionRecorder(last_attention_module(language), attention_rows)
            if record_attention
            else None
        )

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.get_text_config().hidden_size)

    @property
    def max_positions(self) -> int:
        """The longest sequence the language model's positions were trained for."""
        return int(self.model.config.get_text_config().max_position_embeddings)

    def forward(
        self,
        batch: VLMBatch,
        extra_embeddings: Tensor | None = None,
        output_attentions: bool = False,
    ) -> TokenStates:
        """Encode a batch.

        Parameters
        ----------
        batch : VLMBatch
        extra_embeddings : Tensor[T, H] or None
            Input embeddings of learnable tokens to append after every sequence.
        output_attentions : bool
            Return the last layer's attention probabilities (needs
            ``record_attention=True``).

        Returns
        -------
        TokenStates
            ``hidden[B, N, H]`` with ``batch.mask``; ``extra_hidden[B, T, H]`` and
            ``attentions[B, heads, R, N + T]`` (``R = N + T`` rows, or the ``T``
            appended ones with ``attention_rows="appended"``) when asked for.
        """
        t = 0 if extra_embeddings is None else extra_embeddings.shape[0]
        name = type(self).__name__
        with recording(self._recorder, output_attentions, name, t) as recorded:
            hidden = self._run(batch, extra_embeddings)
            attentions = recorded()
        n = batch.input_ids.shape[1]
        extra = hidden[:, n:] if extra_embeddings is not None else None
        return TokenStates(hidden[:, :n], batch.mask, batch.input_ids, extra, attentions)

    def _run(self, batch: VLMBatch, extra_embeddings: Tensor | None) -> Tensor:
        real = batch.attention_mask.bool()
        embeds = self._embed(batch)
        positions = self._positions(batch)
        if self.bidirectional:
            together = torch.ones_like(real)
        elif self.paligemma:
            together = batch.features["token_type_ids"] == 0
        else:
            together = torch.zeros_like(real)
        if extra_embeddings is not None:
            size, t = real.shape[0], extra_embeddings.shape[0]
            extra = extra_embeddings.to(embeds.dtype).unsqueeze(0).expand(size, t, -1)
            embeds = torch.cat([embeds, extra], dim=1)
            positions = torch.cat([positions, positions_after(positions, real, t)], dim=-1)
            real = torch.cat([real, real.new_ones(size, t)], dim=1)
            together = torch.cat([together, together.new_ones(size, t)], dim=1)
        mask = attention_mask(real, together)
        language = self.model.language_model
        if not self.paligemma:  # one mask per layer type (Qwen2's text models take a mapping)
            mask = {kind: mask for kind in set(language.config.layer_types)}
        out = language(inputs_embeds=embeds, attention_mask=mask, position_ids=positions)
        return out.last_hidden_state

    def _embed(self, batch: VLMBatch) -> Tensor:
        """Token embeddings with the visual and audio features in place of the
        placeholders."""
        model, ids, features = self.model, batch.input_ids, batch.features
        config = model.config
        if self.paligemma:
            words = ids.masked_fill(ids == config.image_token_id, 0)  # it may be out of vocabulary
            embeds = model.get_input_embeddings()(words)
            if "pixel_values" in features:
                pixels = features["pixel_values"].to(embeds.dtype)
                image = model.get_image_features(pixels).pooler_output
                embeds = _scatter(embeds, ids == config.image_token_id, image)
            return embeds
        embeds = model.get_input_embeddings()(ids)
        for pixels, grid, token in (
            ("pixel_values", "image_grid_thw", config.image_token_id),
            ("pixel_values_videos", "video_grid_thw", config.video_token_id),
        ):
            if pixels in features:
                out = model.visual(features[pixels].to(model.visual.dtype), grid_thw=features[grid])
                embeds = _scatter(embeds, ids == token, out.pooler_output)
        if "input_features" in features:
            tower = model.audio_tower
            out = model.get_audio_features(
                features["input_features"].to(tower.conv1.weight.dtype),
                features["feature_attention_mask"],
            )
            embeds = _scatter(embeds, ids == config.audio_token_id, out.last_hidden_state)
        return embeds

    def _positions(self, batch: VLMBatch) -> Tensor:
        """Position ids ``[3, B, N]`` (Qwen2-VL, Qwen2.5-Omni: its own M-RoPE positions,
        audio included) or ``[B, N]`` (PaliGemma, from 1)."""
        ids = batch.input_ids
        size, n = ids.shape
        features = batch.features
        if self.omni:
            audio = features.get("feature_attention_mask")
            positions, _ = self.model.get_rope_index(
                ids,
                image_grid_thw=features.get("image_grid_thw"),
                video_grid_thw=features.get("video_grid_thw"),
                attention_mask=batch.attention_mask,
                audio_seqlens=None if audio is None else audio.sum(1),
                second_per_grids=features.get("second_per_grid_ts"),
            )
            return positions
        if self.mrope:
            positions, _ = self.model.get_rope_index(
                ids,
                mm_token_type_ids=features["mm_token_type_ids"],
                image_grid_thw=features.get("image_grid_thw"),
                video_grid_thw=features.get("video_grid_thw"),
                second_per_grid_ts=features.get("second_per_grid_ts"),
                attention_mask=batch.attention_mask,
            )
            return positions
        arange = torch.arange(n, device=ids.device).expand(size, n)
        if self.paligemma:
            return arange + 1
        return arange.expand(3, size, n)


def _scatter(embeds: Tensor, where: Tensor, features: Tensor) -> Tensor:
    """Put ``features[..., H]`` (``K`` rows in all) at the ``K`` True positions of
    ``where[B, N]`` in order.

    Raises
    ------
    ValueError
        The numbers of placeholders and features differ.
    """
    features = features.reshape(-1, embeds.shape[-1])
    if int(where.sum()) != features.shape[0]:
        raise ValueError(
            f"{int(where.sum())} placeholder tokens but {features.shape[0]} features of "
            "their media: the inputs were not built for this model's settings"
        )
    mask = where.unsqueeze(-1).expand_as(embeds)
    return embeds.masked_scatter(mask, features.to(embeds.dtype))
