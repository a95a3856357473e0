"""One typed record per finished run directory (its ``results.json`` and ranking)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colcompress.evaluation.results import run_label
from colcompress.evaluation.utilization import UtilizationStats

RANKING_FILES = ("run.trec", "run.trec.gz")  # as written; as experiments/archive_runs.sh keeps it


class AnalysisError(ValueError):
    """Runs that cannot be read or reported together; the message names the files."""


@dataclass
class RunRecord:
    """A run directory's ``results.json``, read once.

    Attributes
    ----------
    path : Path
        The ``results.json`` file, as it was found (relative paths stay relative).
    results : dict
        Its content; for one collection of a multi-collection run (``collection``), the
        run's entries with that collection's in place of ``collections`` and ``average``.
    collection : str or None
        The collection this record is, in a multi-collection run.
    """

    path: Path
    results: dict[str, Any]
    collection: str | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> RunRecord:
        """Read ``path`` (a ``results.json``); AnalysisError naming it when it is missing,
        not JSON, or not a JSON object."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise AnalysisError(f"{path}: unreadable results.json ({err})") from None
        if not isinstance(data, dict):
            raise AnalysisError(f"{path}: results.json does not hold a JSON object")
        return cls(path, data)

    @classmethod
    def from_dir(cls, run_dir: str | Path) -> RunRecord:
        """Read ``run_dir/results.json`` (see :meth:`from_file`)."""
        return cls.from_file(Path(run_dir) / "results.json")

    def per_collection(self) -> list[RunRecord]:
        """One record per evaluated collection: itself for a run on one collection."""
        keyed = self.results.get("collections")
        if not isinstance(keyed, dict):
            return [self]
        shared = {k: v for k, v in self.results.items() if k not in ("collections", "average")}
        return [
            RunRecord(self.path, {**shared, **out}, name)
            for name, out in keyed.items()
            if isinstance(out, dict)
        ]

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def config(self) -> dict[str, Any]:
        return self.results.get("config") or {}

    @property
    def method(self) -> str:
        """The compressor's config name (``agc``, ``hpool_posthoc``, ...)."""
        return str(self.results.get("method", "?"))

    @property
    def dataset(self) -> str:
        return str(self.results.get("dataset") or self.config.get("dataset", {}).get("name", "?"))

    @property
    def dataset_dir(self) -> Path | None:
        """The evaluated collection's folder, as recorded (None: unknown)."""
        if self.results.get("dataset_dir"):
            return Path(self.results["dataset_dir"])
        cfg = self.config
        data_dir = cfg.get("dataset", {}).get("data_dir") or cfg.get("paths", {}).get("data_dir")
        return Path(data_dir) / self.dataset if data_dir else None

    @property
    def document_split(self) -> dict[str, Any] | None:
        """The ``dataset.document_split`` that cut the evaluated collection (None: its
        qrels files are the splits)."""
        if self.dataset != self.config.get("dataset", {}).get("name"):
            return None
        return self.config["dataset"].get("document_split")

    @property
    def split(self) -> str | None:
        return self.results.get("split") or self.config.get("dataset", {}).get("eval_split")

    @property
    def index(self) -> dict[str, Any]:
        return self.results.get("index") or {}

    @property
    def budget(self) -> int | None:
        """Vectors per document the index was built with (None: no fixed budget)."""
        return self.index.get("budget")

    @property
    def train_budget(self) -> int | None:
        """The training budget when the run indexed with a different ``test_budget``."""
        return None if self.config.get("test_budget") is None else self.index.get("train_budget")

    @property
    def label(self) -> str:
        """The row label: ``results["label"]`` (from the config's ``label``), else the
        default :func:`~colcompress.evaluation.results.run_label` of method and budgets."""
        return self.results.get("label") or run_label(self.method, self.budget, self.train_budget)

    @property
    def metrics(self) -> dict[str, float]:
        metrics = self.results.get("metrics")
        return dict(metrics) if isinstance(metrics, dict) else {}

    @property
    def failure(self) -> str | None:
        """Why the run left no usable result (None: it finished)."""
        if self.results.get("status", "ok") == "failed":
            return str(self.results.get("error", "failed"))
        if isinstance(self.results.get("collections"), dict):
            return None if self.results["collections"] else "no collection evaluated"
        if not isinstance(self.results.get("metrics"), dict):
            return "no metrics recorded"
        return None

    @property
    def utilization(self) -> UtilizationStats:
        """The run's utilization statistics (AnalysisError naming the file: none recorded)."""
        if self.results.get("utilization") is None:
            raise AnalysisError(
                f"{self.path}: lacks 'utilization' (evaluation.utilization.enabled was false)"
            )
        try:
            return UtilizationStats.from_dict(self.results["utilization"], source=str(self.path))
        except ValueError as err:
            raise AnalysisError(str(err)) from None

    @property
    def ranking(self) -> Path | None:
        """The TREC run file (``run.trec`` or ``run.trec.gz``), None when neither exists."""
        folder = self.run_dir / self.collection if self.collection else self.run_dir
        return next((folder / n for n in RANKING_FILES if (folder / n).is_file()), None)

    def eval_slice(self) -> tuple[Any, ...]:
        """(split, max_eval_queries, max_eval_docs, slicing seed, document split as
        JSON): what was evaluated on."""
        ds = self.config.get("dataset", {})
        queries, docs = ds.get("max_eval_queries"), ds.get("max_eval_docs")
        sliced = (queries, docs) != (None, None)
        seed = ds.get("seed", self.config.get("seed")) if sliced else None
        cut = json.dumps(self.document_split, sort_keys=True) if self.document_split else None
        return (self.split, queries, docs, seed, cut)


@dataclass
class FailedRun:
    """A run directory that left no usable result, and why."""

    run_dir: Path
    method: str
    dataset: str
    reason: str


def find_runs(paths: list[str | Path]) -> tuple[list[RunRecord], list[FailedRun]]:
    """Every ``results.json`` below ``paths``, split into finished and failed runs.

    Parameters
    ----------
    paths : list of str or Path
        Run directories, sweep directories or ``results.json`` files.

    Returns
    -------
    runs : list of RunRecord
        Finished runs, in path order (each path's files sorted).
    failed : list of FailedRun
        Runs recorded as failed, unreadable or metric-less ``results.json`` files, and
        Hydra job directories (``.hydra/``) without one (crashed, running, or
        ``evaluate=false``).

    Raises
    ------
    AnalysisError
        A path does not exist, or nothing was found below the paths.
    """
    files: dict[Path, Path] = {}  # resolved -> as found
    job_dirs: dict[Path, Path] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise AnalysisError(f"{path}: no such file or directory")
        found = [path] if path.is_file() else sorted(path.rglob("results.json"))
        for file in found:
            files.setdefault(file.resolve(), file)
        if path.is_dir():
            hydra = [h.parent for h in sorted(path.rglob(".hydra"))]
            for job in hydra + ([path] if (path / ".hydra").is_dir() else []):
                job_dirs.setdefault(job.resolve(), job)
    runs, failed = [], []
    for file in files.values():
        try:
            run = RunRecord.from_file(file)
        except AnalysisError as err:
            failed.append(FailedRun(file.parent, "?", "?", str(err)))
            continue
        if run.failure is None:
            runs.extend(run.per_collection())
        else:
            failed.append(FailedRun(run.run_dir, run.method, run.dataset, run.failure))
    with_results = {p.parent for p in files}
    for resolved, job in job_dirs.items():
        if resolved not in with_results:
            method = _saved(job, "hydra.yaml", "hydra.runtime.choices.compressor")
            dataset = _saved(job, "config.yaml", "dataset.name")
            reason = "no results.json (crashed, still running, or evaluate=false)"
            failed.append(FailedRun(job, method, dataset, reason))
    if not runs and not failed:
        raise AnalysisError(f"no results.json below {', '.join(str(p) for p in paths)}")
    return runs, failed


def _saved(job_dir: Path, name: str, key: str) -> str:
    """A value of a Hydra job's saved ``.hydra/<name>`` ("?" when unknown)."""
    import yaml
    from omegaconf import OmegaConf

    try:
        value = OmegaConf.select(OmegaConf.load(job_dir / ".hydra" / name), key)
    except (OSError, ValueError, yaml.YAMLError):  # missing or half-written: unknown
        value = None
    return "?" if value is None else str(value)
