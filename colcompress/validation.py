"""Check a composed run configuration before anything is loaded or trained.

:func:`validate_config` collects every problem it finds (budgets, index, metrics,
devices, dataset and checkpoint files, checkpoint settings) and raises one
:class:`ConfigError` listing them all, each naming the option, the value and what
was expected, so a run never fails on a setting after hours of training.
"""

from __future__ import annotations

import inspect
import pydoc
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from colcompress.checkpoint import read_checkpoint
from colcompress.compressors.base import NoCompression
from colcompress.data.collections import SourceMismatchError, collection_names, resolve_source
from colcompress.evaluation.baselines import BASELINES, TEXT_BASELINES
from colcompress.evaluation.metrics import invalid_metrics
from colcompress.index.fastplaid import SUPPORTED_NBITS

__all__ = ["ConfigError", "validate_config"]

PLAIN_MODEL = f"{NoCompression.__module__}.{NoCompression.__name__}"


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every problem found."""


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` listing every problem of ``cfg``.

    Parameters
    ----------
    cfg : DictConfig
        The composed run configuration (``colcompress/conf/config.yaml`` and its groups).

    Raises
    ------
    ConfigError
        One line per problem, each naming the option, its value and what was
        expected.
    """
    problems = [
        *_budgets(cfg),
        *_index(cfg),
        *_metrics(cfg),
        *_devices(cfg.trainer),
        *_files(cfg),
        *_checkpoint_settings(cfg),
        *_two_stage(cfg),
        *_document_modality(cfg),
    ]
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _budgets(cfg: DictConfig) -> Iterator[str]:
    target = cfg.compressor.get("_target_")
    cls = pydoc.locate(target) if isinstance(target, str) else None
    if cls is None:
        yield f"compressor._target_={target!r}: not an importable class"
        return
    options = [("budget", cfg.get("budget")), ("test_budget", cfg.get("test_budget"))]
    if "budget" in cfg.compressor and not OmegaConf.is_interpolation(cfg.compressor, "budget"):
        options.append(("compressor.budget", cfg.compressor.budget))
    for option, value in options:
        if value is not None and not _is_count(value):
            yield f"{option}={value!r}: expected a positive integer (or null)"
    parameter = inspect.signature(cls).parameters.get("budget")
    budget = cfg.compressor.get("budget")
    if parameter is not None and parameter.default is inspect.Parameter.empty and budget is None:
        yield f"budget=null: compressor {cls.__name__} needs a positive integer budget"


def _index(cfg: DictConfig) -> Iterator[str]:
    nbits = cfg.index.get("nbits")
    if "nbits" in cfg.index and nbits not in SUPPORTED_NBITS:
        yield f"index.nbits={nbits!r}: expected one of {sorted(SUPPORTED_NBITS)}"


def _metrics(cfg: DictConfig) -> Iterator[str]:
    metrics = list(cfg.evaluation.metrics)
    for bad in invalid_metrics(metrics):
        yield f"evaluation.metrics: unknown metric {bad}; e.g. ndcg@10, recall@100, mrr@10, map"
    optimized = cfg.get("optimized_metric")
    if optimized and optimized not in metrics:
        yield f"optimized_metric={optimized!r}: not one of evaluation.metrics {metrics}"
    unknown = sorted(set(cfg.evaluation.get("baselines") or []) - set(BASELINES))
    if unknown:
        yield f"evaluation.baselines: unknown {unknown}; choose from {list(BASELINES)}"
    chunk_docs = cfg.evaluation.get("chunk_docs")
    if chunk_docs is not None and not _is_count(chunk_docs):
        yield f"evaluation.chunk_docs={chunk_docs!r}: expected a positive integer (or null)"


def _document_modality(cfg: DictConfig) -> Iterator[str]:
    """Text-only references refused for a model of other documents (images)."""
    target = cfg.model.get("_target_")
    cls = pydoc.locate(target) if isinstance(target, str) else None
    modality = getattr(cls, "document_modality", "text")
    if modality == "text":
        return
    reading = [b for b in cfg.evaluation.get("baselines") or [] if b in TEXT_BASELINES]
    if reading:
        yield (
            f"evaluation.baselines: {reading} read document text, but {cls.__name__} "
            f"encodes {modality} documents; use evaluation.baselines=[random]"
        )
    if (cfg.get("training") or {}).get("teacher_zero_shot"):
        yield (
            "training.teacher_zero_shot=true: the zero-shot teacher reads text documents, "
            f"but {cls.__name__} encodes {modality} documents"
        )


def _devices(trainer: DictConfig) -> Iterator[str]:
    accelerator = str(trainer.get("accelerator") or "auto")
    devices = trainer.get("devices", "auto")
    if accelerator in ("gpu", "cuda"):
        available, what = torch.cuda.device_count(), "CUDA devices"
    elif accelerator == "mps":
        available, what = int(torch.backends.mps.is_available()), "MPS devices"
    else:
        return
    if available == 0:
        yield f"trainer.accelerator={accelerator}: no {what} here; use trainer=cpu"
    elif _is_count(devices) and devices > available:
        yield f"trainer.devices={devices}: only {available} {what} here"
    elif isinstance(devices, list) or OmegaConf.is_list(devices):
        missing = [d for d in devices if not 0 <= int(d) < available]
        if missing:
            yield f"trainer.devices={list(devices)}: no devices {missing} ({available} {what})"


def _files(cfg: DictConfig) -> Iterator[str]:
    for option in ("init_from", "ckpt_path", "training.teacher_ckpt", "dataset.teacher_scores"):
        value = OmegaConf.select(cfg, option)
        if value and not Path(value).is_file():
            yield f"{option}={value}: no such file"
    dataset = cfg.dataset
    if cfg.get("train", True) and dataset.get("train_split") is None:
        yield (
            "dataset.train_split=null: the collection is for evaluation only; set train=false "
            "(with init_from=<checkpoint>, or zero-shot), or train on another dataset and "
            "evaluate this one through eval_datasets"
        )
    try:
        names = collection_names(dataset.get("name"), dataset.get("path"))
    except ValueError as err:
        yield str(err)
        return
    for name in names:
        root = Path(dataset.path) if dataset.get("path") else Path(dataset.data_dir) / name
        if not dataset.get("path"):
            try:
                resolve_source(name, dataset.get("url"), dataset.get("md5"))
            except SourceMismatchError as err:
                yield str(err)
                continue
        if not root.exists():
            if dataset.get("path"):
                yield f"dataset.path={dataset.path}: no such folder"
            continue  # downloaded by the data module
        if not (root / "corpus.jsonl").is_file():
            yield f"dataset.name={name}: {root} exists but holds no corpus.jsonl"
            continue
        present = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        document_split = dataset.get("document_split")
        if document_split:
            source = document_split.get("source")
            if source not in present:
                yield (
                    f"dataset.document_split.source={source}: no {root}/qrels/{source}.tsv; "
                    f"present: {present}"
                )
            present = list(document_split.get("sizes") or {})
        where = "dataset.document_split.sizes" if document_split else f"{root}/qrels/<split>.tsv"
        wanted = [("train_split", cfg.get("train", True))]
        wanted.append(("eval_split", cfg.get("evaluate", True) and not cfg.get("eval_datasets")))
        for option, used in wanted:
            split = dataset.get(option)
            if used and split is not None and split not in present:
                yield f"dataset.{option}={split}: no such split in {where}; present: {present}"


INIT_COMPRESSOR = ("checkpoint", "fresh")


def _two_stage(cfg: DictConfig) -> Iterator[str]:
    training = cfg.get("training") or {}
    init = training.get("init_compressor", "checkpoint")
    if init not in INIT_COMPRESSOR:
        yield f"training.init_compressor={init!r}: expected one of {list(INIT_COMPRESSOR)}"
    elif init == "fresh" and not cfg.get("init_from"):
        yield "training.init_compressor=fresh: needs init_from (the checkpoint to start from)"
    steps = training.get("freeze_encoder_steps", 0)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        yield f"training.freeze_encoder_steps={steps!r}: expected an integer >= 0"


def _flatten(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _checkpoint_settings(cfg: DictConfig) -> Iterator[str]:
    """Model and compressor settings that differ from those a checkpoint was trained with.

    A difference is allowed when its option (or ``compressor``, for another
    compressor) is listed in ``checkpoint_overrides``. A post-hoc compressor on a
    checkpoint of the plain model (``compressor=none``) is always allowed, and so is
    any compressor on ``init_from`` with ``training.init_compressor=fresh`` (only the
    encoder and projection are loaded).
    """
    allowed = set(cfg.get("checkpoint_overrides") or [])
    fresh = (cfg.get("training") or {}).get("init_compressor") == "fresh"
    for option in ("init_from", "ckpt_path"):
        path = cfg.get(option)
        if not path or not Path(path).is_file():
            continue
        stored = read_checkpoint(path).get("colcompress_model_config")
        if not isinstance(stored, Mapping):
            continue
        current = {
            "model": OmegaConf.to_container(cfg.model, resolve=True),
            "compressor": OmegaConf.to_container(cfg.compressor, resolve=True),
        }
        old_target = stored.get("compressor", {}).get("_target_")
        new_target = current["compressor"].get("_target_")
        sections = ["model"]
        if option == "init_from" and fresh:
            pass  # the compressor is not loaded
        elif old_target == new_target:
            sections.append("compressor")
        elif old_target != PLAIN_MODEL and "compressor" not in allowed:
            yield (
                f"{option}={path} was trained with compressor {old_target}, the command line "
                f"asks for {new_target}; add checkpoint_overrides=[compressor] to use it anyway"
            )
        for section in sections:
            old = _flatten(stored.get(section, {}), f"{section}.")
            new = _flatten(current[section], f"{section}.")
            for key in sorted(old.keys() & new.keys()):
                if old[key] != new[key] and key not in allowed:
                    yield (
                        f"{option}={path} was trained with {key}={old[key]!r}, the command line "
                        f"says {key}={new[key]!r}; keep the checkpoint's value or add "
                        f"checkpoint_overrides=[{key}] to use {new[key]!r}"
                    )
