"""Lightning DataModule: BEIR splits for training (query, positive, hard negatives) and eval.

Training examples are built once in :meth:`RetrievalDataModule.setup`; negatives are
sampled per epoch from a generator keyed on ``(seed, epoch, example)``, and the epoch
travels with each index drawn by :class:`EpochShuffleSampler`, so sampling is
reproducible with any number of dataloader workers.

Resuming is exact: the training loader (:class:`ResumableDataLoader`) saves its epoch
and the batches trained on so far in Lightning checkpoints, and a resumed run goes
on with the next batch of the same permutation.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from colcompress.data.beir import (
    BeirData,
    DataFormatError,
    Doc,
    check_layout,
    load_beir_splits,
    merge_collections,
    read_lines,
    slice_beir,
)
from colcompress.data.collections import collection_names, resolve_source
from colcompress.data.conventions import Conventions
from colcompress.data.download import ensure_beir
from colcompress.data.negatives import mine_negatives
from colcompress.data.splits import load_splits

__all__ = [
    "EpochShuffleSampler",
    "ResumableDataLoader",
    "RetrievalDataModule",
    "TrainDataset",
    "TrainExample",
    "identity_collate",
    "read_teacher_scores",
]


@dataclass
class TrainExample:
    """One training example: a query and its documents, the positive first.

    Not frozen: Lightning's batch transfer rebuilds dataclasses field by field.

    Attributes
    ----------
    query : str
        Query text.
    docs : list of Doc
        The documents ``[positive, negative_1, ..., negative_n]``; the model turns
        each into its input (:meth:`~colcompress.models.colbert.ColBERT.document_input`).
    teacher_scores : list of float or None
        Teacher score of every document of ``docs`` (aligned), or ``None`` without a
        teacher.
    qid : str
        Query id.
    doc_ids : list of str
        Ids aligned with ``docs``.
    """

    query: str
    docs: list[Doc]
    teacher_scores: list[float] | None
    qid: str
    doc_ids: list[str]


def identity_collate(batch: list[TrainExample]) -> list[TrainExample]:
    """Default ``collate_fn``: return the list of examples unchanged."""
    return batch


def _teacher_error(path: Path, lineno: int, message: str) -> DataFormatError:
    return DataFormatError(f"{path}:{lineno}: {message}")


def _teacher_id(path: Path, lineno: int, value: Any, key: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _teacher_error(path, lineno, f'"{key}" must be a string or integer id, got {value!r}')


def _teacher_score(path: Path, lineno: int, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _teacher_error(path, lineno, f"score must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _teacher_error(path, lineno, f"score must be a finite number, got {value!r}")
    return float(value)


def read_teacher_scores(
    path: str | Path, corpus: dict[str, Any] | None = None
) -> dict[str, dict[str, float]]:
    """Read teacher (e.g. cross-encoder) scores.

    Parameters
    ----------
    path : str or Path
        ``.jsonl``/``.json``: one ``{"qid": ..., "docid": ..., "score": ...}`` object a
        line. Anything else: TSV ``qid<TAB>docid<TAB>score`` (a first line whose score
        is not a number is a header).
    corpus : dict, optional
        When given, every ``docid`` must be one of its keys.

    Returns
    -------
    dict of str to dict of str to float
        ``scores[qid][docid]``.

    Raises
    ------
    DataFormatError
        Missing file, bad line, unknown document id or duplicate pair; the message
        names the file and 1-based line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: teacher score file not found")
    is_jsonl = path.suffix.lower() in (".jsonl", ".json")
    scores: dict[str, dict[str, float]] = {}
    first_line: dict[tuple[str, str], int] = {}
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        if is_jsonl:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _teacher_error(path, lineno, f"invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict) or not {"qid", "docid", "score"} <= obj.keys():
                raise _teacher_error(
                    path, lineno, 'expected an object with "qid", "docid" and "score"'
                )
            raw = (obj["qid"], obj["docid"], obj["score"])
        else:
            cols = line.rstrip("\r\n").split("\t")
            if len(cols) != 3:
                raise _teacher_error(
                    path,
                    lineno,
                    f"expected 3 tab-separated columns (qid, docid, score), got {len(cols)}",
                )
            if lineno == 1:
                try:
                    float(cols[2])
                except ValueError:
                    continue  # header
            raw = tuple(cols)
        qid = _teacher_id(path, lineno, raw[0], "qid")
        docid = _teacher_id(path, lineno, raw[1], "docid")
        score = _teacher_score(path, lineno, raw[2])
        if corpus is not None and docid not in corpus:
            raise _teacher_error(path, lineno, f"docid {docid!r} is not in the corpus")
        if (qid, docid) in first_line:
            raise _teacher_error(
                path,
                lineno,
                f"duplicate pair ({qid!r}, {docid!r}), first on line {first_line[qid, docid]}",
            )
        first_line[qid, docid] = lineno
        scores.setdefault(qid, {})[docid] = score
    return scores


@dataclass(frozen=True)
class _Pair:
    qid: str
    positives: tuple[str, ...]  # the positive is drawn from these (one in "pairs" mode)
    candidates: tuple[str, ...]
    excluded: frozenset[str]
    pool: tuple[str, ...] | None = None  # random negatives' documents (None: the corpus)


class TrainDataset(Dataset):
    """Training examples with sampled positives and negatives.

    Parameters
    ----------
    data : BeirData
        The training split (corpus, queries).
    pairs : list of _Pair
        Query, positive choices, candidate negatives and ids never to sample, per
        example.
    num_negatives : int
        Negatives per example.
    seed : int
        Seed of negative sampling.
    teacher : dict of str to dict of str to float, optional
        Teacher scores; when given every example carries them.

    Notes
    -----
    Index with ``(i, epoch)`` (what :class:`EpochShuffleSampler` yields) or with a
    plain ``i`` for the epoch last given to :meth:`set_epoch`.
    """

    def __init__(
        self,
        data: BeirData,
        pairs: list[_Pair],
        num_negatives: int,
        seed: int,
        teacher: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.data = data
        self.pairs = pairs
        self.num_negatives = num_negatives
        self.seed = seed
        self.teacher = teacher
        self.epoch = 0
        self._doc_ids = list(data.corpus)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch used when indexing with a plain integer."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int | tuple[int, int]) -> TrainExample:
        i, epoch = index if isinstance(index, tuple) else (index, self.epoch)
        pair = self.pairs[i]
        rng = np.random.default_rng((self.seed, epoch, i))
        choice = int(rng.integers(len(pair.positives))) if len(pair.positives) > 1 else 0
        doc_ids = [pair.positives[choice], *self._sample_negatives(pair, rng)]
        teacher = None
        if self.teacher is not None:
            teacher = [self.teacher[pair.qid][d] for d in doc_ids]
        return TrainExample(
            query=self.data.queries[pair.qid],
            docs=[self.data.corpus[d] for d in doc_ids],
            teacher_scores=teacher,
            qid=pair.qid,
            doc_ids=doc_ids,
        )

    def _sample_negatives(self, pair: _Pair, rng: np.random.Generator) -> list[str]:
        n = self.num_negatives
        if n == 0:
            return []
        candidates = pair.candidates
        if len(candidates) >= n:
            return [candidates[j] for j in rng.choice(len(candidates), size=n, replace=False)]
        negatives = list(candidates)
        taken = set(negatives) | pair.excluded
        pool = self._doc_ids if pair.pool is None else pair.pool
        if len(pool) - len(taken) < n - len(negatives):
            raise ValueError(
                f"query {pair.qid!r}: corpus too small for {n} negatives "
                f"({len(pool)} documents, {len(pair.excluded)} positives)"
            )
        while len(negatives) < n:  # random corpus documents fill up
            docid = pool[int(rng.integers(len(pool)))]
            if docid not in taken:
                taken.add(docid)
                negatives.append(docid)
        return negatives


class EpochShuffleSampler(Sampler):
    """Seeded shuffle that yields ``(index, epoch)`` so the epoch reaches every worker.

    Under data parallelism it also shards, as ``DistributedSampler`` does: the
    permutation of an epoch is padded (with its own first indices) to a multiple of
    the number of replicas and replica r takes every ``num_replicas``-th index from
    position r. Sharding here, instead of in Lightning's ``DistributedSamplerWrapper``
    (``use_distributed_sampler: false`` in ``colcompress/conf/trainer/ddp.yaml``), keeps
    :meth:`set_epoch` reaching this sampler, so negatives are redrawn every epoch.

    Parameters
    ----------
    length : int
        Dataset size.
    seed : int
        Seed; the permutation of epoch ``e`` comes from ``(seed, e)``.
    num_replicas, rank : int or None
        The data-parallel world size and this process's rank; default from
        ``torch.distributed`` when it is initialised, else 1 and 0.

    Attributes
    ----------
    epoch : int
        The epoch whose permutation the next iteration draws.
    start : int
        Position in this replica's share where the next iteration starts (set by
        :meth:`resume`, back to 0 once iterated).
    """

    def __init__(
        self, length: int, seed: int, num_replicas: int | None = None, rank: int | None = None
    ) -> None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if num_replicas is None:
            num_replicas = torch.distributed.get_world_size() if distributed else 1
        if rank is None:
            rank = torch.distributed.get_rank() if distributed else 0
        if not 0 <= rank < num_replicas:
            raise ValueError(f"EpochShuffleSampler: rank {rank} outside [0, {num_replicas})")
        self.length = length
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (Lightning calls this at the start of each epoch)."""
        if epoch != self.epoch:
            self.start = 0
        self.epoch = epoch

    def resume(self, epoch: int, position: int) -> None:
        """Make the next iteration start at ``position`` of epoch ``epoch``'s order.

        A position at or past the end of the epoch resumes at the start of the next.
        """
        if position < 0:
            raise ValueError(f"EpochShuffleSampler.resume: position {position} < 0")
        epoch, position = (epoch + 1, 0) if position >= len(self) else (epoch, position)
        self.epoch, self.start = epoch, position

    def __len__(self) -> int:
        return math.ceil(self.length / self.num_replicas)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = np.random.default_rng((self.seed, self.epoch)).permutation(self.length)
        total = len(self) * self.num_replicas
        order = np.resize(order, total)  # repeats the first indices as padding
        shard = order[self.rank :: self.num_replicas][self.start :]
        self.start = 0  # a resumed position applies to one iteration
        return iter([(int(i), self.epoch) for i in shard])


class ResumableDataLoader(DataLoader):
    """A training ``DataLoader`` over an :class:`EpochShuffleSampler` that resumes mid-epoch.

    Lightning stores the ``state_dict()`` of a training loader that has one in every
    checkpoint and hands it to ``load_state_dict()`` when training resumes. The
    position is counted in batches *trained on*, through :meth:`batch_taken` (called
    by :meth:`RetrievalDataModule.on_before_batch_transfer`), not in batches drawn:
    Lightning prefetches the next batch before the current one is trained on.

    Parameters
    ----------
    dataset : Dataset
    sampler : EpochShuffleSampler
    **kwargs
        Other ``DataLoader`` arguments (``batch_size``, ``collate_fn``, ...).
    """

    def __init__(self, dataset: Dataset, sampler: EpochShuffleSampler, **kwargs: Any) -> None:
        super().__init__(dataset, sampler=sampler, **kwargs)
        self.taken = 0

    def __iter__(self) -> Iterator[Any]:
        self.taken = math.ceil(self.sampler.start / self.batch_size)
        return super().__iter__()

    def batch_taken(self) -> None:
        """Count one batch of the current epoch as trained on."""
        self.taken += 1

    def state_dict(self) -> dict[str, int]:
        """The epoch, the examples of this replica's share trained on, and the sampling setup."""
        return {
            "epoch": self.sampler.epoch,
            "position": self.taken * self.batch_size,
            "length": self.sampler.length,
            "seed": self.sampler.seed,
            "num_replicas": self.sampler.num_replicas,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at the saved position; refuse a state from another sampling setup.

        Raises
        ------
        ValueError
            The checkpoint was trained with another dataset size, seed, number of
            data-parallel replicas or batch size (an exact resume is impossible); the
            message names both values.
        """
        mine = self.state_dict()
        differ = [
            f"{key} {state[key]} in the checkpoint, {mine[key]} now"
            for key in ("length", "seed", "num_replicas", "batch_size")
            if state.get(key) != mine[key]
        ]
        if differ:
            raise ValueError(
                "cannot resume the training data where the checkpoint stopped: "
                + "; ".join(differ)
                + " (length: training examples; seed: seed / dataset.seed; num_replicas: "
                "devices; batch_size: dataset.batch_size)"
            )
        self.sampler.resume(state["epoch"], state["position"])


class RetrievalDataModule(lightning.LightningDataModule):
    """BEIR-layout data for training and evaluating a multi-vector retriever.

    Parameters
    ----------
    name : str, list of str or None
        Collection name; the data lives in ``data_dir/name``. A name of
        :data:`~colcompress.data.collections.BEIR_COLLECTIONS` downloads its official
        archive. A list trains on the collections' training queries together (ids
        become ``<name>/<id>``; each query's negatives come from its own corpus);
        evaluating such a module is up to the caller, one collection at a time.
        None (with ``path``): the folder's name.
    data_dir : str
        Folder of datasets.
    path : str or None
        A local collection folder in BEIR layout, read in place (no download).
    url, md5 : str or None
        Archive URL and md5 for a collection outside the BEIR table (a BEIR name
        takes its own; another collection's URL or md5 is refused, see
        :func:`~colcompress.data.collections.resolve_source`).
    train_split, eval_split : str or None
        Qrels splits; ``train_split=None`` (or ``eval_split=None``) skips that side.
    document_split : dict or None
        Splits made from one qrels file by document (one collection only):
        ``{"source": <split>, "sizes": {<split>: <documents>, ...}, "seed": <int>}``
        (:func:`~colcompress.data.splits.split_by_documents`); ``train_split`` and
        ``eval_split`` then name parts of it. None: the qrels files are the splits.
    query_length : int, "auto" or None
        The collection's query length (see
        :func:`~colcompress.data.conventions.auto_query_length`); None: the BEIR
        table's default for the name, else the model's.
    ignore_identical_ids : bool or None
        Drop a retrieved document whose id is the query's (BEIR's convention on
        ArguAna and Quora); None: the BEIR table's setting for the name, else off.
    num_negatives : int
        Hard negatives per example (0: in-batch negatives only).
    examples : {"pairs", "queries"}
        ``pairs``: one example per (query, positive) pair per epoch (queries with
        many positives dominate). ``queries``: one example per query per epoch,
        its positive drawn anew each epoch (every query weighs the same).
    negatives_top_k : int
        BM25 candidates mined per query to sample negatives from.
    batch_size : int
        Examples per training batch.
    max_train_queries : int or None
        Seeded sample of training queries per collection (``None``: all).
    max_eval_queries, max_eval_docs : int or None
        Limits passed to :func:`slice_beir` for the eval split.
    teacher_scores : str or None
        TSV/JSONL teacher score file (see :func:`read_teacher_scores`); negatives
        then come from the documents it scores for each query (one collection only).
    cache_dir : str
        Cache folder for mined negatives.
    seed : int
        Seed of query sampling, slicing, negative sampling and shuffling.
    num_workers : int
        DataLoader workers.
    allow_unknown_ids : bool
        Drop qrels rows naming unknown ids (with a warning) instead of raising.
    progress : bool
        Draw progress bars while downloading and mining negatives.

    Attributes
    ----------
    collate_fn : callable
        Turns a list of :class:`TrainExample` into a batch; set it before
        :meth:`train_dataloader` (default: :func:`identity_collate`).
    train_data, eval_data : BeirData or None
        Available after :meth:`setup` (``eval_data`` for a single collection).
    train_dataset : TrainDataset or None
        Available after :meth:`setup` for fitting.
    """

    def __init__(
        self,
        name: str | list[str] | None = None,
        data_dir: str = "data",
        path: str | None = None,
        url: str | None = None,
        md5: str | None = None,
        train_split: str | None = "train",
        eval_split: str | None = "test",
        document_split: dict[str, Any] | None = None,
        query_length: int | str | None = None,
        ignore_identical_ids: bool | None = None,
        num_negatives: int = 1,
        examples: str = "pairs",
        negatives_top_k: int = 100,
        batch_size: int = 8,
        max_train_queries: int | None = None,
        max_eval_queries: int | None = None,
        max_eval_docs: int | None = None,
        teacher_scores: str | None = None,
        cache_dir: str = ".cache/colcompress",
        seed: int = 42,
        num_workers: int = 0,
        allow_unknown_ids: bool = False,
        progress: bool = False,
    ) -> None:
        super().__init__()
        if num_negatives < 0:
            raise ValueError(f"num_negatives must be >= 0, got {num_negatives}")
        if examples not in ("pairs", "queries"):
            raise ValueError(f"dataset.examples must be 'pairs' or 'queries', got {examples!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.names = collection_names(name, path)
        if len(self.names) > 1 and (url or md5 or teacher_scores):
            raise ValueError(
                f"dataset.name={self.names}: dataset.url, dataset.md5 and "
                "dataset.teacher_scores apply to one collection"
            )
        self.path = path
        self.data_dir = data_dir
        self.url = url
        self.md5 = md5
        if document_split is not None:
            document_split = dict(document_split)
            if len(self.names) > 1 or set(document_split) != {"source", "sizes", "seed"}:
                raise ValueError(
                    f"dataset.document_split={document_split}: expected source, sizes and "
                    "seed, for one collection"
                )
        self.train_split = train_split
        self.eval_split = eval_split
        self.document_split = document_split
        self.query_length = query_length
        self.ignore_identical_ids = ignore_identical_ids
        self.num_negatives = num_negatives
        self.examples = examples
        self.negatives_top_k = negatives_top_k
        self.batch_size = batch_size
        self.max_train_queries = max_train_queries
        self.max_eval_queries = max_eval_queries
        self.max_eval_docs = max_eval_docs
        self.teacher_scores = teacher_scores
        self.cache_dir = cache_dir
        self.seed = seed
        self.num_workers = num_workers
        self.allow_unknown_ids = allow_unknown_ids
        self.progress = progress
        self.collate_fn: Callable[[list[TrainExample]], Any] = identity_collate
        self.train_data: BeirData | None = None
        self.eval_data: BeirData | None = None
        self.train_dataset: TrainDataset | None = None
        self._train_loader: ResumableDataLoader | None = None

    @property
    def name(self) -> str:
        """The collection's name; several are joined by ``+``."""
        return "+".join(self.names)

    @property
    def dataset_dir(self) -> Path:
        """Directory of the (single) collection: ``path``, else ``data_dir/name``."""
        if len(self.names) > 1:
            raise ValueError(f"dataset.name={self.names}: several collections, no one directory")
        return self._dir(self.names[0])

    def _dir(self, name: str) -> Path:
        return Path(self.path) if self.path else Path(self.data_dir) / name

    @property
    def conventions(self) -> Conventions:
        """The (single) collection's evaluation conventions, table defaults applied."""
        return Conventions.of(self.names[0], self.query_length, self.ignore_identical_ids)

    def prepare_data(self) -> None:
        """Download (and verify) each collection unless its folder already holds it.

        Raises
        ------
        DataFormatError
            ``path`` is not a folder holding ``corpus.jsonl`` (the message gives the
            expected layout).
        SourceMismatchError
            ``url`` or ``md5`` belong to another collection than ``name``.
        """
        if self.path:
            check_layout(Path(self.path))
            return
        for name in self.names:
            url, md5 = resolve_source(name, self.url, self.md5)
            ensure_beir(name, self.data_dir, url=url, md5=md5, progress=self.progress)

    def setup(self, stage: str | None = None) -> None:
        """Load the splits; for ``stage`` ``"fit"`` or ``None`` also build training examples.

        Parameters
        ----------
        stage : str or None
            Lightning stage (``"fit"``, ``"validate"``, ``"test"``, ``"predict"``).
        """
        for name in self.names:
            if not (self._dir(name) / "corpus.jsonl").is_file():
                raise FileNotFoundError(
                    f"{self._dir(name)}/corpus.jsonl not found; call prepare_data() first "
                    "(or point data_dir at a folder holding the dataset)"
                )
        want_train = (
            stage in (None, "fit") and self.train_split is not None and self.train_data is None
        )
        want_eval = self.eval_split is not None and self.eval_data is None and len(self.names) == 1
        if want_eval or (want_train and len(self.names) == 1):
            self._setup_single(want_train, want_eval)
        elif want_train:
            parts = []
            for name in self.names:
                data = load_beir_splits(self._dir(name), [self.train_split], self.allow_unknown_ids)
                data = slice_beir(data[self.train_split], self.max_train_queries, None, self.seed)
                parts.append((name, data, self._candidates(data)[0]))
            self.train_data, candidates = merge_collections(parts)
            self.train_dataset = self._build_train_dataset(self.train_data, candidates, None)

    def _setup_single(self, want_train: bool, want_eval: bool) -> None:
        wanted = [s for s, w in ((self.train_split, want_train), (self.eval_split, want_eval)) if w]
        splits = list(dict.fromkeys(wanted))
        loaded = load_splits(self.dataset_dir, splits, self.document_split, self.allow_unknown_ids)
        if want_eval:
            self.eval_data = slice_beir(
                loaded[self.eval_split], self.max_eval_queries, self.max_eval_docs, self.seed
            )
        if want_train:
            self.train_data = slice_beir(
                loaded[self.train_split], self.max_train_queries, None, self.seed
            )
            self.train_dataset = self._build_train_dataset(
                self.train_data, *self._candidates(self.train_data)
            )

    def _candidates(
        self, data: BeirData
    ) -> tuple[dict[str, list[str]], dict[str, dict[str, float]] | None]:
        """Negative candidates of every query (teacher-scored, BM25-mined or none), and
        the teacher scores when there is a teacher file."""
        if self.teacher_scores is not None:
            teacher = read_teacher_scores(self.teacher_scores, data.corpus)
            candidates = {
                qid: [d for d in teacher.get(qid, {}) if d not in data.positives(qid)]
                for qid in data.queries
            }
            return candidates, teacher
        if self.num_negatives > 0:
            mined = mine_negatives(
                data, self.negatives_top_k, self.cache_dir, progress=self.progress
            )
            return mined, None
        return {qid: [] for qid in data.queries}, None

    def _build_train_dataset(
        self,
        data: BeirData,
        candidates: dict[str, list[str]],
        teacher: dict[str, dict[str, float]] | None,
    ) -> TrainDataset:
        grouped: dict[str, list[str]] = {}
        if len(self.names) > 1:  # a query's random negatives come from its own collection
            for docid in data.corpus:
                grouped.setdefault(docid.split("/", 1)[0], []).append(docid)
        pools = {name: tuple(ids) for name, ids in grouped.items()}
        pairs, no_teacher, too_few = [], 0, 0
        for qid in data.queries:
            pool = pools.get(qid.split("/", 1)[0])
            positives = frozenset(data.positives(qid))
            shared = tuple(candidates[qid])  # one tuple per query, shared by its pairs
            usable = []
            for docid in data.qrels[qid]:
                if docid not in positives:
                    continue
                if teacher is not None:
                    if docid not in teacher.get(qid, {}):
                        no_teacher += 1
                        continue
                    if len(shared) < self.num_negatives:
                        too_few += 1
                        continue
                usable.append(docid)
            if self.examples == "queries" and usable:
                pairs.append(_Pair(qid, tuple(usable), shared, positives, pool))
            else:
                pairs.extend(_Pair(qid, (docid,), shared, positives, pool) for docid in usable)
        if no_teacher:
            warnings.warn(
                f"{self.teacher_scores}: skipped {no_teacher} training pairs whose positive "
                "has no teacher score",
                stacklevel=3,
            )
        if too_few:
            warnings.warn(
                f"{self.teacher_scores}: skipped {too_few} training pairs whose query has "
                f"fewer than {self.num_negatives} teacher-scored non-positive documents",
                stacklevel=3,
            )
        if not pairs:
            raise ValueError(
                f"{self.dataset_dir}: no training examples from split {self.train_split!r} "
                "(no query with a positive judgement"
                + (" and a teacher score)" if teacher is not None else ")")
            )
        return TrainDataset(data, pairs, self.num_negatives, self.seed, teacher)

    def train_dataloader(self) -> ResumableDataLoader:
        """Batches of ``collate_fn(list of TrainExample)``, reshuffled every epoch."""
        if self.train_dataset is None:
            raise RuntimeError("call setup('fit') (with a train_split) before train_dataloader()")
        self._train_loader = ResumableDataLoader(
            self.train_dataset,
            sampler=EpochShuffleSampler(len(self.train_dataset), self.seed),
            batch_size=self.batch_size,
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
        )
        return self._train_loader

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Count each training batch as it goes to the model (see :class:`ResumableDataLoader`)."""
        if self._train_loader is not None and self.trainer is not None and self.trainer.training:
            self._train_loader.batch_taken()
        return batch
