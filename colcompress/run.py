"""The ``colcompress`` command: compose the config (``colcompress/conf/``) and run a job.

colcompress                                  # defaults (NFCorpus, MiniLM)
colcompress compressor=agc budget=32         # one run
colcompress -m compressor=agc,hpool budget=5,32,128   # a sweep
colcompress --help                           # the config groups and the composed config

``python -m colcompress.run`` is the same command. This module imports only Hydra,
OmegaConf and the config resolvers; :mod:`colcompress.job` (torch, Lightning, the
models and indexes) is imported when a job runs, so ``--help``, ``--cfg`` and
``--info`` answer in about a second.
"""

from __future__ import annotations

import logging
import os

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import colcompress.resolvers  # noqa: F401  (registers the resolvers the configs use)

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="pkg://colcompress.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run one job. In a multirun a failing job is recorded as failed in its
    ``results.json`` and the sweep goes on; after the last job
    :class:`~colcompress.hydra_callbacks.SweepTally` prints the tally and exits 1 if
    any failed. A single run re-raises.

    Returns ``cfg.optimized_metric`` of the results when set (for sweepers such as
    Optuna), else None.
    """
    os.environ.setdefault("WANDB_MODE", "offline")
    from colcompress.job import record_failure, run

    try:
        results = run(cfg)
    except Exception as error:
        record_failure(cfg, error)
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            raise
        log.exception("job %s failed; the sweep goes on", HydraConfig.get().job.num)
        return None
    metric = cfg.get("optimized_metric")
    return float(results["metrics"][metric]) if metric and results else None


if __name__ == "__main__":
    main()
