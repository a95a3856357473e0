"""Media documents: corpus fields, lazy reading of images, video frames and audio."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from colcompress.data.beir import DataFormatError, Doc, load_beir
from colcompress.data.media import (
    MediaError,
    load_audio,
    load_image,
    load_video_frames,
    uniform_indices,
)
from tests.conftest import DATA_DIR
from tests.unit.test_data_beir import write_beir

FLICKR = DATA_DIR.parent / "images" / "flickr8k_1k"
needs_flickr = pytest.mark.skipif(
    not (FLICKR / "corpus.jsonl").is_file(), reason=f"needs Flickr8k-1k in {FLICKR}"
)
QRELS = {"test": "q1\td1\t1\n"}


def flickr_images(count: int) -> list[Path]:
    return sorted((FLICKR / "images").glob("*.jpg"))[:count]


def write_video(path: Path, images: list[Path], repeats: int, size: tuple[int, int]) -> None:
    """An MPEG-4 video showing each image for ``repeats`` frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for image_path in images:
            with Image.open(image_path) as image:
                frame = av.VideoFrame.from_image(image.convert("RGB").resize(size))
            for _ in range(repeats):
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_tone(path: Path, rate: int, seconds: float) -> None:
    """A mono 16-bit WAV of a 440 Hz tone at half amplitude."""
    t = np.arange(int(rate * seconds)) / rate
    samples = (np.sin(2 * np.pi * 440 * t) * 16384).astype(np.int16)[None, :]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_corpus_media_fields_resolve_against_the_dataset_folder(tmp_path: Path):
    corpus = [
        {"_id": "d1", "image": "img/a.jpg"},
        {"_id": "d2", "images": ["p/1.png", "p/2.png"], "text": "two pages"},
        {"_id": "d3", "video": "v.mp4", "audio": "v.wav"},
        {"_id": "d4", "title": "plain", "text": "text"},
    ]
    root = write_beir(tmp_path / "mm", corpus, [{"_id": "q1", "text": "q"}], QRELS)
    docs = load_beir(root, "test").corpus  # no media file exists: nothing is read yet
    assert docs["d1"] == Doc("", "", images=(root / "img/a.jpg",))
    assert docs["d2"].images == (root / "p/1.png", root / "p/2.png")
    assert docs["d2"].full_text == "two pages"
    assert (docs["d3"].video, docs["d3"].audio) == (root / "v.mp4", root / "v.wav")
    assert docs["d3"].media == (root / "v.mp4", root / "v.wav")
    assert docs["d4"].media == ()


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"image": "a.jpg", "images": ["b.jpg"]}, 'give "image" (one file) or "images"'),
        ({"images": []}, '"images" must be a non-empty list of paths, got []'),
        ({"image": 3}, '"image" must be a non-empty path string'),
        ({"video": ""}, '"video" must be a non-empty path string'),
    ],
)
def test_bad_media_fields_name_the_line(tmp_path: Path, record: dict, message: str):
    corpus = [{"_id": "d0", "text": "fine"}, {"_id": "d1", **record}]
    root = write_beir(tmp_path / "bad", corpus, [{"_id": "q1", "text": "q"}], QRELS)
    with pytest.raises(DataFormatError, match=re.escape(f"corpus.jsonl:2: {message}")):
        load_beir(root, "test")


def test_a_corpus_without_any_content_is_refused(tmp_path: Path):
    corpus = [{"_id": "d1", "text": ""}, {"_id": "d2", "title": "", "text": ""}]
    root = write_beir(tmp_path / "empty", corpus, [{"_id": "q1", "text": "q"}], QRELS)
    with pytest.raises(
        DataFormatError, match="none of the 2 documents has content: every title and text"
    ):
        load_beir(root, "test")


def test_a_text_model_refuses_an_image_only_document():
    from colcompress.models.colbert import ColBERT

    model = ColBERT(
        random_config={"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2},
        dim=16,
    )
    assert model.document_input("d1", Doc("T", "body")) == "T body"
    with pytest.raises(ValueError, match=r"document 'd1' has no text, only media \(/x/a.jpg\)"):
        model.document_input("d1", Doc("", "", images=(Path("/x/a.jpg"),)))


def test_missing_and_corrupt_images_name_document_and_file(tmp_path: Path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(MediaError, match=re.escape(f"document 'd7': image file {missing}: not")):
        load_image(missing, "d7")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(MediaError, match=re.escape(f"document 'd8': image file {corrupt}: cannot")):
        load_image(corrupt, "d8")


@needs_flickr
def test_a_truncated_image_is_an_error_not_a_partial_image(tmp_path: Path):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(flickr_images(1)[0].read_bytes()[:2000])
    with pytest.raises(MediaError, match=re.escape(f"document 'd9': image file {truncated}")):
        load_image(truncated, "d9")


@needs_flickr
def test_flickr_image_loads_as_rgb():
    (path,) = flickr_images(1)
    image = load_image(path, "d1")
    with Image.open(path) as original:
        assert image.mode == "RGB" and image.size == original.size


def test_uniform_indices_cover_first_and_last_and_repeat_when_short():
    assert uniform_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert uniform_indices(3, 5).tolist() == [0, 0, 1, 2, 2]
    with pytest.raises(ValueError, match="total >= 1 and count >= 1"):
        uniform_indices(0, 3)


@needs_flickr
@pytest.mark.parametrize("num_frames", [24, 4])
def test_video_from_flickr_images_decodes_to_the_configured_frames(tmp_path: Path, num_frames: int):
    images = flickr_images(3)
    path = tmp_path / "clip.mp4"
    write_video(path, images, repeats=4, size=(64, 48))  # 12 frames: 4 of each image
    frames = load_video_frames(path, "v1", num_frames)
    assert frames.shape == (num_frames, 48, 64, 3) and frames.dtype == np.uint8
    # uniform over 12 frames: the first frame shows image 0, the last image 2
    for frame, image_path in ((frames[0], images[0]), (frames[-1], images[2])):
        with Image.open(image_path) as image:
            expected = np.asarray(image.convert("RGB").resize((64, 48)), dtype=np.float64)
        other = images[1] if image_path != images[1] else images[0]
        with Image.open(other) as image:
            wrong = np.asarray(image.convert("RGB").resize((64, 48)), dtype=np.float64)
        assert np.abs(frame - expected).mean() < np.abs(frame - wrong).mean()


def test_missing_and_undecodable_videos_are_errors(tmp_path: Path):
    with pytest.raises(MediaError, match=r"document 'v2': video file .*nope.mp4: not found"):
        load_video_frames(tmp_path / "nope.mp4", "v2", 24)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(MediaError, match=r"document 'v3': video file .*junk.mp4: cannot decode"):
        load_video_frames(junk, "v3", 24)


def test_audio_is_resampled_to_the_configured_rate(tmp_path: Path):
    path = tmp_path / "tone.wav"
    write_tone(path, rate=16000, seconds=1.5)
    samples = load_audio(path, "a1", 4000)
    assert samples.dtype == np.float32 and abs(samples.shape[0] - 6000) <= 16
    assert 0.45 < np.abs(samples).max() < 0.55  # half amplitude survives resampling
    with pytest.raises(MediaError, match=r"document 'a2': audio file .*missing.wav: not found"):
        load_audio(tmp_path / "missing.wav", "a2", 4000)


def test_text_references_refuse_media_documents(tmp_path: Path):
    from colcompress.data.negatives import mine_negatives
    from colcompress.evaluation.baselines import evaluate_baselines

    corpus = [{"_id": "d1", "image": "a.jpg"}, {"_id": "d2", "text": "words"}]
    root = write_beir(tmp_path / "mixed", corpus, [{"_id": "q1", "text": "q"}], QRELS)
    data = load_beir(root, "test")
    with pytest.raises(ValueError, match="1 of the 2 documents of mixed are media without text"):
        mine_negatives(data, top_k=5)
    with pytest.raises(ValueError, match=r"\['bm25'\] read document text, but 1 of the 2"):
        evaluate_baselines(data, names=["bm25", "random"])
    chance = evaluate_baselines(data, names=["random"], top_k=2, metrics=["recall@2"])
    assert chance["random"]["metrics"] == {"recall@2": 1.0}  # both documents retrieved
