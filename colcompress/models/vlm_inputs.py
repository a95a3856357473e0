"""Documents and queries as a Qwen2-VL-style language model takes them: token ids with
runs of placeholder tokens, and the pixel patches and audio features that fill them.

The sequence of a document is its prompt prefix, then for each image (a photo, or
each page of a document) and for its video a vision start token, one placeholder
token per merged visual token and a vision end token, then (models that hear) its
audio between audio start and end tokens, then its text. Pixels go through Qwen2-VL's
image processor (``Qwen2VLImageProcessorPil``: smart resize to multiples of
``patch_size * merge_size`` within ``min_pixels .. max_pixels``, CLIP normalisation,
patches flattened as the vision tower takes them). Video frames (sampled uniformly
by :func:`~colcompress.data.media.load_video_frames`) go through the same image
processor and are stacked in time by :func:`video_patches`, in the layout of
transformers' ``Qwen2VLVideoProcessor`` (which needs torchvision). Audio, resampled to
the feature extractor's rate by :func:`~colcompress.data.media.load_audio`, becomes
Whisper log-mel features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from colcompress.data.media import load_audio, load_image, load_video_frames


@dataclass(frozen=True)
class MediaTokens:
    """The special tokens a model's tokenizer has around and for media content.

    Attributes
    ----------
    vision_start, vision_end, image, video : str
    audio_start, audio_end, audio : str or None
        None for a model that reads no audio.
    """

    vision_start: str
    vision_end: str
    image: str
    video: str
    audio_start: str | None = None
    audio_end: str | None = None
    audio: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Every token, in the order above (the audio ones where the model has them)."""
        audio = (self.audio_start, self.audio_end, self.audio)
        return (self.vision_start, self.vision_end, self.image, self.video) + tuple(
            t for t in audio if t is not None
        )


#: Qwen2-VL's and Qwen2.5-VL's tokens.
QWEN_VL_TOKENS = MediaTokens("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
#: Qwen2.5-Omni's tokens.
QWEN_OMNI_TOKENS = MediaTokens(
    "<|vision_bos|>", "<|vision_eos|>", "<|IMAGE|>", "<|VIDEO|>",
    "<|audio_bos|>", "<|audio_eos|>", "<|AUDIO|>",
)  # fmt: skip

#: ``mm_token_type_ids`` values: what each position of a sequence holds.
TEXT, IMAGE, VIDEO, AUDIO = 0, 1, 2, 3

#: A run of token ids and their ``mm_token_type_ids``.
Run = tuple[list[int], list[int]]


@dataclass(frozen=True)
class MediaInput:
    """One document to encode: its id (for error messages), text and media files.

    Attributes
    ----------
    doc_id : str
    text : str
        ``""`` when the document has none.
    images : tuple of Path
        A photo, or the pages of a document, in order.
    video : Path or None
    audio : Path or None
    """

    doc_id: str
    text: str
    images: tuple[Path, ...] = ()
    video: Path | None = None
    audio: Path | None = None


@dataclass
class VLMBatch:
    """A batch of token sequences with the pixels of their visual tokens.

    Attributes
    ----------
    input_ids : Tensor[B, N]
    attention_mask : Tensor[B, N]
        1 for real tokens, 0 for padding.
    mask : Tensor[B, N]
        Bool, which output vectors take part in scoring.
    features : dict of str to Tensor
        What the vision tower and positions take besides the ids:
        ``mm_token_type_ids[B, N]`` (:data:`TEXT`, :data:`IMAGE`, :data:`VIDEO`),
        ``pixel_values[P, C * t * p * p]`` with ``image_grid_thw[I, 3]``,
        ``pixel_values_videos`` with ``video_grid_thw[V, 3]`` and
        ``second_per_grid_ts[V]``, ``input_features[A, mels, frames]`` with
        ``feature_attention_mask[A, frames]``; the processor's own outputs for models
        loaded as they are.
    """

    input_ids: Tensor
    attention_mask: Tensor
    mask: Tensor
    features: dict[str, Tensor] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> VLMBatch:
        return VLMBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.mask.to(device),
            {k: v.to(device) for k, v in self.features.items()},
        )

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def add_media_tokens(tokenizer: Any, tokens: MediaTokens) -> None:
    """Add the media tokens a tokenizer lacks as special tokens (a text tokenizer
    built into a Qwen-style model's inputs, for tests)."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in tokens.names if t not in vocab]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})


def audio_tokens(frames: int) -> int:
    """Audio tokens Qwen2.5-Omni's audio tower gives for ``frames`` log-mel frames (its
    two stride-2 reductions)."""
    return ((frames - 1) // 2 + 1 - 2) // 2 + 1


def video_patches(
    frames: Tensor, temporal_patch_size: int, patch_size: int
) -> tuple[Tensor, Tensor]:
    """Stack the image processor's patches of video frames in time.

    Parameters
    ----------
    frames : Tensor[F, R, C * t * p * p]
        Each frame's patches from the image processor, which repeats a still image
        ``t = temporal_patch_size`` times along its time axis; every frame has the
        same size (R patch rows).
    temporal_patch_size : int
    patch_size : int
        ``p``.

    Returns
    -------
    patches : Tensor[G * R, C * t * p * p]
        ``G = ceil(F / t)`` groups of ``t`` consecutive frames (the last frame
        repeated to fill the last group); row ``g * R + r`` holds patch ``r`` of the
        group's frames, as ``(C, t, p, p)``.
    grid_t : Tensor[]
        ``G``, long.
    """
    count, rows, width = frames.shape
    t, area = temporal_patch_size, patch_size * patch_size
    pad = -count % t
    if pad:
        frames = torch.cat([frames, frames[-1:].expand(pad, -1, -1)])
    groups = (count + pad) // t
    still = frames.reshape(groups, t, rows, width // (t * area), t, area)[..., 0, :]
    stacked = still.permute(0, 2, 3, 1, 4)  # [G, R, C, t, p * p]
    return stacked.reshape(groups * rows, width), torch.tensor(groups)


def _merged_tokens(grid: Tensor, merge_size: int) -> int:
    return int(grid.prod()) // merge_size**2


class QwenInputs:
    """Builds :class:`VLMBatch` es for a Qwen2-VL-style model from texts and media.

    Parameters
    ----------
    tokenizer
        A transformers tokenizer holding ``tokens``.
    image_processor
        A ``Qwen2VLImageProcessorPil`` (its ``size``, ``patch_size``, ``merge_size``
        and ``temporal_patch_size`` fix how many visual tokens an image gives).
    query_prefix, doc_prefix : str
        Prompt text put before every query and every document.
    num_frames : int
        Frames sampled uniformly from a video.
    video_max_pixels : int or None
        Pixels a video frame is resized to at most (None: the image processor's
        limit for images).
    video_fps : float
        Frames a second the sampled frames are taken to be at: the time between
        two temporal groups of visual tokens is ``temporal_patch_size / video_fps``
        seconds (``second_per_grid_ts``, which spaces their temporal positions).
    tokens : MediaTokens
        The model's media tokens (:data:`QWEN_VL_TOKENS`, :data:`QWEN_OMNI_TOKENS`).
    audio_processor
        A ``WhisperFeatureExtractor`` for a model that hears (``tokens`` with audio
        tokens); None: documents with audio are refused.
    """

    def __init__(
        self,
        tokenizer: Any,
        image_processor: Any,
        query_prefix: str,
        doc_prefix: str,
        num_frames: int,
        video_max_pixels: int | None,
        video_fps: float,
        tokens: MediaTokens = QWEN_VL_TOKENS,
        audio_processor: Any = None,
    ) -> None:
        missing = [t for t in tokens.names if t not in tokenizer.get_vocab()]
        if missing:
            raise ValueError(f"the tokenizer lacks the media tokens {missing}")
        if num_frames < 1:
            raise ValueError(f"model.num_frames must be >= 1, got {num_frames}")
        if not video_fps > 0:
            raise ValueError(f"model.video_fps must be > 0, got {video_fps}")
        if (audio_processor is None) != (tokens.audio is None):
            raise ValueError("an audio processor goes with audio tokens, and only with them")
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.audio_processor = audio_processor
        self.query_prefix = query_prefix
        self.doc_prefix = doc_prefix
        self.num_frames = num_frames
        self.frame_size = None
        if video_max_pixels is not None:
            shortest = image_processor.size["shortest_edge"]
            self.frame_size = {"shortest_edge": shortest, "longest_edge": int(video_max_pixels)}
        self.video_fps = float(video_fps)
        ids = tokenizer.convert_tokens_to_ids
        self.start_id, self.end_id = ids(tokens.vision_start), ids(tokens.vision_end)
        self.image_id, self.video_id = ids(tokens.image), ids(tokens.video)
        if tokens.audio is not None:
            self.audio_start_id, self.audio_end_id = ids(tokens.audio_start), ids(tokens.audio_end)
            self.audio_id = ids(tokens.audio)
        self.merge_size = int(image_processor.merge_size)
        self.temporal_patch_size = int(image_processor.temporal_patch_size)
        self.patch_size = int(image_processor.patch_size)

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def text_lengths(self, texts: Sequence[str], is_query: bool) -> list[int]:
        """Tokens of each text with its prefix, uncut."""
        prefix = self.query_prefix if is_query else self.doc_prefix
        return [len(self._ids(prefix + text)) for text in texts]

    def queries(self, texts: Sequence[str], length: int) -> VLMBatch:
        """Prefixed query texts, each cut to ``length`` tokens."""
        rows = [self._ids(self.query_prefix + text)[:length] for text in texts]
        return self._pad(rows, [[TEXT] * len(r) for r in rows], {})

    def _block(self, start: int, token: int, count: int, end: int, kind: int) -> Run:
        return [start, *[token] * count, end], [TEXT, *[kind] * count, TEXT]

    def _images(self, doc: MediaInput, features: dict[str, list[Tensor]]) -> Run:
        out = self.image_processor(
            images=[load_image(p, doc.doc_id) for p in doc.images], return_tensors="pt"
        )
        features["pixel_values"].append(out["pixel_values"])
        ids: list[int] = []
        kinds: list[int] = []
        for grid in out["image_grid_thw"]:
            features["image_grid_thw"].append(grid)
            n = _merged_tokens(grid, self.merge_size)
            block = self._block(self.start_id, self.image_id, n, self.end_id, IMAGE)
            ids, kinds = ids + block[0], kinds + block[1]
        return ids, kinds

    def _video(self, doc: MediaInput, features: dict[str, list[Tensor]]) -> Run:
        frames = load_video_frames(doc.video, doc.doc_id, self.num_frames)
        sizes = {} if self.frame_size is None else {"size": self.frame_size}
        out = self.image_processor(images=list(frames), return_tensors="pt", **sizes)
        grid = out["image_grid_thw"][0]
        per_frame = out["pixel_values"].reshape(len(frames), int(grid.prod()), -1)
        pixels, grid_t = video_patches(per_frame, self.temporal_patch_size, self.patch_size)
        features["pixel_values_videos"].append(pixels)
        features["video_grid_thw"].append(torch.stack([grid_t, grid[1], grid[2]]))
        seconds = self.temporal_patch_size / self.video_fps
        features["second_per_grid_ts"].append(torch.tensor(seconds))
        n = _merged_tokens(features["video_grid_thw"][-1], self.merge_size)
        return self._block(self.start_id, self.video_id, n, self.end_id, VIDEO)

    def _audio(self, doc: MediaInput, features: dict[str, list[Tensor]]) -> Run:
        if self.audio_processor is None:
            raise ValueError(
                f"document {doc.doc_id!r} has audio ({doc.audio}) but this model reads no "
                "audio (Qwen2.5-Omni does: model=qwen25omni_3b)"
            )
        rate = int(self.audio_processor.sampling_rate)
        samples = load_audio(doc.audio, doc.doc_id, rate)
        out = self.audio_processor(
            [samples], sampling_rate=rate, padding="longest", truncation=False,
            return_attention_mask=True, return_tensors="pt",
        )  # fmt: skip
        frames = int(out["attention_mask"].sum())
        features["input_features"].append(out["input_features"][0, :, :frames])
        n = audio_tokens(frames)
        return self._block(self.audio_start_id, self.audio_id, n, self.audio_end_id, AUDIO)

    def documents(self, docs: Sequence[MediaInput], length: int) -> VLMBatch:
        """Documents with their images, video and audio read, decoded and encoded.

        The media tokens are never cut: the text is cut so that the whole sequence
        holds at most ``length`` tokens.

        Raises
        ------
        MediaError
            A media file is missing or cannot be decoded.
        ValueError
            A document's prefix and media tokens alone exceed ``length``, or it has
            audio and the model reads none.
        """
        rows, kinds = [], []
        collected: dict[str, list[Tensor]] = {
            name: []
            for name in (
                "pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw",
                "second_per_grid_ts", "input_features",
            )
        }  # fmt: skip
        for doc in docs:
            ids = self._ids(self.doc_prefix)
            kind = [TEXT] * len(ids)
            for present, part in (
                (doc.images, self._images),
                (doc.video is not None, self._video),
                (doc.audio is not None, self._audio),
            ):
                if present:
                    more_ids, more_kinds = part(doc, collected)
                    ids, kind = ids + more_ids, kind + more_kinds
            room = length - len(ids)
            if room < 0:
                counts = {k: kind.count(v) for k, v in (("image", IMAGE), ("video", VIDEO))}
                raise ValueError(
                    f"document {doc.doc_id!r}: its prefix and {counts['image']} image + "
                    f"{counts['video']} video + {kind.count(AUDIO)} audio tokens exceed "
                    f"model.doc_length={length}: raise model.doc_length, or lower "
                    "model.max_pixels, model.video_max_pixels or model.num_frames"
                )
            text = self._ids(doc.text)[:room] if doc.text else []
            rows.append(ids + text)
            kinds.append(kind + [TEXT] * len(text))
        features: dict[str, Tensor] = {}
        for name in ("pixel_values", "pixel_values_videos"):
            if collected[name]:
                features[name] = torch.cat(collected[name])
        for name in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts"):
            if collected[name]:
                features[name] = torch.stack(collected[name])
        if collected["input_features"]:
            features.update(_stack_audio(collected["input_features"]))
        return self._pad(rows, kinds, features)

    def _pad(
        self, rows: list[list[int]], kinds: list[list[int]], features: dict[str, Tensor]
    ) -> VLMBatch:
        width = max((len(r) for r in rows), default=0)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        types = torch.zeros((len(rows), width), dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for b, (row, kind) in enumerate(zip(rows, kinds, strict=True)):
            ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
            types[b, : len(kind)] = torch.tensor(kind, dtype=torch.long)
            attention[b, : len(row)] = 1
        features = {"mm_token_type_ids": types, **features}
        return VLMBatch(ids, attention, attention.bool(), features)


def _stack_audio(features: list[Tensor]) -> dict[str, Tensor]:
    """``input_features[A, mels, frames]`` padded with zeros to the longest, and
    ``feature_attention_mask[A, frames]``."""
    longest = max(f.shape[-1] for f in features)
    padded = torch.stack([F.pad(f, (0, longest - f.shape[-1])) for f in features])
    lengths = torch.tensor([f.shape[-1] for f in features])
    mask = (torch.arange(longest)[None, :] < lengths[:, None]).long()
    return {"input_features": padded, "feature_attention_mask": mask}
