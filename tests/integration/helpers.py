"""Run ``python -m colcompress.run`` in a subprocess, with every output in a temp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import DATA_DIR, ROOT


def run_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        COLCOMPRESS_DATA_DIR=str(DATA_DIR),
        COLCOMPRESS_LOG_DIR=str(tmp / "logs"),
        COLCOMPRESS_CACHE_DIR=str(tmp.parent / "shared_cache"),
        WANDB_MODE="offline",
        WANDB_DIR=str(tmp / "wandb"),
        WANDB_SILENT="true",
        MPLCONFIGDIR=str(tmp / "mpl"),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=str(ROOT),
    )
    return env


def colcompress(tmp: Path, *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the entry point; raise with its output when it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "colcompress.run", *overrides],
        cwd=ROOT,
        env=run_env(tmp),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"run failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


def results_files(tmp: Path) -> list[Path]:
    return sorted((tmp / "logs").rglob("results.json"))


def load_results(tmp: Path) -> dict:
    (path,) = results_files(tmp)
    return json.loads(path.read_text())
