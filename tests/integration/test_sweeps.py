"""A sweep as a whole: exit status and tally, one wandb run per job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.helpers import results_files, run_env

pytestmark = pytest.mark.data

# The cheapest real job: the tiny model evaluated zero-shot with the flat index.
CHEAP = ["debug=default", "train=false", "evaluation.baselines=[]", "index=flat"]


def _sweep(tmp: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "colcompress.run", "-m", *CHEAP, *overrides],
        cwd=ROOT,
        env=run_env(tmp),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_a_sweep_with_a_failed_job_exits_non_zero_after_every_job(tmp_path: Path):
    sweep_dir = tmp_path / "logs" / "sweep"
    missing = tmp_path / "missing.ckpt"
    proc = _sweep(
        tmp_path, "logger=none", f"init_from=null,{missing}", f"hydra.sweep.dir={sweep_dir}"
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert f"sweep: 2 jobs run, 1 failed; results.json in {sweep_dir}" in proc.stdout
    assert f"failed: {sweep_dir / '1' / 'results.json'}" in proc.stdout
    good, bad = (json.loads(p.read_text()) for p in results_files(tmp_path))
    assert good.get("status") != "failed" and 0.0 <= good["metrics"]["ndcg@10"] <= 1.0
    assert bad["status"] == "failed" and "missing.ckpt" in bad["error"]
