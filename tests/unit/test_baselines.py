"""The baselines cache: keyed by content, a corrupt file is a miss with a warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from colcompress.data.beir import BeirData, Doc
from colcompress.evaluation.baselines import evaluate_baselines

METRICS = ["ndcg@10"]


def _data(relevant: str = "d1", text: str = "apples are red fruit") -> BeirData:
    corpus = {
        "d1": Doc("", text),
        "d2": Doc("", "bananas are yellow"),
        "d3": Doc("", "cherries are small"),
    }
    return BeirData(
        corpus=corpus,
        queries={"q1": "red apples"},
        qrels={"q1": {relevant: 1}},
        name="toy",
        split="test",
    )


def _ndcg(data: BeirData, cache_dir: Path | None) -> float:
    out = evaluate_baselines(data, names=["bm25"], top_k=10, metrics=METRICS, cache_dir=cache_dir)
    return out["bm25"]["metrics"]["ndcg@10"]


def test_changed_qrels_or_texts_miss_the_cache(tmp_path: Path):
    assert _ndcg(_data(), tmp_path) == pytest.approx(1.0)
    # the only relevant document now shares no term with the query: BM25 finds nothing
    assert _ndcg(_data(relevant="d2"), tmp_path) == 0.0
    assert _ndcg(_data(text="green pears"), tmp_path) == 0.0
    assert _ndcg(_data(), tmp_path) == pytest.approx(1.0)  # the first entry is still used
    assert len(list((tmp_path / "baselines").glob("*.json"))) == 3


@pytest.mark.parametrize("content", ['{"key": "abc", "baselines": {"bm25": {"metr', "", "[1, 2]"])
def test_corrupt_cache_is_a_miss_with_a_warning(tmp_path: Path, content: str):
    data = _data(relevant="d2")
    assert _ndcg(data, tmp_path) == 0.0
    (cache,) = (tmp_path / "baselines").glob("*.json")
    cache.write_text(content)
    with pytest.warns(UserWarning, match=r"ignoring corrupt baselines cache"):
        assert _ndcg(data, tmp_path) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rewritten: the next read is a clean hit
        assert _ndcg(data, tmp_path) == 0.0


def test_random_run_ranks_distinct_documents_reproducibly():
    from colcompress.evaluation.baselines import random_run

    docs = [f"d{i}" for i in range(10)]
    run = random_run(["q1", "q2"], docs, k=4)
    assert run == random_run(["q1", "q2"], docs, k=4)
    for ranking in run.values():
        assert len(ranking) == 4 and set(ranking) <= set(docs)
        assert sorted(ranking.values(), reverse=True) == [4.0, 3.0, 2.0, 1.0]
    assert list(run["q1"]) != list(run["q2"])  # each query draws its own order
    assert len(random_run(["q"], docs[:2], k=5)["q"]) == 2
