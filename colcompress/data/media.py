"""Read a document's media files: images (Pillow), video frames and audio (PyAV).

Media are read when a document is encoded, not when the corpus is loaded. A file that
is missing or cannot be decoded raises :class:`MediaError` naming the document id and
the file.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

from colcompress.data.beir import DataFormatError

__all__ = ["MediaError", "load_audio", "load_image", "load_video_frames", "uniform_indices"]


class MediaError(DataFormatError):
    """A document's media file is missing or unreadable; the message names both."""


def _error(doc_id: str, kind: str, path: Path, reason: str) -> MediaError:
    return MediaError(f"document {doc_id!r}: {kind} file {path}: {reason}")


def _check_file(doc_id: str, kind: str, path: Path) -> None:
    if not path.is_file():
        raise _error(doc_id, kind, path, "not found")


def load_image(path: Path, doc_id: str) -> Image.Image:
    """Decode an image file completely, as RGB.

    Parameters
    ----------
    path : Path
    doc_id : str
        The document it belongs to (for error messages).

    Returns
    -------
    PIL.Image.Image
        Mode ``"RGB"``, pixels loaded.

    Raises
    ------
    MediaError
        The file is missing, not an image, or truncated.
    """
    _check_file(doc_id, "image", path)
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _error(doc_id, "image", path, f"cannot decode ({exc})") from None


def uniform_indices(total: int, count: int) -> np.ndarray:
    """``count`` indices spread evenly over ``0 .. total - 1``, first and last included.

    With fewer than ``count`` items some indices repeat, so the result always has
    ``count`` entries.

    Returns
    -------
    ndarray[count]
        int64, non-decreasing.
    """
    if total < 1 or count < 1:
        raise ValueError(f"uniform_indices needs total >= 1 and count >= 1, got {total}, {count}")
    return np.linspace(0, total - 1, count).round().astype(np.int64)


def _count_frames(container: av.container.InputContainer) -> int:
    """Frames of the first video stream: its header's count, else its packets."""
    stream = container.streams.video[0]
    if stream.frames > 0:
        return int(stream.frames)
    return sum(1 for packet in container.demux(stream) if packet.size > 0)


def _decode_at(path: Path, wanted: np.ndarray) -> tuple[dict[int, np.ndarray], int]:
    """The RGB frames at the ``wanted`` indices, and how many frames were decoded."""
    keep = set(wanted.tolist())
    frames: dict[int, np.ndarray] = {}
    decoded = 0
    with av.open(str(path)) as container:
        for decoded, frame in enumerate(container.decode(video=0), start=1):
            if decoded - 1 in keep:
                frames[decoded - 1] = frame.to_ndarray(format="rgb24")
    return frames, decoded


def load_video_frames(path: Path, doc_id: str, num_frames: int) -> np.ndarray:
    """Decode a video and keep ``num_frames`` frames sampled uniformly over its length.

    Only the sampled frames are kept in memory. When the container's frame count is
    wrong (fewer frames decode than it says), the frames are sampled again over the
    frames that decoded.

    Parameters
    ----------
    path : Path
    doc_id : str
        The document it belongs to (for error messages).
    num_frames : int
        Frames to keep (24 in Qin et al. 2026); a shorter video repeats frames.

    Returns
    -------
    ndarray[num_frames, H, W, 3]
        uint8 RGB frames in time order.

    Raises
    ------
    MediaError
        The file is missing, not a video, or has no decodable frame.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    _check_file(doc_id, "video", path)
    try:
        with av.open(str(path)) as container:
            total = _count_frames(container) if container.streams.video else 0
        if total == 0:
            raise _error(doc_id, "video", path, "has no video frame")
        wanted = uniform_indices(total, num_frames)
        frames, decoded = _decode_at(path, wanted)
        if decoded and decoded < total:
            wanted = uniform_indices(decoded, num_frames)
            frames, decoded = _decode_at(path, wanted)
    except (av.FFmpegError, OSError) as exc:
        raise _error(doc_id, "video", path, f"cannot decode ({exc})") from None
    if not decoded:
        raise _error(doc_id, "video", path, "no frame could be decoded")
    return np.stack([frames[i] for i in wanted.tolist()])


def load_audio(path: Path, doc_id: str, sample_rate: int) -> np.ndarray:
    """Decode an audio file to mono float samples at ``sample_rate`` Hz.

    Parameters
    ----------
    path : Path
        Any format FFmpeg reads (WAV, FLAC, MP3, ...; the audio stream of a video).
    doc_id : str
        The document it belongs to (for error messages).
    sample_rate : int
        Target rate in Hz (4,000 in Qin et al. 2026); FFmpeg's resampler converts.

    Returns
    -------
    ndarray[S]
        float32 samples in ``[-1, 1]``.

    Raises
    ------
    MediaError
        The file is missing, has no audio stream or cannot be decoded.
    """
    if sample_rate < 1:
        raise ValueError(f"sample_rate must be >= 1, got {sample_rate}")
    _check_file(doc_id, "audio", path)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if container.streams.audio:
                for frame in container.decode(audio=0):
                    chunks.extend(f.to_ndarray()[0] for f in resampler.resample(frame))
                chunks.extend(f.to_ndarray()[0] for f in resampler.resample(None))
    except (av.FFmpegError, OSError) as exc:
        raise _error(doc_id, "audio", path, f"cannot decode ({exc})") from None
    if not chunks:
        raise _error(doc_id, "audio", path, "no audio sample could be decoded")
    return np.concatenate(chunks).astype(np.float32, copy=False)
