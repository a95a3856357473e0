"""Hydra callbacks, registered under ``hydra.callbacks`` in
``colcompress/conf/hydra/default.yaml``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def job_outcomes(sweep_dir: Path) -> tuple[list[Path], list[Path]]:
    """The job directories of a sweep and the ``results.json`` of those that failed.

    A job directory is one holding Hydra's ``.hydra/config.yaml``; a job failed when its
    ``results.json`` has ``"status": "failed"`` (as ``colcompress.job.record_failure``
    writes it).

    Returns
    -------
    jobs : list of Path
        Every job directory under ``sweep_dir``, sorted.
    failed : list of Path
        The ``results.json`` files of the failed jobs, sorted.
    """
    jobs = sorted(p.parent.parent for p in sweep_dir.rglob(".hydra/config.yaml"))
    failed = []
    for job in jobs:
        path = job / "results.json"
        if path.is_file() and json.loads(path.read_text()).get("status") == "failed":
            failed.append(path)
    return jobs, failed


class SweepTally(Callback):
    """At the end of a multirun, print jobs run / failed and exit 1 if any failed.

    Jobs of a sweep record their failure in ``results.json`` and the sweep goes on
    (``colcompress.run.main``); this callback runs after the last job, so the process
    exit status tells a shell or scheduler whether the sweep as a whole succeeded.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        jobs, failed = job_outcomes(sweep_dir)
        lines = [f"sweep: {len(jobs)} jobs run, {len(failed)} failed; results.json in {sweep_dir}"]
        lines += [f"  failed: {path}" for path in failed]
        print("\n".join(lines), flush=True)
        if failed:
            raise SystemExit(1)
