"""colcompress-prepare-media: tiny fake releases in, BEIR collections with media out."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from colcompress.data.beir import DataFormatError, load_beir
from colcompress.data.media import load_audio, load_image, load_video_frames
from colcompress.data.prepare_media import main, prepare
from colcompress.data.releases.msrvtt import prepare_msrvtt_1ka
from colcompress.data.releases.multivent import prepare_multivent2
from colcompress.data.releases.vidore import prepare_vidore_v2
from colcompress.data.releases.writer import CollectionWriter
from tests.conftest import CONF

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def encoded_image(color: tuple[int, int, int], kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 8), color).save(buffer, format=kind)
    return buffer.getvalue()


def write_video(path: Path, frames: int = 6, audio_rate: int | None = None) -> Path:
    """An MPEG-4 video of ``frames`` grey levels, with a 1 s tone track if ``audio_rate``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=5)
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        sound = None
        if audio_rate:
            sound = container.add_stream("aac", rate=audio_rate)
            sound.layout = "mono"
        for i in range(frames):
            image = np.full((24, 32, 3), 30 * i, np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        if sound is not None:
            tone = np.sin(np.arange(audio_rate) / audio_rate * 2 * np.pi * 440) * 0.5
            frame = av.AudioFrame.from_ndarray(
                tone.astype(np.float32)[None], format="fltp", layout="mono"
            )
            frame.sample_rate = audio_rate
            for packet in sound.encode(frame):
                container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
    return path


def write_wav(path: Path, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (np.sin(np.arange(rate) / rate * 2 * np.pi * 220) * 8000).astype(np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples[None], format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def assert_nothing_at(out: Path) -> None:
    """Neither ``out`` nor a temporary folder of it was left behind."""
    assert not out.exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


# ViDoRe v2 ------------------------------------------------------------------------------


def vidore_release(root: Path, drop: str | None = None) -> Path:
    """A ViDoRe v2 BEIR-format copy: 3 pages, 3 queries (2 english, 1 french), 4 qrels."""
    tables = {
        "corpus": {
            "corpus-id": pa.array([0, 1, 2], pa.int64()),
            "image": pa.array(
                [
                    {"bytes": encoded_image((255, 0, 0)), "path": "a.png"},
                    {"bytes": encoded_image((0, 255, 0), "JPEG"), "path": "b.jpg"},
                    {"bytes": encoded_image((0, 0, 255)), "path": "c.png"},
                ],
                IMAGE,
            ),
            "markdown": ["page a", "page b", "page c"],
        },
        "queries": {
            "query-id": pa.array([10, 11, 12], pa.int64()),
            "query": ["red page?", "page verte ?", "blue page?"],
            "language": ["english", "french", "english"],
        },
        "qrels": {
            "query-id": pa.array([10, 11, 12, 12], pa.int64()),
            "corpus-id": pa.array([0, 1, 2, 0], pa.int64()),
            "score": pa.array([1.0, 1.0, 2.0, 1.0]),
        },
    }
    for config, columns in tables.items():
        columns = {k: v for k, v in columns.items() if f"{config}.{k}" != drop}
        (root / config).mkdir(parents=True)
        pq.write_table(pa.table(columns), root / config / "test-00000-of-00001.parquet")
    return root


def test_vidore_pages_become_image_documents(tmp_path: Path, capsys):
    src, out = vidore_release(tmp_path / "esg_reports_v2"), tmp_path / "data" / "esg_reports_v2"
    main(["vidore_v2", "--src", str(src), "--out", str(out)])
    assert capsys.readouterr().out.strip() == (
        f"{out}: 3 documents, 3 queries, 4 judgements of 3 queries"
    )
    data = load_beir(out, "test")
    assert data.corpus["0"].images == (out / "images" / "0.png",)
    assert data.corpus["1"].images == (out / "images" / "1.jpg",)
    assert data.corpus["2"].full_text == ""  # the page is the document
    assert load_image(data.corpus["0"].images[0], "0").getpixel((3, 3)) == (255, 0, 0)
    assert data.queries == {"10": "red page?", "11": "page verte ?", "12": "blue page?"}
    assert data.qrels == {"10": {"0": 1}, "11": {"1": 1}, "12": {"2": 2, "0": 1}}


def test_vidore_keeps_one_language_when_asked(tmp_path: Path):
    src, out = vidore_release(tmp_path / "src"), tmp_path / "out"
    writer_summary = prepare(out, lambda w: prepare_vidore_v2(src, w, language="english"))
    assert writer_summary == "3 documents, 2 queries, 3 judgements of 2 queries"
    assert set(load_beir(out, "test").queries) == {"10", "12"}
    with pytest.raises(DataFormatError, match="no query in language 'german'; languages: "):
        prepare(tmp_path / "de", lambda w: prepare_vidore_v2(src, w, language="german"))
    assert_nothing_at(tmp_path / "de")


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("corpus.image", r"corpus/test-00000-of-00001.parquet: no column 'image'"),
        ("queries.query", r"queries/test-00000-of-00001.parquet: no column 'query'"),
        ("qrels.score", r"qrels/test-00000-of-00001.parquet: no column 'score'"),
    ],
)
def test_vidore_missing_column_names_the_file(tmp_path: Path, drop: str, message: str):
    src, out = vidore_release(tmp_path / "src", drop=drop), tmp_path / "out"
    with pytest.raises(DataFormatError, match=message):
        prepare(out, lambda w: prepare_vidore_v2(src, w))
    assert_nothing_at(out)


def test_vidore_bad_rows_name_file_and_row(tmp_path: Path):
    src = vidore_release(tmp_path / "src")
    qrels = src / "qrels" / "test-00000-of-00001.parquet"
    pq.write_table(pa.table({"query-id": [10, 10], "corpus-id": [0, 7], "score": [1, 1]}), qrels)
    with pytest.raises(DataFormatError, match=rf"{qrels} row 2: document id '7' is not among"):
        prepare(tmp_path / "out", lambda w: prepare_vidore_v2(src, w))
    corpus = src / "corpus" / "test-00000-of-00001.parquet"
    pq.write_table(
        pa.table({"corpus-id": [0], "image": pa.array([{"bytes": b"nope", "path": "x"}], IMAGE)}),
        corpus,
    )
    with pytest.raises(DataFormatError, match=rf"{corpus} row 1: 'image' cannot be decoded"):
        prepare(tmp_path / "out", lambda w: prepare_vidore_v2(src, w))
    with pytest.raises(DataFormatError, match=r"train-\*\.parquet \(split 'train'\)"):
        prepare(tmp_path / "out", lambda w: prepare_vidore_v2(src, w, split="train"))
    assert_nothing_at(tmp_path / "out")


def test_vidore_without_pyarrow_names_the_extra(tmp_path: Path, monkeypatch):
    src = vidore_release(tmp_path / "src")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install 'colcompress\[media-prep\]'"):
        prepare(tmp_path / "out", lambda w: prepare_vidore_v2(src, w))
    assert_nothing_at(tmp_path / "out")


# MSR-VTT 1k-A ---------------------------------------------------------------------------


def msrvtt_release(root: Path, rows: int = 3) -> tuple[Path, Path]:
    """A JSFusion CSV of ``rows`` videos and their .mp4 files (lengths 3, 4, 5 ...)."""
    videos = root / "videos" / "all"
    lines = ["key,vid_key,video_id,sentence"]
    for i in range(rows):
        lines.append(f"ret{i},msr{7000 + i},video{7000 + i},a clip number {i}")
        write_video(videos / f"video{7000 + i}.mp4", frames=3 + i)
    csv = root / "MSRVTT_JSFUSION_test.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv, videos


@pytest.mark.parametrize("media", ["link", "copy"])
def test_msrvtt_videos_become_documents_of_their_sentence(tmp_path: Path, media: str):
    csv, videos = msrvtt_release(tmp_path / "msrvtt")
    out = tmp_path / "msrvtt_1ka"
    args = ["msrvtt_1ka", "--csv", str(csv), "--videos", str(videos), "--out", str(out)]
    main([*args, "--media", media])
    data = load_beir(out, "test")
    assert list(data.corpus) == ["video7000", "video7001", "video7002"]
    assert data.queries == {f"ret{i}": f"a clip number {i}" for i in range(3)}
    assert data.qrels == {f"ret{i}": {f"video{7000 + i}": 1} for i in range(3)}
    video = data.corpus["video7001"].video
    assert video == out / "videos" / "video7001.mp4"
    assert video.is_symlink() == (media == "link")
    frames = load_video_frames(video, "video7001", 24)  # 4 frames spread over 24
    assert frames.shape == (24, 24, 32, 3)
    assert data.corpus["video7001"].audio is None


def test_msrvtt_missing_video_and_column_name_the_file(tmp_path: Path):
    csv, videos = msrvtt_release(tmp_path / "msrvtt")
    (videos / "video7001.mp4").unlink()
    out = tmp_path / "out"
    missing = videos / "video7001.mp4"
    with pytest.raises(DataFormatError, match=rf"{csv}:3: video 'video7001': no file {missing}"):
        prepare(out, lambda w: prepare_msrvtt_1ka(csv, videos, w))
    assert_nothing_at(out)
    csv.write_text("key,vid_key,video,sentence\nret0,msr7000,video7000,a clip\n")
    with pytest.raises(DataFormatError, match=rf"{csv}:1: no column 'video_id' in the header"):
        prepare(out, lambda w: prepare_msrvtt_1ka(csv, videos, w))
    with pytest.raises(DataFormatError, match=r"nowhere.csv: no such file; .*\(--csv\)"):
        prepare(out, lambda w: prepare_msrvtt_1ka(tmp_path / "nowhere.csv", videos, w))
    assert_nothing_at(out)


def test_an_existing_out_is_kept_unless_overwritten(tmp_path: Path, capsys):
    csv, videos = msrvtt_release(tmp_path / "msrvtt", rows=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["msrvtt_1ka", "--csv", str(csv), "--videos", str(videos), "--out", str(out)]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 1
    assert "exists; remove it or ask to replace it (--overwrite replaces it)" in (
        capsys.readouterr().err
    )
    assert (out / "keep.txt").read_text() == "mine"
    main([*args, "--overwrite"])
    assert sorted(p.name for p in out.iterdir()) == [
        "corpus.jsonl",
        "qrels",
        "queries.jsonl",
        "videos",
    ]


# MultiVENT 2.0 --------------------------------------------------------------------------


def multivent_release(root: Path, queries_format: str = "tsv") -> dict[str, Path]:
    """Three videos: one with its own audio track, one with a separate .wav, one silent."""
    videos = root / "videos"
    write_video(videos / "part1" / "vidA.mp4", frames=5, audio_rate=8000)
    write_video(videos / "part2" / "vidB.mp4", frames=7)
    write_video(videos / "part2" / "vidC.mp4", frames=4)
    write_wav(root / "audio" / "vidB.wav")
    if queries_format == "tsv":
        queries = root / "queries.tsv"
        queries.write_text("query_id\tquery\nq1\tflood in the city\nq2\telection rally\n")
    else:
        queries = root / "queries.jsonl"
        queries.write_text(
            json.dumps({"query_id": "q1", "query": "flood in the city"})
            + "\n"
            + json.dumps({"query_id": "q2", "query": "election rally"})
            + "\n"
        )
    qrels = root / "judgments.qrels"
    qrels.write_text("q1 0 vidA 1\nq1 0 vidC 0\nq2 0 vidB 2\n")
    metadata = root / "metadata.jsonl"
    metadata.write_text(
        json.dumps({"video_id": "vidA", "title": "Flood", "description": "Water everywhere"})
        + "\n"
        + json.dumps({"video_id": "other", "title": "Not in the test set"})
        + "\n"
    )
    return {"videos": videos, "queries": queries, "qrels": qrels, "metadata": metadata}


@pytest.mark.parametrize("queries_format", ["tsv", "jsonl"])
def test_multivent_videos_audio_and_metadata(tmp_path: Path, queries_format: str):
    files = multivent_release(tmp_path / "mv", queries_format)
    out = tmp_path / "multivent2"
    main(
        ["multivent2", "--out", str(out), "--audio", str(tmp_path / "mv" / "audio")]
        + [f"--{name}={path}" for name, path in files.items()]
    )
    data = load_beir(out, "test")
    docs = data.corpus
    assert list(docs) == ["vidA", "vidB", "vidC"]
    assert (docs["vidA"].title, docs["vidA"].text) == ("Flood", "Water everywhere")
    assert docs["vidB"].full_text == "" and docs["vidC"].full_text == ""
    assert docs["vidA"].audio == docs["vidA"].video == out / "videos" / "vidA.mp4"  # its track
    assert docs["vidB"].audio == out / "audio" / "vidB.wav"  # the separate file
    assert docs["vidC"].audio is None  # silent, no separate file
    assert data.queries == {"q1": "flood in the city", "q2": "election rally"}
    assert data.qrels == {"q1": {"vidA": 1, "vidC": 0}, "q2": {"vidB": 2}}
    assert load_video_frames(docs["vidB"].video, "vidB", 24).shape[0] == 24
    for doc_id in ("vidA", "vidB"):
        samples = load_audio(docs[doc_id].audio, doc_id, 4000)
        assert 3500 <= samples.shape[0] <= 4700  # about 1 s at 4 kHz


def _multivent(files: dict[str, Path]) -> Callable[[CollectionWriter], None]:
    return lambda w: prepare_multivent2(files["videos"], files["queries"], files["qrels"], w)


def test_multivent_judgement_of_an_unknown_video_names_the_line(tmp_path: Path):
    files = multivent_release(tmp_path / "mv")
    files["qrels"].write_text("q1 0 vidA 1\nq2 0 vidZ 1\n")
    out = tmp_path / "out"
    with pytest.raises(
        DataFormatError, match=rf"{files['qrels']}:2: document id 'vidZ' is not among the 3"
    ):
        prepare(out, _multivent(files))
    assert_nothing_at(out)
    files["qrels"].write_text("q1 vidA 1\n")
    with pytest.raises(DataFormatError, match=rf"{files['qrels']}:1: expected 4 whitespace"):
        prepare(out, _multivent(files))
    files["qrels"].write_text("q9 0 vidA 1\n")
    with pytest.raises(DataFormatError, match=r":1: query id 'q9' is not among the 2 queries"):
        prepare(out, _multivent(files))
    assert_nothing_at(out)


def test_multivent_bad_inputs_name_the_file(tmp_path: Path):
    files = multivent_release(tmp_path / "mv")
    out = tmp_path / "out"
    files["queries"].write_text("q1\tflood\nq2\n")
    with pytest.raises(DataFormatError, match=rf"{files['queries']}:2: expected 2 tab-separated"):
        prepare(out, _multivent(files))
    with pytest.raises(DataFormatError, match=r"missing.tsv: no such file; .*\(--queries\)"):
        prepare(out, _multivent({**files, "queries": tmp_path / "missing.tsv"}))
    files["queries"].write_text("q1\tflood\n")
    write_video(files["videos"] / "again" / "vidA.mkv")
    with pytest.raises(DataFormatError, match=r"a second file for id 'vidA'"):
        prepare(out, _multivent(files))
    assert_nothing_at(out)


# dataset configs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "name"),
    [("vidore_v2", "esg_reports_v2"), ("msrvtt_1ka", "msrvtt_1ka"), ("multivent2", "multivent2")],
)
def test_media_dataset_configs_compose_evaluation_only(config: str, name: str, monkeypatch):
    monkeypatch.setenv("COLCOMPRESS_DATA_DIR", "/data/beir")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"dataset={config}", "train=false"])
    assert cfg.dataset.name == name
    assert cfg.dataset.path == f"/data/beir/{name}"
    assert cfg.dataset.train_split is None and cfg.dataset.eval_split == "test"
    assert cfg.dataset._target_ == "colcompress.data.datamodule.RetrievalDataModule"


def test_a_prepared_vidore_collection_is_evaluated_with_train_false(tmp_path: Path, monkeypatch):
    from hydra.utils import instantiate

    from colcompress.validation import ConfigError, validate_config

    prepare(
        tmp_path / "data" / "biomedical_lectures_v2",
        lambda w: prepare_vidore_v2(vidore_release(tmp_path / "src"), w),
    )
    monkeypatch.setenv("COLCOMPRESS_DATA_DIR", str(tmp_path / "data"))
    overrides = [
        "dataset=vidore_v2",
        "dataset.name=biomedical_lectures_v2",
        "model=vit_minilm",
        "evaluation.metrics=[ndcg@5,ndcg@10]",
        "evaluation.baselines=[random]",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "train=false"])
        trained = compose("config", overrides=overrides)
    validate_config(cfg)
    with pytest.raises(ConfigError, match="dataset.train_split=null: the collection is for"):
        validate_config(trained)
    module = instantiate(cfg.dataset, progress=False)
    module.prepare_data()
    module.setup("test")
    assert module.name == "biomedical_lectures_v2" and module.train_data is None
    assert len(module.eval_data.corpus) == 3 and len(module.eval_data.queries) == 3
