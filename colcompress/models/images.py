"""Image documents as a vision tower takes them: square crops, normalised pixels, patch ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from colcompress.compressors.hashing import mix
from colcompress.data.beir import Doc

_MASK31 = 0x7FFFFFFF


@dataclass(frozen=True)
class ImageInput:
    """One image document to encode: its id (for error messages) and its file.

    Attributes
    ----------
    doc_id : str
    path : Path
    """

    doc_id: str
    path: Path

    @classmethod
    def of(cls, doc_id: str, doc: Doc, model: str) -> ImageInput:
        """The one image of a document, for a model that encodes one image per document.

        Parameters
        ----------
        doc_id : str
        doc : Doc
        model : str
            The model's name, for the error.

        Raises
        ------
        ValueError
            The document has no image, or several.
        """
        if len(doc.images) != 1:
            found = f"{len(doc.images)} images" if doc.images else "no image"
            raise ValueError(
                f"document {doc_id!r} has {found}: {model} encodes one image "
                "per document (the corpus field image)"
            )
        return cls(doc_id, doc.images[0])


@dataclass
class Pixels:
    """A batch of image documents.

    Attributes
    ----------
    pixel_values : Tensor[B, C, S, S]
        Normalised pixels.
    input_ids : Tensor[B, N]
        One id per visual token, hashed from the pixels of its patch (0 for a class
        token): what token ids are to text, for compressors whose pseudo-random
        choices are keyed on a document's ids (:mod:`colcompress.compressors.hashing`).
    mask : Tensor[B, N]
        Bool, every visual token is real (images of one size have no padding).
    """

    pixel_values: Tensor
    input_ids: Tensor
    mask: Tensor

    def to(self, device: torch.device | str) -> Pixels:
        return Pixels(self.pixel_values.to(device), self.input_ids.to(device), self.mask.to(device))

    def __len__(self) -> int:
        return self.pixel_values.shape[0]


def center_crop(image: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` (bicubic) and cut the centre square, as
    CLIP's preprocessing does.

    Returns
    -------
    ndarray[size, size, 3]
        uint8 RGB.
    """
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize(
        (max(size, round(width * scale)), max(size, round(height * scale))),
        Image.Resampling.BICUBIC,
    )
    left = (resized.width - size) // 2
    top = (resized.height - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)).convert("RGB"))


def patch_ids(pixels: Tensor, patch_size: int, leading: int) -> Tensor:
    """A 31-bit id per visual token from the raw pixels of its patch.

    Parameters
    ----------
    pixels : Tensor[B, C, S, S]
        uint8 crops.
    patch_size : int
        The tower's patch size (``S`` is a multiple of it).
    leading : int
        Tokens the tower puts before the patches (a class token: 1); their id is 0.

    Returns
    -------
    Tensor[B, leading + (S / patch_size)^2]
        int64, patches in the tower's row-major order.
    """
    batch, channels, size, _ = pixels.shape
    grid = size // patch_size
    patches = pixels.long().reshape(batch, channels, grid, patch_size, grid, patch_size)
    patches = patches.permute(0, 2, 4, 1, 3, 5).reshape(batch, grid * grid, -1)
    salt = mix(torch.arange(patches.shape[-1], device=pixels.device) + 1)
    ids = mix(mix(patches ^ salt).sum(-1) & _MASK31)
    return torch.cat([ids.new_zeros(batch, leading), ids], dim=1)


def pixel_batch(
    crops: Sequence[np.ndarray],
    mean: Sequence[float],
    std: Sequence[float],
    patch_size: int,
    num_tokens: int,
) -> Pixels:
    """Stack uint8 crops into a normalised batch with patch ids and a full mask.

    Parameters
    ----------
    crops : sequence of ndarray[S, S, C]
        uint8, from :func:`center_crop`.
    mean, std : sequence of float
        Per-channel normalisation of pixels scaled to ``[0, 1]``.
    patch_size : int
    num_tokens : int
        Visual tokens the tower gives per image (its class tokens included).

    Returns
    -------
    Pixels
    """
    pixels = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()  # [B, C, S, S]
    mean_t = torch.tensor(mean, dtype=torch.float32)[None, :, None, None]
    std_t = torch.tensor(std, dtype=torch.float32)[None, :, None, None]
    values = (pixels.float() / 255.0 - mean_t) / std_t
    patches = (pixels.shape[-1] // patch_size) ** 2
    ids = patch_ids(pixels, patch_size, num_tokens - patches)
    mask = torch.ones(ids.shape, dtype=torch.bool)
    return Pixels(values, ids, mask)
