"""Vision towers: any transformers ``*VisionModel`` -> visual token states (+ appended
tokens, attention)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

from colcompress.models.encoder import AttentionRecorder, last_attention_module, recording
from colcompress.models.states import TokenStates

#: Modules that only feed a tower's pooled output (never the token states): replaced
#: by the identity so no parameter goes without a gradient (DDP refuses those).
POOLING_ONLY = {"clip_vision_model": "post_layernorm", "siglip_vision_model": "head"}


def vision_config(config: dict[str, Any] | None, backbone: str | None) -> PretrainedConfig:
    """The transformers config of a vision tower: given by ``config`` or read from ``backbone``.

    Parameters
    ----------
    config : dict or None
        ``model_type`` (e.g. ``clip_vision_model``, ``siglip_vision_model``) and the
        config values to build an untrained tower with.
    backbone : str or None
        A local folder (or hub id) holding a pretrained tower.

    Raises
    ------
    ValueError
        Neither or both are given, or ``config`` has no ``model_type``.
    """
    if (config is None) == (backbone is None):
        raise ValueError(
            "give one of model.vision_config (an untrained tower's config) and "
            "model.vision_backbone (a pretrained tower's folder)"
        )
    if backbone is not None:
        return AutoConfig.from_pretrained(backbone)
    options = dict(config)
    model_type = options.pop("model_type", None)
    if not model_type:
        raise ValueError(
            f"model.vision_config={config}: needs model_type (e.g. clip_vision_model, "
            "siglip_vision_model)"
        )
    return AutoConfig.for_model(model_type, **options)


def load_vision_tower(config: dict[str, Any] | None, backbone: str | None) -> PreTrainedModel:
    """Build or load a vision tower, its pooled-output-only modules removed.

    Parameters
    ----------
    config, backbone
        See :func:`vision_config`: an untrained tower from ``config``, or the
        pretrained one in ``backbone``.

    Returns
    -------
    PreTrainedModel
        A model taking ``pixel_values`` whose ``embeddings`` module gives the visual
        tokens, in training mode.

    Raises
    ------
    ValueError
        The model is not such a vision tower.
    """
    if backbone is not None:
        vision_config(None, backbone)  # refuses a config given as well
        model = AutoModel.from_pretrained(backbone)
    else:
        model = AutoModel.from_config(vision_config(config, None))
    embeddings = getattr(model, "embeddings", None)
    if model.main_input_name != "pixel_values" or not isinstance(embeddings, nn.Module):
        raise ValueError(
            f"{type(model).__name__} is not a vision tower: expected a transformers "
            "*VisionModel (CLIPVisionModel, SiglipVisionModel, ...) taking pixel_values "
            "through an `embeddings` module"
        )
    name = POOLING_ONLY.get(model.config.model_type)
    if name is not None:
        setattr(model, name, nn.Identity())
    model.train()
    return model


class VisionEncoder(nn.Module):
    """Runs a vision tower and returns its last-layer visual token states.

    The visual tokens are what the tower's ``embeddings`` module gives (patch
    embeddings with their position embeddings, after a class token where the tower
    has one) and what its last layer returns for them. Learnable tokens (a
    compressor's memory tokens or universal queries) are appended after the visual
    tokens: a forward hook on ``embeddings`` concatenates them to its output, so
    everything after it (CLIP's pre-layernorm, the layers, SigLIP's post-layernorm)
    runs on ``N + T`` tokens that all attend to each other. Unlike the text
    :class:`~colcompress.models.encoder.Encoder`, which gives appended tokens the
    position embeddings after each sequence's last token, they get no position
    embedding: a tower's position table covers its patch grid only, and the
    appended embeddings are learned as a whole.

    Parameters
    ----------
    model : PreTrainedModel
        From :func:`load_vision_tower`.
    record_attention : bool
        Make the last layer's attention probabilities available
        (``output_attentions=True``; see
        :class:`~colcompress.models.encoder.AttentionRecorder`).
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
        self._extra: Tensor | None = None
        model.embeddings.register_forward_hook(self._append)
        config = model.config
        self.image_size = int(config.image_size)
        self.patch_size = int(config.patch_size)
        with torch.no_grad():
            blank = torch.zeros(1, int(config.num_channels), self.image_size, self.image_size)
            self.num_tokens = int(model.embeddings(blank).shape[1])

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def _append(self, module: nn.Module, args: tuple[Any, ...], output: Tensor) -> Tensor:
        if self._extra is None:
            return output
        extra = self._extra.to(output.dtype).unsqueeze(0).expand(output.shape[0], -1, -1)
        return torch.cat([output, extra], dim=1)

    def forward(
        self,
        pixel_values: Tensor,
        input_ids: Tensor,
        extra_embeddings: Tensor | None = None,
        output_attentions: bool = False,
    ) -> TokenStates:
        """Encode a batch of images.

        Parameters
        ----------
        pixel_values : Tensor[B, C, S, S]
        input_ids : Tensor[B, N]
            Visual token ids (:func:`~colcompress.models.images.patch_ids`), passed on.
        extra_embeddings : Tensor[T, H] or None
            Input embeddings of learnable tokens to append to every image.
        output_attentions : bool
            Return the last layer's attention probabilities (needs
            ``record_attention=True``).

        Returns
        -------
        TokenStates
            ``hidden[B, N, H]`` with an all-True mask; ``extra_hidden[B, T, H]`` and
            ``attentions[B, heads, R, N + T]`` (``R = N + T`` rows, or the ``T``
            appended ones with ``attention_rows="appended"``) when asked for.
        """
        t = 0 if extra_embeddings is None else extra_embeddings.shape[0]
        name = type(self).__name__
        with recording(self._recorder, output_attentions, name, t) as recorded:
            self._extra = extra_embeddings
            try:
                hidden = self.model(pixel_values=pixel_values).last_hidden_state
                attentions = recorded()
            finally:
                self._extra = None
        n = self.num_tokens
        if hidden.shape[1] != n + (0 if extra_embeddings is None else extra_embeddings.shape[0]):
            raise ValueError(
                f"{type(self.model).__name__} returned {hidden.shape[1]} tokens for images of "
                f"{self.image_size} pixels; expected {n} visual tokens plus the appended ones"
            )
        mask = torch.ones(hidden.shape[0], n, dtype=torch.bool, device=hidden.device)
        extra = hidden[:, n:] if extra_embeddings is not None else None
        return TokenStates(hidden[:, :n], mask, input_ids, extra, attentions)
