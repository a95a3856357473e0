"""What a late-interaction checkpoint says about how its library encodes text."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor


@dataclass(frozen=True)
class Pretrained:
    """A late-interaction checkpoint as read from its folder.

    Attributes
    ----------
    folder : Path
        The checkpoint folder.
    backbone : Path
        The folder of its transformers model and tokenizer.
    projection : Tensor[D, H]
        The checkpoint's own token projection (bias-free linear map).
    query_marker, doc_marker : str or None
        Token inserted after [CLS] of queries / documents; None inserts nothing.
    query_length, doc_length : int
        Token lengths, the marker included.
    query_augmentation : bool
        Pad queries to ``query_length`` with [MASK] tokens, every one scored.
    attend_to_augmentation : bool
        Whether the encoder attends to those [MASK] tokens.
    skiplist : tuple of str
        Words whose document vectors are dropped (punctuation).
    skiplist_by : {"encode", "vocabulary"}
        How a word becomes a token id: the first id of ``tokenizer.encode(word)``
        (Stanford ColBERT) or ``tokenizer.convert_tokens_to_ids(word)`` (PyLate).
    added_tokens : tuple of str
        Tokens added to the tokenizer before encoding (PyLate's prefixes).
    prompt : str
        Text put before every query and document (a sentence-transformers prompt).
    strip : bool
        Strip surrounding whitespace from texts (sentence-transformers does).
    lowercase : bool
        Lower-case texts before tokenising (sentence-transformers ``do_lower_case``).
    """

    folder: Path
    backbone: Path
    projection: Tensor
    query_marker: str | None
    doc_marker: str | None
    query_length: int
    doc_length: int
    query_augmentation: bool
    attend_to_augmentation: bool
    skiplist: tuple[str, ...]
    skiplist_by: Literal["encode", "vocabulary"]
    added_tokens: tuple[str, ...] = ()
    prompt: str = ""
    strip: bool = False
    lowercase: bool = False

    @property
    def dim(self) -> int:
        return int(self.projection.shape[0])

    @property
    def hidden_size(self) -> int:
        return int(self.projection.shape[1])


def read_json(path: Path, expected: str) -> dict[str, Any] | list[Any]:
    """Parse a JSON file; a missing or malformed one raises naming it and ``expected``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: expected {expected}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}): expected {expected}") from error


def read_tensor(folder: Path, key: str) -> Tensor:
    """One tensor of the weights saved in ``folder`` (``model.safetensors``, else
    ``pytorch_model.bin`` loaded with ``weights_only=True``).

    Raises
    ------
    FileNotFoundError
        When the folder holds neither file.
    KeyError
        When the weights have no ``key``.
    """
    safetensors = folder / "model.safetensors"
    if safetensors.is_file():
        from safetensors import safe_open

        with safe_open(str(safetensors), framework="pt", device="cpu") as f:
            if key not in f.keys():
                raise KeyError(f"{safetensors} holds no tensor {key!r}")
            return f.get_tensor(key)
    binary = folder / "pytorch_model.bin"
    if binary.is_file():
        # mmap needs torch's zip format; files from torch < 1.6 load whole
        mmap = zipfile.is_zipfile(binary)
        state = torch.load(binary, map_location="cpu", weights_only=True, mmap=mmap)
        if key not in state:
            raise KeyError(f"{binary} holds no tensor {key!r}")
        return state[key].clone()
    raise FileNotFoundError(
        f"{folder} holds no weights: expected model.safetensors or pytorch_model.bin"
    )
