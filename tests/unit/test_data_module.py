"""BM25 (exact scores, NFCorpus baseline), cached hard-negative mining, and the DataModule."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import lightning
import pytest
import torch

from colcompress.data import datamodule as dm_module
from colcompress.data import negatives as neg_module
from colcompress.data.beir import (
    BeirData,
    DataFormatError,
    Doc,
    load_beir,
    load_beir_splits,
    slice_beir,
)
from colcompress.data.datamodule import (
    RetrievalDataModule,
    TrainExample,
    read_teacher_scores,
)
from colcompress.data.negatives import (
    BM25Settings,
    bm25_search,
    mine_negatives,
    negatives_cache_path,
)

TINY_CORPUS = {
    "d1": "apple pie recipe",
    "d2": "apple juice fresh",
    "d3": "banana bread recipe",
    "d4": "banana smoothie",
    "d5": "cherry tart recipe",
    "d6": "grape wine",
    "d7": "lemon cake recipe",
    "d8": "orange juice",
}
TINY_QUERIES = {"q1": "apple recipe", "q2": "banana", "q3": "grape", "q4": "kiwi"}
TINY_TRAIN = [("q1", "d1", 1), ("q1", "d2", 1), ("q2", "d3", 1), ("q3", "d6", 0), ("q4", "d8", 1)]
TINY_TEST = [("q1", "d1", 1), ("q2", "d4", 2)]


def write_tiny(root: Path) -> Path:
    """A tiny BEIR dataset: ``root/tiny`` with train and test qrels."""
    path = root / "tiny"
    (path / "qrels").mkdir(parents=True)
    with (path / "corpus.jsonl").open("w") as f:
        for docid, text in TINY_CORPUS.items():
            f.write(json.dumps({"_id": docid, "title": "", "text": text}) + "\n")
    with (path / "queries.jsonl").open("w") as f:
        for qid, text in TINY_QUERIES.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    for split, rows in (("train", TINY_TRAIN), ("test", TINY_TEST)):
        lines = ["query-id\tcorpus-id\tscore"] + ["\t".join(map(str, r)) for r in rows]
        (path / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    return write_tiny(tmp_path / "data")


@pytest.fixture(scope="module")
def nfcorpus(beir_dir: Path) -> dict[str, BeirData]:
    return load_beir_splits(beir_dir / "nfcorpus", ["train", "test"])


# --------------------------------------------------------------------------- BM25


def test_bm25_scores_match_formula() -> None:
    """Exact Lucene BM25: sum of idf * tf / (tf + k1 (1 - b + b l / avg_l)) over query terms,
    idf = ln(1 + (N - df + .5) / (df + .5))."""
    corpus = {f"d{i}": t for i, t in enumerate(["aa bb aa", "bb cc", "cc cc cc dd", "ee"])}
    queries = {"q1": "aa cc", "q2": "bb bb", "q3": "zz", "q4": "a"}
    data = BeirData(
        corpus={d: Doc("", t) for d, t in corpus.items()},
        queries=queries,
        qrels={q: {} for q in queries},
        name="exact",
    )
    settings = BM25Settings(k1=1.2, b=0.75, stemmer=None, stopwords=None)
    run = bm25_search(data, k=10, settings=settings)
    docs = {d: t.split() for d, t in corpus.items()}
    avg = sum(map(len, docs.values())) / len(docs)
    expected = {}
    for qid, text in queries.items():
        scores = {}
        for docid, tokens in docs.items():
            s = 0.0
            for term in text.split():  # repeated query terms count twice, as in Lucene
                tf = tokens.count(term)
                df = sum(term in t for t in docs.values())
                if tf:
                    idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
                    s += idf * tf / (tf + 1.2 * (1 - 0.75 + 0.75 * len(tokens) / avg))
            if s > 0:
                scores[docid] = s
        expected[qid] = scores
    assert run.keys() == expected.keys()
    for qid in queries:
        assert run[qid].keys() == expected[qid].keys()
        assert list(run[qid]) == sorted(expected[qid], key=lambda d: -expected[qid][d])
        for docid, score in expected[qid].items():
            assert run[qid][docid] == pytest.approx(score, rel=1e-5)
    assert run["q3"] == {} and run["q4"] == {}
    assert list(bm25_search(data, k=1, settings=settings)["q1"]) == list(run["q1"])[:1]


def ndcg_at_10(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> float:
    total = 0.0
    for qid, judged in qrels.items():
        ranked = sorted(run.get(qid, {}), key=lambda d: -run[qid][d])[:10]
        dcg = sum((2 ** judged.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked))
        ideal = sorted(judged.values(), reverse=True)[:10]
        idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal) if g > 0)
        total += dcg / idcg if idcg > 0 else 0.0
    return total / len(qrels)


def test_bm25_nfcorpus_baseline(nfcorpus: dict[str, BeirData]) -> None:
    """BEIR reports BM25 nDCG@10 = 0.325 on NFCorpus test; bm25s with stemming gets ~0.32."""
    run = bm25_search(nfcorpus["test"], k=100)
    assert len(run) == 323
    assert 0.31 < ndcg_at_10(nfcorpus["test"].qrels, run) < 0.34


# ------------------------------------------------------------------------- mining


def test_mining_excludes_positives_and_follows_bm25(nfcorpus: dict[str, BeirData]) -> None:
    train = slice_beir(nfcorpus["train"], max_queries=15, max_docs=1000, seed=1)
    top_k = 20
    negatives = mine_negatives(train, top_k=top_k, cache_dir=None)
    assert negatives.keys() == train.queries.keys()
    longest = max(len(train.positives(q)) for q in train.queries)
    run = bm25_search(train, k=top_k + longest)
    for qid, ranked in negatives.items():
        positives = train.positives(qid)
        assert not positives & set(ranked)
        assert len(ranked) == len(set(ranked)) <= top_k
        assert ranked == [d for d in run[qid] if d not in positives][:top_k]
    assert sum(map(len, negatives.values())) > 0.5 * top_k * len(negatives)


def test_mining_cache_read_and_corrupt_cache(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = load_beir(tiny_dir, "train")
    cache = tmp_path / "cache"
    first = mine_negatives(data, top_k=5, cache_dir=cache)
    # judged non-relevant (score 0) documents stay candidates; only positives are excluded
    assert first == {"q1": ["d3", "d5", "d7"], "q2": ["d4"], "q3": ["d6"], "q4": []}
    path = negatives_cache_path(data, 5, cache)
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == [path.name]
    mtime = path.stat().st_mtime_ns

    def no_bm25(*args: object, **kwargs: object) -> None:
        raise AssertionError("BM25 recomputed despite a valid cache")

    with monkeypatch.context() as patch:
        patch.setattr(neg_module, "_BM25", no_bm25)
        assert mine_negatives(data, top_k=5, cache_dir=cache) == first
    assert path.stat().st_mtime_ns == mtime
    # another top_k, split, or corpus is another key
    assert negatives_cache_path(data, 4, cache) != path
    sliced = slice_beir(data, max_docs=7, seed=0)
    assert negatives_cache_path(sliced, 5, cache) != path
    # a corrupt cache is ignored with a warning, recomputed and rewritten
    path.write_text('{"key": "')
    with pytest.warns(UserWarning, match="corrupt negatives cache"):
        assert mine_negatives(data, top_k=5, cache_dir=cache) == first
    assert json.loads(path.read_text())["negatives"] == first
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


# --------------------------------------------------------------------- datamodule


@pytest.fixture(scope="module")
def nf_module(beir_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RetrievalDataModule:
    dm = RetrievalDataModule(
        name="nfcorpus",
        data_dir=str(beir_dir),
        num_negatives=3,
        negatives_top_k=30,
        batch_size=4,
        max_train_queries=40,
        max_eval_queries=25,
        max_eval_docs=400,
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        seed=7,
    )
    dm.prepare_data()  # present: nothing downloaded or written
    dm.setup("fit")
    return dm


def test_module_eval_split(nf_module: RetrievalDataModule) -> None:
    ev = nf_module.eval_data
    assert ev is not None and ev.split == "test"
    assert len(ev.queries) == 25
    judged = {d for j in ev.qrels.values() for d in j}
    assert judged <= ev.corpus.keys() and len(ev.corpus) == max(400, len(judged))


def test_module_examples(nf_module: RetrievalDataModule) -> None:
    train, ds = nf_module.train_data, nf_module.train_dataset
    assert train is not None and ds is not None and len(train.queries) == 40
    assert len(train.corpus) == 3633
    pairs = {(q, d) for q in train.queries for d in train.positives(q)}
    assert len(ds) == len(pairs)
    mined = mine_negatives(train, 30, nf_module.cache_dir)  # from the cache
    seen = set()
    for i in range(len(ds)):
        ex = ds[i]
        assert isinstance(ex, TrainExample) and ex.teacher_scores is None
        assert len(ex.docs) == len(ex.doc_ids) == 4
        assert ex.query == train.queries[ex.qid]
        assert ex.docs == [train.corpus[d] for d in ex.doc_ids]
        positives = train.positives(ex.qid)
        assert ex.doc_ids[0] in positives
        assert not positives & set(ex.doc_ids[1:]) and len(set(ex.doc_ids)) == 4
        if len(mined[ex.qid]) >= 3:
            assert set(ex.doc_ids[1:]) <= set(mined[ex.qid])
        seen.add((ex.qid, ex.doc_ids[0]))
    assert seen == pairs


def test_module_dataloader_epochs(nf_module: RetrievalDataModule) -> None:
    loader = nf_module.train_dataloader()
    n = len(nf_module.train_dataset)

    def epoch(e: int) -> list[tuple[str, ...]]:
        loader.sampler.set_epoch(e)
        batches = list(loader)
        assert all(isinstance(b, list) and len(b) <= 4 for b in batches)
        assert len(batches) == math.ceil(n / 4)
        return [(ex.qid, *ex.doc_ids) for b in batches for ex in b]

    e0, e1 = epoch(0), epoch(1)
    pairs = sorted(
        (q, d) for q in nf_module.train_data.queries for d in nf_module.train_data.positives(q)
    )
    assert sorted(x[:2] for x in e0) == sorted(x[:2] for x in e1) == pairs  # each pair once
    assert epoch(0) == e0  # reproducible
    assert [x[:2] for x in e1] != [x[:2] for x in e0]  # reshuffled
    assert set(e0) != set(e1)  # other negatives
    nf_module.collate_fn = len  # the lead's collate
    try:
        assert sum(nf_module.train_dataloader()) == n
    finally:
        nf_module.collate_fn = dm_module.identity_collate


def tiny_module(data_dir: Path, tmp_path: Path, **kwargs: object) -> RetrievalDataModule:
    options = {"batch_size": 2, "cache_dir": str(tmp_path / "cache"), "seed": 0, **kwargs}
    dm = RetrievalDataModule(name="tiny", data_dir=str(data_dir), **options)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_module_random_fallback(tiny_dir: Path, tmp_path: Path) -> None:
    dm = tiny_module(tiny_dir.parent, tmp_path, num_negatives=3)
    examples = {ex.doc_ids[0]: ex for ex in (dm.train_dataset[i] for i in range(4))}
    assert sorted(examples) == ["d1", "d2", "d3", "d8"]  # q3 has no positive
    assert set(examples["d1"].doc_ids[1:]) == {"d3", "d5", "d7"}  # all 3 mined candidates
    q2 = examples["d3"].doc_ids  # 1 mined candidate, 2 random others
    assert q2[1] == "d4" and len(set(q2)) == 4
    q4 = examples["d8"].doc_ids  # "kiwi" matches nothing: random negatives
    assert len(set(q4)) == 4 and "d8" not in q4[1:]
    assert dm.eval_data.qrels == {"q1": {"d1": 1}, "q2": {"d4": 2}}


def test_module_in_batch_only(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dm_module, "mine_negatives", pytest.fail)
    dm = tiny_module(tiny_dir.parent, tmp_path, num_negatives=0, max_train_queries=2)
    assert len(dm.train_data.queries) == 2
    examples = [ex for batch in dm.train_dataloader() for ex in batch]
    assert examples and all(len(ex.docs) == 1 for ex in examples)
    assert all(ex.doc_ids[0] in dm.train_data.positives(ex.qid) for ex in examples)


TEACHER = [
    ("q1", "d1", 9.0),
    ("q1", "d2", 8.0),
    ("q1", "d5", 3.0),
    ("q1", "d7", 1.0),
    ("q1", "d6", 0.5),
    ("q2", "d4", 2.0),  # q2's positive d3 has no score: skipped
    ("q2", "d5", 1.0),
    ("q4", "d8", 5.0),  # q4 has one scored non-positive, fewer than 2: skipped
    ("q4", "d1", 1.0),
]


@pytest.mark.parametrize("fmt", ["tsv", "jsonl"])
def test_module_teacher_scores(tiny_dir: Path, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"teacher.{fmt}"
    if fmt == "tsv":
        path.write_text("qid\tdocid\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in TEACHER))
    else:
        path.write_text(
            "".join(json.dumps({"qid": q, "docid": d, "score": s}) + "\n" for q, d, s in TEACHER)
        )
    with pytest.warns(UserWarning) as record:
        dm = tiny_module(tiny_dir.parent, tmp_path, num_negatives=2, teacher_scores=str(path))
    messages = " ".join(str(w.message) for w in record)
    assert "skipped 1 training pairs whose positive has no teacher score" in messages
    assert "skipped 1 training pairs whose query has fewer than 2" in messages
    scores = {(q, d): s for q, d, s in TEACHER}
    examples = [dm.train_dataset[i] for i in range(len(dm.train_dataset))]
    assert sorted(ex.doc_ids[0] for ex in examples) == ["d1", "d2"]
    for ex in examples:
        assert set(ex.doc_ids[1:]) <= {"d5", "d7", "d6"} and len(set(ex.doc_ids)) == 3
        assert ex.teacher_scores == [scores[ex.qid, d] for d in ex.doc_ids]


TEACHER_ERRORS = {
    "columns": ("t.tsv", "q1\td1\t1\nq1\td2\n", r"t\.tsv:2: expected 3 tab-separated columns"),
    "score": ("t.tsv", "q1\td1\t1\nq1\td2\tx\n", r"t\.tsv:2: score must be a number, got 'x'"),
    "nan": ("t.tsv", "q1\td1\tnan\n", r"t\.tsv:1: score must be a finite number"),
    "unknown_doc": ("t.tsv", "q1\td99\t1\n", r"t\.tsv:1: docid 'd99' is not in the corpus"),
    "duplicate": ("t.tsv", "q1\td1\t1\nq1\td1\t2\n", r"t\.tsv:2: duplicate pair .* line 1"),
    "json": (
        "t.jsonl",
        '{"qid": "q1", "docid": "d1", "score": 1}\n{"qid"\n',
        r"t\.jsonl:2: invalid",
    ),
    "keys": (
        "t.jsonl",
        '{"qid": "q1", "doc": "d1", "score": 1}\n',
        r't\.jsonl:1: expected .*"docid"',
    ),
    "id_type": (
        "t.jsonl",
        '{"qid": ["q"], "docid": "d1", "score": 1}\n',
        r"t\.jsonl:1: \"qid\" must",
    ),
}


@pytest.mark.parametrize("case", sorted(TEACHER_ERRORS))
def test_teacher_file_errors(tiny_dir: Path, tmp_path: Path, case: str) -> None:
    name, text, pattern = TEACHER_ERRORS[case]
    (tmp_path / name).write_text(text)
    corpus = load_beir(tiny_dir, "test").corpus
    with pytest.raises(DataFormatError, match=pattern):
        read_teacher_scores(tmp_path / name, corpus)


def test_setup_needs_data(tmp_path: Path) -> None:
    dm = RetrievalDataModule(name="absent", data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="call prepare_data"):
        dm.setup("fit")
    with pytest.raises(RuntimeError, match="before train_dataloader"):
        dm.train_dataloader()


class _Recorder(lightning.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, tuple[str, ...]]] = []

    def training_step(self, batch: list[TrainExample], batch_idx: int) -> torch.Tensor:
        self.seen.extend((self.current_epoch, tuple(ex.doc_ids)) for ex in batch)
        return (self.weight**2).sum() + 1.0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_sets_epoch_and_workers_agree(tiny_dir: Path, tmp_path: Path) -> None:
    dm = tiny_module(tiny_dir.parent, tmp_path, num_negatives=2)
    model = _Recorder()
    trainer = lightning.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(model, datamodule=dm)
    by_epoch = [[ids for e, ids in model.seen if e == epoch] for epoch in (0, 1)]
    loader = dm.train_dataloader()
    for epoch, seen in enumerate(by_epoch):
        loader.sampler.set_epoch(epoch)
        assert seen == [tuple(ex.doc_ids) for batch in loader for ex in batch]
    assert Counter(x[0] for x in by_epoch[0]) == Counter(x[0] for x in by_epoch[1])
    assert by_epoch[0] != by_epoch[1]
    # a worker process draws the same examples: the epoch travels with the index
    dm.num_workers = 1
    worker_loader = dm.train_dataloader()
    worker_loader.sampler.set_epoch(1)
    assert [tuple(ex.doc_ids) for b in worker_loader for ex in b] == by_epoch[1]


def test_sampler_shards_partition_each_epoch_like_distributed_sampler() -> None:
    from colcompress.data.datamodule import EpochShuffleSampler

    shards = [EpochShuffleSampler(10, seed=3, num_replicas=3, rank=r) for r in range(3)]
    seen = {}
    for epoch in (0, 1):
        for shard in shards:
            shard.set_epoch(epoch)
        drawn = [[i for i, e in shard if e == epoch] for shard in shards]
        assert [len(d) for d in drawn] == [4, 4, 4] == [len(s) for s in shards]
        flat = [i for d in drawn for i in d]
        assert set(flat) == set(range(10))  # every example, 2 repeated as padding
        whole = EpochShuffleSampler(10, seed=3)
        whole.set_epoch(epoch)
        order = [i for i, _ in whole]
        padded = order + order[:2]  # the single-process permutation, padded to 12
        assert drawn == [padded[r::3] for r in range(3)]
        seen[epoch] = drawn
    assert seen[0] != seen[1]  # reshuffled per epoch on every replica
    with pytest.raises(ValueError, match="rank 3 outside"):
        EpochShuffleSampler(10, seed=3, num_replicas=3, rank=3)
