"""The experiment loggers of one job (Lightning's CSV and W&B loggers), set up and closed.

The only module besides ``colcompress.run`` that knows about wandb: one wandb run per
job, named after the job's overrides, grouped by the sweep (or the task for a single
run), with the resolved config as its hyper-parameters; closed at the end of the job
so the next job of a sweep starts its own run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from colcompress.evaluation.utilization import UtilizationStats

# The option of a logger entry that colcompress reads itself (not a logger argument).
ARTIFACT_OPTION = "log_results_artifact"


def _wandb_defaults(cfg: DictConfig) -> dict[str, Any]:
    """Run name from the job's overrides, group from the sweep (or the task)."""
    hydra_cfg = HydraConfig.get()
    name = hydra_cfg.job.override_dirname or cfg.task_name
    group = cfg.task_name
    if hydra_cfg.mode == RunMode.MULTIRUN:
        sweep_dir = Path(hydra_cfg.runtime.output_dir).parent
        group = f"{cfg.task_name}/{sweep_dir.name}"
    return {"name": name, "group": group}


def make_loggers(cfg: DictConfig) -> tuple[list[Logger], bool]:
    """Instantiate the ``logger`` group and log the resolved config to each logger.

    ``name`` and ``group`` of the wandb entry default (when null) to the job's
    overrides and the sweep (``<task_name>/<sweep folder>``, or ``task_name`` for a
    single run).

    Returns
    -------
    loggers : list of Logger
    log_results_artifact : bool
        Whether :func:`close_loggers` attaches ``results.json`` and ``run.trec`` to the
        wandb run (``logger.wandb.log_results_artifact``).
    """
    loggers: list[Logger] = []
    artifact = False
    for entry in cfg.logger.values():
        if "_target_" not in entry:
            continue
        settings = OmegaConf.to_container(entry, resolve=True)
        artifact = bool(settings.pop(ARTIFACT_OPTION, False)) or artifact
        if get_class(settings["_target_"]) is WandbLogger:
            defaults = _wandb_defaults(cfg)
            settings.update({k: v for k, v in defaults.items() if settings.get(k) is None})
        loggers.append(instantiate(settings))
    hparams = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(hparams)
    return loggers, artifact


def log_results(loggers: list[Logger], results: dict[str, Any], output_dir: str) -> None:
    """Baselines, utilization summary, per-position table and figures to the loggers
    (per collection, under ``<name>/``, for a multi-collection run)."""
    keyed = "collections" in results
    parts = results["collections"] if keyed else {"": results}
    for name, out in parts.items():
        prefix = f"{name}/" if keyed else ""
        folder = os.path.join(output_dir, name) if keyed else output_dir
        for logger in loggers:
            flat = {
                f"baseline/{prefix}{b}/{metric}": value
                for b, r in out.get("baselines", {}).items()
                for metric, value in r["metrics"].items()
            }
            if "utilization" in out:
                stats = UtilizationStats.from_dict(out["utilization"])
                flat.update({f"{prefix}{k}": v for k, v in stats.summary().items()})
            if flat:
                logger.log_metrics(flat)
            if not isinstance(logger, WandbLogger) or "utilization" not in out:
                continue
            logger.log_table(
                key=f"{prefix}utilization/per_position",
                columns=["position", "strength", "wins"],
                data=[[i, s, w] for i, (s, w) in enumerate(zip(stats.strength, stats.wins))],
            )
            for fig in ("utilization_strength", "utilization_similarity"):
                path = os.path.join(folder, f"{fig}.png")
                if os.path.exists(path):
                    logger.log_image(key=f"{prefix}utilization/{fig.split('_')[1]}", images=[path])


def close_loggers(loggers: list[Logger], output_dir: str, log_results_artifact: bool) -> None:
    """Finalize the loggers and finish the job's wandb run.

    With ``log_results_artifact`` the job's ``results.json`` and rankings ``run.trec``
    (those present in ``output_dir``, one per collection of a multi-collection run)
    are attached to the run as a ``results`` artifact.
    """
    import wandb

    for logger in loggers:
        logger.finalize("success")
        if not isinstance(logger, WandbLogger):
            continue
        run = logger.experiment
        files = [Path(output_dir, "results.json"), *sorted(Path(output_dir).glob("**/run.trec"))]
        if log_results_artifact and any(f.is_file() for f in files):
            artifact = wandb.Artifact(f"results-{run.id}", type="results")
            for path in files:
                if path.is_file():
                    artifact.add_file(str(path), name=str(path.relative_to(output_dir)))
            run.log_artifact(artifact)
        run.finish()


def finish_failed_run() -> None:
    """Finish the wandb run a failed job left open (exit code 1), so the next job of a
    sweep does not log into it."""
    import wandb

    if wandb.run is not None:
        wandb.run.finish(exit_code=1)
