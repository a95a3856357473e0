"""Collections by name (BEIR table), local folders, several collections at once, and
BEIR's evaluation conventions (identical ids, unjudged queries, query length)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from colcompress.data.beir import DataFormatError, load_beir
from colcompress.data.collections import (
    BEIR_COLLECTIONS,
    SourceMismatchError,
    collection_names,
    resolve_source,
)
from colcompress.data.conventions import Conventions, auto_query_length
from colcompress.data.datamodule import RetrievalDataModule
from colcompress.evaluation.metrics import compute_metrics, drop_identical_ids, unjudged_queries
from tests.conftest import CONF
from tests.unit.test_data_module import write_tiny

NFCORPUS = BEIR_COLLECTIONS["nfcorpus"]


def compose_dataset(*overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=False)


@pytest.mark.parametrize("name", sorted(BEIR_COLLECTIONS))
def test_every_beir_name_composes_with_its_own_archive(name: str, tmp_path: Path) -> None:
    cfg = compose_dataset("dataset=beir", f"dataset.name={name}", f"paths.data_dir={tmp_path}")
    module = instantiate(cfg.dataset)
    assert module.names == [name] and module.dataset_dir == tmp_path / name
    url, md5 = resolve_source(name, cfg.dataset.url, cfg.dataset.md5)
    assert url.endswith(f"/{name}.zip") and md5 == BEIR_COLLECTIONS[name].md5
    expected = name in ("arguana", "quora")
    assert module.conventions.ignore_identical_ids is expected


def test_thin_configs_and_a_renamed_collection_get_their_own_archive() -> None:
    cfg = compose_dataset("dataset=nfcorpus")
    assert cfg.dataset.name == "nfcorpus" and cfg.dataset.url is None
    assert resolve_source("nfcorpus", cfg.dataset.url, cfg.dataset.md5)[1] == NFCORPUS.md5
    # renaming on top of the nfcorpus config: FiQA's archive, never NFCorpus's
    cfg = compose_dataset("dataset=nfcorpus", "dataset.name=fiqa")
    assert resolve_source("fiqa", cfg.dataset.url, cfg.dataset.md5) == (
        BEIR_COLLECTIONS["fiqa"].url,
        BEIR_COLLECTIONS["fiqa"].md5,
    )


def test_another_collections_archive_under_a_name_is_refused() -> None:
    with pytest.raises(SourceMismatchError, match=r"fiqa.*downloaded from .*/fiqa\.zip only"):
        resolve_source("fiqa", NFCORPUS.url, None)
    with pytest.raises(SourceMismatchError, match=r"fiqa's archive has md5"):
        resolve_source("fiqa", None, NFCORPUS.md5)
    with pytest.raises(SourceMismatchError, match=r"would be nfcorpus labelled mine"):
        resolve_source("mine", NFCORPUS.url, None)
    with pytest.raises(SourceMismatchError, match=r"would be nfcorpus labelled mine"):
        resolve_source("mine", "http://example.org/a.zip", NFCORPUS.md5.upper())
    assert resolve_source("mine", "http://example.org/a.zip", None) == (
        "http://example.org/a.zip",
        None,
    )


def test_collection_names() -> None:
    assert collection_names("scifact", None) == ["scifact"]
    assert collection_names(["nfcorpus", "scifact"], None) == ["nfcorpus", "scifact"]
    assert collection_names(None, "/data/my-collection/") == ["my-collection"]
    assert collection_names("label", "/data/x") == ["label"]
    for bad, match in (
        ((None, None), "dataset.name is required"),
        ((["a", "a"], None), "listed twice"),
        (("../up", None), "plain folder names"),
        ((["a", "b"], "/x"), "reads one collection"),
        (([], None), "empty list"),
    ):
        with pytest.raises(ValueError, match=match):
            collection_names(*bad)


# --------------------------------------------------------------------------- local


def test_local_folder_is_read_in_place_and_a_bad_one_says_what_is_expected(
    tmp_path: Path,
) -> None:
    folder = write_tiny(tmp_path / "elsewhere")
    (folder / "qrels" / "train.tsv").unlink()  # a test-only collection
    module = RetrievalDataModule(path=str(folder), data_dir=str(tmp_path / "data"))
    module.prepare_data()
    module.setup("test")  # needs only the evaluation split
    assert module.name == "tiny" and module.train_data is None
    assert set(module.eval_data.queries) == {"q1", "q2"}
    assert not (tmp_path / "data").exists()  # nothing downloaded or copied
    with pytest.raises(DataFormatError, match=r"no qrels for split 'train'; splits present: test"):
        module.setup("fit")
    (folder / "queries.jsonl").unlink()
    with pytest.raises(DataFormatError, match=r"no queries\.jsonl; expected a BEIR-layout folder"):
        RetrievalDataModule(path=str(folder)).prepare_data()
    with pytest.raises(DataFormatError, match=r"not a directory; expected a BEIR-layout"):
        RetrievalDataModule(path=str(tmp_path / "absent")).prepare_data()


def test_several_collections_train_together_with_their_own_negatives(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_tiny(data_dir)
    shutil.copytree(data_dir / "tiny", data_dir / "other")
    module = RetrievalDataModule(
        name=["tiny", "other"],
        data_dir=str(data_dir),
        num_negatives=2,
        cache_dir=str(tmp_path / "cache"),
        batch_size=2,
        seed=0,
    )
    module.prepare_data()
    module.setup("fit")
    data = module.train_data
    assert module.name == data.name == "tiny+other" and module.eval_data is None
    single = load_beir(data_dir / "tiny", "train")
    assert len(data.corpus) == 2 * len(single.corpus)
    assert set(data.queries) == {f"{n}/{q}" for n in ("tiny", "other") for q in single.queries}
    assert data.qrels["other/q1"] == {"other/d1": 1, "other/d2": 1}
    for i in range(len(module.train_dataset)):
        example = module.train_dataset[i]
        prefix = example.qid.split("/")[0] + "/"
        assert all(d.startswith(prefix) for d in example.doc_ids)  # its own corpus only
    with pytest.raises(ValueError, match="apply to one collection"):
        RetrievalDataModule(name=["tiny", "other"], teacher_scores="x.tsv")


# --------------------------------------------------------------------- conventions


def test_conventions_default_to_the_table_and_can_be_set() -> None:
    assert Conventions.of("arguana", None, None) == Conventions("auto", True)
    assert Conventions.of("nfcorpus", None, None) == Conventions(None, False)
    assert Conventions.of("arguana", 64, False) == Conventions(64, False)
    assert Conventions.of("mine", None, None) == Conventions(None, False)
    for bad in ("long", 1, 2.5, True):
        with pytest.raises(ValueError, match="dataset.query_length"):
            Conventions(bad, False)


def test_auto_query_length_keeps_99_percent_whole_within_the_cap() -> None:
    lengths = list(range(1, 101))  # 1..100 tokens
    assert auto_query_length(lengths, cap=512) == 99
    assert auto_query_length(lengths, cap=64) == 64
    assert auto_query_length([5] * 10 + [400], cap=512) == 400  # 1 of 11 is above 1%
    assert auto_query_length([5] * 200 + [400], cap=512) == 5  # an outlier
    with pytest.raises(ValueError, match="no queries"):
        auto_query_length([], cap=512)


def test_identical_ids_are_dropped_and_unjudged_queries_not_scored() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"q2": 1, "d2": 0}, "q3": {"d3": 0}}
    run = {
        "q1": {"q1": 9.0, "d1": 8.0, "d9": 1.0},
        "q2": {"q2": 5.0, "d2": 4.0},
        "q3": {"d3": 1.0},
    }
    kept = drop_identical_ids(run, top_k=1)
    assert kept == {"q1": {"d1": 8.0}, "q2": {"d2": 4.0}, "q3": {"d3": 1.0}}
    assert unjudged_queries(qrels) == ["q3"]
    # q3 has no relevant document: not scored (not a zero in the mean)
    assert compute_metrics(qrels, run, ["mrr@10"])["mrr@10"] == pytest.approx((0.5 + 1.0) / 2)
    assert compute_metrics(qrels, kept, ["mrr@10"])["mrr@10"] == pytest.approx((1.0 + 0.0) / 2)
