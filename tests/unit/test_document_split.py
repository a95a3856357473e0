"""Document-disjoint splits, and Flickr8k-1k split by image through dataset=flickr8k."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from colcompress.data.beir import DataFormatError, load_beir
from colcompress.data.splits import split_by_documents
from tests.conftest import CONF
from tests.unit.test_data_beir import write_beir
from tests.unit.test_media import FLICKR, needs_flickr

CORPUS = [{"_id": f"d{i}", "text": f"doc {i}"} for i in range(6)]
QUERIES = [{"_id": f"q{i}", "text": f"query {i}"} for i in range(7)]


def collection(tmp_path: Path, qrels: str):
    root = write_beir(tmp_path / "c", CORPUS, QUERIES, {"all": qrels})
    return load_beir(root, "all")


def test_parts_are_disjoint_exhaustive_and_seeded(tmp_path: Path):
    data = collection(tmp_path, "".join(f"q{i}\td{i}\t1\n" for i in range(6)))  # one each
    parts = split_by_documents(data, {"train": 4, "test": 2}, seed=3)
    assert [p.split for p in parts.values()] == ["train", "test"]
    train, test = parts["train"], parts["test"]
    assert len(train.corpus) == 4 and len(test.corpus) == 2
    assert set(train.corpus).isdisjoint(test.corpus)
    assert set(train.corpus) | set(test.corpus) == set(data.corpus)
    for part in parts.values():  # each query sits with its document
        assert {d for judged in part.qrels.values() for d in judged} <= set(part.corpus)
        assert set(part.queries) == set(part.qrels)
    again = split_by_documents(data, {"train": 4, "test": 2}, seed=3)
    assert set(again["test"].corpus) == set(test.corpus)
    others = {
        frozenset(split_by_documents(data, {"a": 4, "b": 2}, s)["b"].corpus) for s in range(8)
    }
    assert len(others) > 1  # the seed chooses the cut


def test_sizes_must_cover_the_corpus(tmp_path: Path):
    data = collection(tmp_path, "q0\td0\t1\n")
    with pytest.raises(DataFormatError, match=r"add up to 5 documents, but c has 6"):
        split_by_documents(data, {"train": 3, "test": 2}, seed=0)
    with pytest.raises(DataFormatError, match="expected positive document counts"):
        split_by_documents(data, {"train": 6, "test": 0}, seed=0)


def test_a_query_judging_both_sides_is_refused(tmp_path: Path):
    every = "".join(f"q6\td{i}\t1\n" for i in range(6))  # q6 judges every document
    data = collection(tmp_path, "q0\td0\t1\n" + every)
    with pytest.raises(DataFormatError, match=r"query 'q6' judges documents of the splits"):
        split_by_documents(data, {"a": 3, "b": 3}, seed=0)


def _flickr_module(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "dataset=flickr8k",
                f"dataset.path={FLICKR}",
                "dataset.cache_dir=/nonexistent",
                *overrides,
            ],
        )
    return instantiate(cfg.dataset)


@needs_flickr
def test_flickr8k_loads_1000_images_and_5000_captions():
    data = load_beir(FLICKR, "test")
    assert len(data.corpus) == 1000 and len(data.queries) == 5000
    assert all(doc.images and not doc.full_text for doc in data.corpus.values())
    assert all(path.is_file() for doc in data.corpus.values() for path in doc.images)
    assert Counter(len(judged) for judged in data.qrels.values()) == {1: 5000}
    assert set(Counter(d for j in data.qrels.values() for d in j).values()) == {5}


@needs_flickr
def test_dataset_flickr8k_splits_by_image_800_200():
    module = _flickr_module()
    module.prepare_data()
    module.setup("fit")
    train, test = module.train_data, module.eval_data
    assert (train.split, test.split) == ("train", "test")
    assert (len(train.corpus), len(test.corpus)) == (800, 200)
    assert (len(train.queries), len(test.queries)) == (4000, 1000)
    assert set(train.corpus).isdisjoint(test.corpus)
    assert set(train.queries).isdisjoint(test.queries)
    for part in (train, test):  # all 5 captions of an image on its side
        images = Counter(d for judged in part.qrels.values() for d in judged)
        assert set(images) == set(part.corpus) and set(images.values()) == {5}
    # the cut is the dataset's own: another run seed gives the same split
    other = _flickr_module("seed=7")
    other.setup("test")
    assert set(other.eval_data.corpus) == set(test.corpus)


@needs_flickr
def test_a_split_outside_the_document_split_is_refused():
    module = _flickr_module("dataset.eval_split=dev")
    with pytest.raises(
        ValueError, match=r"split \['dev'\] is not a part of dataset.document_split"
    ):
        module.setup("test")
