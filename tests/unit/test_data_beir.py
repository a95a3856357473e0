"""BEIR loading (real NFCorpus counts, precise errors) and reproducible slicing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from colcompress.data.beir import (
    BeirData,
    DataFormatError,
    Doc,
    available_splits,
    load_beir,
    load_beir_splits,
    slice_beir,
)

CORPUS = [
    {"_id": "d1", "title": "Apples", "text": "apples are red"},
    {"_id": "d2", "title": "", "text": "bananas are yellow"},
    {"_id": "d3", "text": "cherries are dark"},
]
QUERIES = [{"_id": "q1", "text": "red fruit"}, {"_id": "q2", "text": "yellow fruit"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n"


def write_beir(
    root: Path,
    corpus: list[dict] | str = CORPUS,
    queries: list[dict] | str = QUERIES,
    qrels: dict[str, str] | None = None,
) -> Path:
    """Write a tiny BEIR directory; strings are written verbatim (for malformed files)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        if not isinstance(content, str):
            content = "".join(json.dumps(obj) + "\n" for obj in content)
        (root / name).write_text(content, encoding="utf-8")
    (root / "qrels").mkdir(exist_ok=True)
    for split, text in (qrels or {"test": QRELS}).items():
        (root / "qrels" / f"{split}.tsv").write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def nfcorpus(beir_dir: Path) -> dict[str, BeirData]:
    return load_beir_splits(beir_dir / "nfcorpus", ["train", "dev", "test"])


def test_nfcorpus_counts(nfcorpus: dict[str, BeirData], beir_dir: Path) -> None:
    test = nfcorpus["test"]
    assert test.name == "nfcorpus" and test.split == "test"
    assert len(test.corpus) == 3633
    assert len(test.queries) == 323
    assert sum(len(j) for j in test.qrels.values()) == 12334
    assert set(test.queries) == set(test.qrels)
    assert {s for j in test.qrels.values() for s in j.values()} == {1, 2}
    assert len(nfcorpus["dev"].queries) == 324
    assert len(nfcorpus["train"].queries) == 2590
    assert sum(len(j) for j in nfcorpus["train"].qrels.values()) == 110575
    assert nfcorpus["train"].corpus is test.corpus  # read once, shared
    assert available_splits(beir_dir / "nfcorpus") == ["dev", "test", "train"]
    with (beir_dir / "nfcorpus" / "corpus.jsonl").open() as f:
        first = json.loads(f.readline())
    assert test.corpus[first["_id"]].full_text == f"{first['title']} {first['text']}"


def test_load_beir_matches_load_beir_splits(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "tiny", qrels={"test": QRELS, "train": "q1\td3\t1\n"})
    data = load_beir(root, "test")
    assert data == load_beir_splits(root, ["test"])["test"]
    assert data.corpus == {
        "d1": Doc("Apples", "apples are red"),
        "d2": Doc("", "bananas are yellow"),
        "d3": Doc("", "cherries are dark"),
    }
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    # a headerless qrels file: line 1 is data; only judged queries are kept
    train = load_beir(root, "train")
    assert train.queries == {"q1": "red fruit"} and train.qrels == {"q1": {"d3": 1}}
    assert train.positives("q1") == {"d3"}


def test_full_text_strips_like_beir() -> None:
    assert Doc("Title", "body").full_text == "Title body"
    assert Doc("", "body ").full_text == "body"
    assert Doc("Title", "").full_text == "Title"


def _corpus_line(**obj: object) -> str:
    return json.dumps(obj) + "\n"


GOOD_CORPUS = "".join(json.dumps(d) + "\n" for d in CORPUS)

MALFORMED = {
    "bad_json": (
        {"corpus": GOOD_CORPUS + '{"_id": "d4", "text": \n'},
        r"corpus\.jsonl:4: invalid JSON .*expected one object a line",
    ),
    "not_object": ({"queries": '["q1", "text"]\n'}, r"queries\.jsonl:1: expected a JSON object"),
    "missing_id": (
        {"queries": '{"_id": "q1", "text": "a"}\n\n{"text": "b"}\n'},
        r'queries\.jsonl:3: missing "_id"',
    ),
    "int_id": (
        {"corpus": _corpus_line(_id=7, text="x")},
        r'corpus\.jsonl:1: "_id" must be a string',
    ),
    "duplicate_id": (
        {"corpus": GOOD_CORPUS + _corpus_line(_id="d2", text="again")},
        r"corpus\.jsonl:4: duplicate \"_id\" 'd2' \(first on line 2\)",
    ),
    "text_not_string": (
        {"corpus": _corpus_line(_id="d1", text=["a"])},
        r'corpus\.jsonl:1: "text" must be a string',
    ),
    "query_without_text": (
        {"queries": '{"_id": "q1"}\n'},
        r'queries\.jsonl:1: missing string "text"',
    ),
    "empty_corpus": ({"corpus": "\n"}, r"corpus\.jsonl: empty corpus"),
    "qrels_columns": (
        {"qrels": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2 d2 1\n"},
        r"test\.tsv:3: expected 3 tab-separated columns .* got 1",
    ),
    "qrels_trec_format": (
        {"qrels": "q1\tQ0\td1\t1\n"},
        r"test\.tsv:1: expected 3 tab-separated columns .* got 4",
    ),
    "qrels_score": (
        {"qrels": "query-id\tcorpus-id\tscore\nq1\td1\t1.5\n"},
        r"test\.tsv:2: score must be an integer, got '1\.5'",
    ),
    "unknown_query": (
        {"qrels": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq9\td1\t1\n"},
        r"test\.tsv:3: query id 'q9' is not in queries\.jsonl .*override "
        r"dataset\.allow_unknown_ids=true",
    ),
    "unknown_doc": (
        {"qrels": "query-id\tcorpus-id\tscore\nq1\td9\t1\n"},
        r"test\.tsv:2: corpus id 'd9' is not in corpus\.jsonl",
    ),
    "conflicting_qrels": (
        {"qrels": "q1\td1\t1\nq1\td1\t2\n"},
        r"test\.tsv:2: conflicting judgement 2 .* line 1 says 1",
    ),
    "empty_qrels": ({"qrels": "query-id\tcorpus-id\tscore\n"}, r"test\.tsv: no judgements"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_name_file_and_line(tmp_path: Path, case: str) -> None:
    files, pattern = MALFORMED[case]
    kwargs: dict = {k: v for k, v in files.items() if k != "qrels"}
    if "qrels" in files:
        kwargs["qrels"] = {"test": files["qrels"]}
    root = write_beir(tmp_path / "tiny", **kwargs)
    with pytest.raises(DataFormatError, match=pattern) as info:
        load_beir(root, "test")
    assert str(root) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_split_lists_present_splits(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "tiny", qrels={"test": QRELS, "train": QRELS})
    with pytest.raises(DataFormatError, match=r"dev\.tsv: no qrels for split 'dev'; .*test, train"):
        load_beir(root, "dev")


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="not a directory"):
        load_beir(tmp_path / "absent", "test")
    root = write_beir(tmp_path / "tiny")
    (root / "queries.jsonl").unlink()
    with pytest.raises(DataFormatError, match=r"queries\.jsonl: missing queries file"):
        load_beir(root, "test")


def test_unknown_ids_dropped_with_counted_warning(tmp_path: Path) -> None:
    qrels = QRELS + "q9\td1\t1\nq1\td9\t1\nq1\td3\t0\n"
    root = write_beir(tmp_path / "tiny", qrels={"test": qrels})
    with pytest.warns(UserWarning, match=r"dropped 2 qrels rows"):
        data = load_beir(root, "test", allow_unknown_ids=True)
    assert data.qrels == {"q1": {"d1": 1, "d3": 0}, "q2": {"d2": 2}}
    assert data.positives("q1") == {"d1"}


def test_identical_duplicate_qrels_are_merged(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "tiny", qrels={"test": QRELS + "q1\td1\t1\n"})
    assert load_beir(root, "test").qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}


def test_slice_keeps_relevant_docs_and_is_reproducible(nfcorpus: dict[str, BeirData]) -> None:
    test = nfcorpus["test"]
    small = slice_beir(test, max_queries=20, max_docs=500, seed=3)
    assert len(small.queries) == 20 and set(small.qrels) == set(small.queries)
    judged = {d for qid in small.queries for d in test.qrels[qid]}
    assert judged <= set(small.corpus)
    assert len(small.corpus) == max(500, len(judged))
    assert all(small.qrels[q] == test.qrels[q] for q in small.queries)
    assert all(small.queries[q] == test.queries[q] for q in small.queries)
    # original order is kept
    assert list(small.queries) == [q for q in test.queries if q in small.queries]
    assert list(small.corpus) == [d for d in test.corpus if d in small.corpus]
    assert slice_beir(test, 20, 500, seed=3) == small
    other = slice_beir(test, 20, 500, seed=4)
    assert other.queries != small.queries or other.corpus.keys() != small.corpus.keys()


def test_slice_relevant_docs_beyond_max_docs(nfcorpus: dict[str, BeirData]) -> None:
    test = nfcorpus["test"]
    small = slice_beir(test, max_queries=5, max_docs=1, seed=0)
    judged = {d for judgements in small.qrels.values() for d in judgements}
    assert set(small.corpus) == judged and len(judged) > 1


def test_slice_without_limits_is_everything(nfcorpus: dict[str, BeirData]) -> None:
    test = nfcorpus["test"]
    assert slice_beir(test) == test
    only_docs = slice_beir(test, max_docs=len(test.corpus) + 10)
    assert only_docs.corpus == test.corpus and only_docs.queries == test.queries
    with pytest.raises(ValueError, match=re.escape("max_docs must be >= 0")):
        slice_beir(test, max_docs=-1)


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_non_utf8_bytes_name_file_and_line(tmp_path: Path, name: str) -> None:
    root = write_beir(tmp_path / "tiny")
    path = root / name
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1][:2] + b"\xe9" + lines[1][2:]  # a Latin-1 "é" in line 2
    path.write_bytes(b"".join(lines))
    expected = rf"{re.escape(name)}:2: not valid UTF-8 \(byte 0xe9 at column 3\)"
    with pytest.raises(DataFormatError, match=expected):
        load_beir(root, "test")


def test_non_utf8_teacher_scores_name_file_and_line(tmp_path: Path) -> None:
    from colcompress.data.datamodule import read_teacher_scores

    path = tmp_path / "teacher.tsv"
    path.write_bytes(b"q1\td1\t0.5\nq1\td\xff2\t0.1\n")
    with pytest.raises(DataFormatError, match=r"teacher\.tsv:2: not valid UTF-8 \(byte 0xff"):
        read_teacher_scores(path)


@pytest.mark.parametrize(
    ("first", "kept"),
    [("q1\td3\t1.0\n", {"q1": {"d3": 1, "d1": 1}}), ("q1\td3\t0\n", {"q1": {"d3": 0, "d1": 1}})],
)
def test_headerless_qrels_keep_a_numeric_first_row(tmp_path: Path, first: str, kept) -> None:
    root = write_beir(tmp_path / "tiny", qrels={"test": first + "q1\td1\t1\n"})
    assert load_beir(root, "test").qrels == kept


def test_qrels_header_is_recognised_by_its_content(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "tiny", qrels={"test": "\nqid\tdocid\trel\nq1\td1\t1\n"})
    assert load_beir(root, "test").qrels == {"q1": {"d1": 1}}
    root = write_beir(tmp_path / "bad", qrels={"test": "q1\td1\t1\nqid\tdocid\trel\n"})
    with pytest.raises(DataFormatError, match=r"test\.tsv:2: score must be an integer"):
        load_beir(root, "test")
