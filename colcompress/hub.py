"""The Hugging Face hub: offline unless asked, and hub ids turned into local folders."""

from __future__ import annotations

import os
from pathlib import Path

# Files a checkpoint folder needs neither to encode nor to train.
_IGNORED = ["*.h5", "*.msgpack", "*.onnx", "*.ot", "*.tflite", "onnx/*", "openvino/*", "*.gguf"]


def set_offline(offline: bool) -> None:
    """Switch hub access for this process (``hub_offline`` in ``colcompress/conf/config.yaml``).

    Sets ``HF_HUB_OFFLINE`` for child processes and the flag huggingface_hub and
    transformers read at every call (they read the environment only once, at import).

    Parameters
    ----------
    offline : bool
        True: models load from local folders and the hub cache only.
        False: hub ids download as in transformers.
    """
    import huggingface_hub.constants

    os.environ["HF_HUB_OFFLINE"] = "1" if offline else "0"
    huggingface_hub.constants.HF_HUB_OFFLINE = offline


def ignore_patterns(files: list[str]) -> list[str]:
    """Files of a hub repository not to download: other frameworks' weights, and a
    ``pytorch_model.bin`` beside a ``model.safetensors`` (colbertv2.0 has both).

    Parameters
    ----------
    files : list of str
        The repository's file names (empty when offline: the cache is read as it is).
    """
    suffix = "model.safetensors"
    twins = [f[: -len(suffix)] + "pytorch_model.bin" for f in files if f.endswith(suffix)]
    return _IGNORED + twins


def local_folder(name: str, option: str) -> Path:
    """A local folder holding the checkpoint ``name``.

    Parameters
    ----------
    name : str
        A local directory, or a hub id (``owner/model``) that is in the hub cache or,
        with downloads allowed, is downloaded into it.
    option : str
        The config option that named it (for error messages).

    Raises
    ------
    FileNotFoundError
        When ``name`` is neither a folder nor a model the hub gives.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise FileNotFoundError(f"{option}={name!r} is a file; expected a checkpoint folder")
    from huggingface_hub import list_repo_files, snapshot_download
    from huggingface_hub.constants import HF_HUB_OFFLINE

    try:
        files = [] if HF_HUB_OFFLINE else list_repo_files(name)
        return Path(snapshot_download(repo_id=name, ignore_patterns=ignore_patterns(files)))
    except Exception as error:
        hint = (
            "downloads are off (hub_offline=true); allow them with hub_offline=false"
            if HF_HUB_OFFLINE
            else f"the hub did not give it: {type(error).__name__}: {error}"
        )
        raise FileNotFoundError(
            f"{option}={name!r} is neither a local folder nor a model in the hub cache: {hint}"
        ) from error
