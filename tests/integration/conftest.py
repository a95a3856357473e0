"""A tiny sweep shared by the tests that read run directories (report, notebook)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.helpers import run_env


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 compressors x 2 budgets through the joblib launcher (debug size, flat index).

    Returns the temporary root whose ``logs/sweep`` holds the four job directories.
    """
    tmp = tmp_path_factory.mktemp("tiny_sweep")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "colcompress.run",
            "-m",
            "debug=default",
            "compressor=none,hpool",
            "budget=4,8",
            "hydra/launcher=joblib",
            "evaluation.baselines=[]",
            "index=flat",
            "logger=none",
            f"hydra.sweep.dir={tmp / 'logs' / 'sweep'}",
        ],
        cwd=ROOT,
        env=run_env(tmp),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return tmp
