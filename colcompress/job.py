"""One configured job: build the model, train it, index and evaluate it.

:func:`run` is what the ``colcompress`` command (:mod:`colcompress.run`) calls for each
job once Hydra has composed its config; it imports torch, Lightning and the rest of
the package, which ``colcompress.run`` leaves out so that ``--help`` and config
composition stay fast.
"""

from __future__ import annotations

import logging
import os
import random
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from colcompress.atomic import remove_stale_temporaries
from colcompress.checkpoint import load_model_weights, model_config
from colcompress.compressors.base import Compressor
from colcompress.evaluation.baselines import evaluate_baselines, zero_shot_model
from colcompress.evaluation.evaluator import EvalTarget, IndexEvaluator, fit_corpus_statistics
from colcompress.evaluation.results import write_json
from colcompress.evaluation.utilization_analysis import UtilizationAnalysis
from colcompress.hub import set_offline
from colcompress.logging_setup import close_loggers, finish_failed_run, log_results, make_loggers
from colcompress.models.colbert import ColBERT
from colcompress.progress import resolve_progress
from colcompress.training.collate import TrainCollator
from colcompress.training.module import RetrievalModule
from colcompress.validation import validate_config

log = logging.getLogger(__name__)

# A temporary file untouched for this long before a run starts was left by a killed run.
STALE_AFTER_S = 3600.0

TRAINING_ARGS = (
    "lr",
    "projection_lr",
    "compressor_lr",
    "weight_decay",
    "warmup_steps",
    "temperature",
    "contrastive_weight",
    "distillation_weight",
    "teacher_temperature",
    "gather_negatives",
    "freeze_layers",
    "pair_distillation_weight",
    "freeze_encoder_steps",
)


def build_model(model_cfg: DictConfig | dict, compressor_cfg: DictConfig | dict) -> ColBERT:
    """Instantiate the compressor (told the backbone's hidden size if it asks) and the model."""
    model_cfg = OmegaConf.create(model_cfg)
    kwargs = {}
    if get_class(compressor_cfg["_target_"]).needs_hidden_size:
        kwargs["hidden_size"] = get_class(model_cfg["_target_"]).config_sizes(model_cfg)[0]
    compressor: Compressor = instantiate(compressor_cfg, **kwargs)
    return instantiate(model_cfg, compressor=compressor)


def _teacher(cfg: DictConfig, model: ColBERT) -> ColBERT | None:
    """The on-the-fly teacher: a checkpoint's model, or the zero-shot backbone."""
    path, zero_shot = cfg.training.teacher_ckpt, cfg.training.teacher_zero_shot
    if path and zero_shot:
        raise ValueError(
            "training.teacher_ckpt and training.teacher_zero_shot both set: choose one teacher"
        )
    if zero_shot:
        return zero_shot_model(cfg.model.backbone, model.query_length, model.doc_length)
    if not path:
        return None
    stored = model_config(path)
    return load_model_weights(build_model(stored["model"], stored["compressor"]), path)


def _init_projection(model: ColBERT, cfg: DictConfig, corpus: dict[str, Any]) -> None:
    """Initialise the projection from an SVD of documents of ``corpus`` (unlabelled)."""
    mode = cfg.training.projection_init
    if mode not in ("svd", "random"):
        raise ValueError(f"training.projection_init must be 'svd' or 'random', got {mode!r}")
    if mode == "random" or cfg.model.dim is None or model.format != "hf":
        return  # identity projection, or the checkpoint's own
    rng = random.Random(cfg.seed)
    ids = rng.sample(sorted(corpus), min(cfg.training.projection_init_docs, len(corpus)))
    kept = model.fit_projection([model.document_input(i, corpus[i]) for i in ids])
    log.info(
        "projection initialised from an SVD of %d documents (%.1f%% energy)", len(ids), 100 * kept
    )


def _check_launch(cfg: DictConfig) -> None:
    """Refuse a local multirun whose jobs would each start multi-process DDP.

    Lightning starts the extra DDP processes by re-running this command line, ``-m``
    and sweep included (facebookresearch/hydra#2070), so every rank would start its
    own sweep. Under SLURM the ranks are SLURM tasks and nothing is re-launched.
    """
    strategy = str(cfg.trainer.get("strategy") or "")
    if not strategy.startswith("ddp") or strategy == "ddp_spawn":
        return
    devices = cfg.trainer.get("devices", 1)
    if devices in ("auto", -1, "-1"):
        devices = torch.cuda.device_count() if cfg.trainer.get("accelerator") != "cpu" else 1
    many = (len(devices) if isinstance(devices, list | ListConfig) else int(devices)) > 1
    if many and HydraConfig.get().mode == RunMode.MULTIRUN and "SLURM_NTASKS" not in os.environ:
        raise ValueError(
            f"trainer.strategy={strategy} with {devices} devices in a local multirun: "
            "Lightning re-launches the whole command line (the sweep included) for every "
            "extra device. Run one job at a time with trainer=ddp, or sweep through "
            "hydra/launcher=slurm (one SLURM task per GPU)"
        )


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run one configured job and return the contents of its ``results.json``."""
    _check_launch(cfg)
    set_offline(cfg.hub_offline)
    validate_config(cfg)
    paths = cfg.paths
    remove_stale_temporaries(
        [paths.log_dir, paths.cache_dir, paths.data_dir], older_than=time.time() - STALE_AFTER_S
    )
    L.seed_everything(cfg.seed, workers=True)
    output_dir = cfg.paths.output_dir
    progress = resolve_progress(cfg.progress)
    separate_eval = cfg.get("eval_datasets") is not None
    datamodule = instantiate(
        cfg.dataset, progress=progress, **({"eval_split": None} if separate_eval else {})
    )
    if cfg.train or not separate_eval:
        datamodule.prepare_data()
        datamodule.setup("fit" if cfg.train else "test")
    model = build_model(cfg.model, cfg.compressor)
    targets, keyed = _eval_targets(cfg, datamodule, model, output_dir, progress)
    if cfg.test_budget is not None:  # refuse an impossible index budget before training
        model.compressor.check_budget(cfg.test_budget)
    # unlabelled documents for the projection and corpus statistics: the training corpus,
    # or (evaluation only) the first evaluated one
    corpus = (datamodule.train_data or targets[0].data()).corpus
    if cfg.init_from:
        fresh = cfg.training.init_compressor == "fresh"
        load_model_weights(model, cfg.init_from, fresh_compressor=fresh)
    elif not cfg.ckpt_path:
        _init_projection(model, cfg, corpus)
    if cfg.train:
        fit_corpus_statistics(model, corpus)
        datamodule.collate_fn = TrainCollator(
            model, datamodule.train_data.positives, cfg.training.doc_length
        )

    stored = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "compressor": OmegaConf.to_container(cfg.compressor, resolve=True),
    }
    module = RetrievalModule(
        model,
        teacher=_teacher(cfg, model),
        model_config=stored,
        **{k: cfg.training[k] for k in TRAINING_ARGS},
    )
    record = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "method": HydraConfig.get().runtime.choices.get("compressor", "none"),
        "label": cfg.get("label"),
        "dataset": datamodule.name,
        "split": cfg.dataset.eval_split,
        "output_dir": output_dir,
    }
    baselines = None
    if cfg.evaluation.baselines:
        baselines = partial(
            evaluate_baselines,
            backbone=cfg.model.backbone,
            names=list(cfg.evaluation.baselines),
            top_k=cfg.evaluation.top_k,
            doc_length=model.doc_length,
            batch_size=cfg.evaluation.batch_size,
            metrics=list(cfg.evaluation.metrics),
            cache_dir=cfg.paths.cache_dir,
            progress=progress,
        )
    evaluator = IndexEvaluator(
        targets=targets,
        output_dir=output_dir,
        test_budget=cfg.test_budget,
        record=record,
        baselines=baselines,
        keyed=keyed,
        top_k=cfg.evaluation.top_k,
        batch_size=cfg.evaluation.batch_size,
        metrics=list(cfg.evaluation.metrics),
        precision=str(cfg.trainer.get("precision")),
        progress=progress,
        chunk_docs=cfg.evaluation.chunk_docs,
        keep_vectors=cfg.evaluation.keep_vectors,
    )
    loggers, log_results_artifact = make_loggers(cfg)
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if "_target_" in c]
    if cfg.train:
        trainer: L.Trainer = instantiate(
            cfg.trainer,
            logger=loggers or False,
            callbacks=callbacks + ([evaluator] if cfg.evaluate else []),
            enable_checkpointing=bool(callbacks),
            enable_progress_bar=progress,
        )
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    elif cfg.evaluate:
        evaluator.run(model, loggers)
    results = evaluator.results or {}
    log_results(loggers, results, output_dir)
    close_loggers(loggers, output_dir, log_results_artifact)
    _print_summary(results)
    return results


def _analyses(cfg: DictConfig, output_dir: str) -> list[Any]:
    util = cfg.evaluation.utilization
    if not util.enabled:
        return []
    return [
        UtilizationAnalysis(
            similarity_positions=util.similarity_positions,
            similarity_sample=util.similarity_sample,
            output_dir=output_dir,
        )
    ]


def _index_factory(cfg: DictConfig, model: ColBERT, folder: str | None, progress: bool) -> Any:
    """Builds a fresh index of ``cfg.index``; with a ``folder`` (one collection of
    several) its files (if any) go in ``folder/index``."""
    where = {}
    if folder is not None and "index_dir" in cfg.index:
        where["index_dir"] = os.path.join(folder, "index")
    return partial(instantiate(cfg.index, **where), relu=model.relu, progress=progress)


def _eval_targets(
    cfg: DictConfig, datamodule: Any, model: ColBERT, output_dir: str, progress: bool
) -> tuple[list[EvalTarget], bool]:
    """The collections to evaluate on, and whether results are keyed by collection.

    ``eval_datasets`` lists them (BEIR names, folders, or mappings of ``dataset``
    options such as ``{name: arguana, eval_split: test}``), each read with the
    ``dataset`` options but for its own name, path and conventions. Without it the
    training collection is evaluated, each of them when ``dataset.name`` is a list.
    """
    entries = cfg.get("eval_datasets")
    if entries is None and len(datamodule.names) == 1:
        target = EvalTarget(
            datamodule.name,
            lambda: datamodule.eval_data,
            datamodule.conventions,
            _index_factory(cfg, model, None, progress),
            datamodule.dataset_dir,
            Path(output_dir),
            _analyses(cfg, output_dir),
        )
        return [target], False
    if entries is None:
        entries = list(datamodule.names)
    targets = []
    for entry in entries:
        options = _eval_options(entry)
        module = instantiate(cfg.dataset, train_split=None, progress=progress, **options)
        module.prepare_data()
        module.setup("test")
        folder = os.path.join(output_dir, module.name)
        targets.append(
            EvalTarget(
                module.name,
                lambda module=module: module.eval_data,
                module.conventions,
                _index_factory(cfg, model, folder, progress),
                module.dataset_dir,
                Path(folder),
                _analyses(cfg, folder),
            )
        )
    return targets, True


def _eval_options(entry: Any) -> dict[str, Any]:
    """``dataset`` options of one ``eval_datasets`` entry: a BEIR name, a folder (it
    holds a ``/``), or a mapping of options; the collection's own conventions unless
    the mapping sets them."""
    options: dict[str, Any] = {
        "name": None,
        "path": None,
        "url": None,
        "md5": None,
        "query_length": None,
        "ignore_identical_ids": None,
    }
    if isinstance(entry, str):
        options["path" if "/" in entry else "name"] = entry
        return options
    if isinstance(entry, dict) or OmegaConf.is_dict(entry):
        options.update(OmegaConf.to_container(OmegaConf.create(entry)))
        if options["name"] is None and options["path"] is None:
            raise ValueError(f"eval_datasets entry {dict(entry)}: give a name or a path")
        return options
    raise ValueError(f"eval_datasets entries are names, folders or mappings, got {entry!r}")


def _print_summary(results: dict[str, Any]) -> None:
    if not results:
        return
    method = "colcompress (" + results.get("method", "?") + ")"
    collections = results.get("collections") or {results.get("dataset", "?"): results}
    blocks = []
    for name, out in collections.items():
        rows = [(method, out["metrics"])]
        rows += [(b, r["metrics"]) for b, r in out.get("baselines", {}).items()]
        metrics = list(out["metrics"])
        lines = [
            f"{name} ({out.get('split')}, query length {out.get('query_length')})",
            "| model | " + " | ".join(metrics) + " |",
            "|---" * (len(metrics) + 1) + "|",
        ]
        lines += [f"| {r} | " + " | ".join(f"{v[m]:.4f}" for m in metrics) + " |" for r, v in rows]
        idx = out["index"]
        lines.append(
            f"index: {idx['num_docs']} docs, {idx['vectors_per_doc']:.1f} vectors/doc, "
            f"{idx['index_bytes'] / 2**20:.1f} MiB"
        )
        blocks.append("\n".join(lines))
    if "average" in results:
        avg = results["average"]["metrics"]
        blocks.append("average: " + ", ".join(f"{m} {v:.4f}" for m, v in avg.items()))
    blocks.append(f"results: {results['output_dir']}/results.json")
    print("\n\n".join(blocks))


def _dataset_label(dataset: DictConfig) -> str | None:
    name = dataset.get("name")
    if OmegaConf.is_list(name):
        return "+".join(str(n) for n in name)
    return name if name or not dataset.get("path") else Path(dataset.path).name


def record_failure(cfg: DictConfig, error: BaseException) -> None:
    """Record a failed job: its ``results.json`` (the error, its traceback and the config)
    and, finished with exit code 1, the wandb run it left open, so the next job of a
    sweep does not log into it."""
    output_dir = cfg.paths.output_dir
    write_json(
        {
            "status": "failed",
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
            "method": HydraConfig.get().runtime.choices.get("compressor", "none"),
            "dataset": _dataset_label(cfg.dataset),
            "split": cfg.dataset.get("eval_split"),
            "config": OmegaConf.to_container(cfg, resolve=False),
            "output_dir": output_dir,
        },
        os.path.join(output_dir, "results.json"),
    )
    finish_failed_run()
