"""Runs started in the same second get their own directories (runs and sweeps)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.integration.helpers import run_env

FAST = (
    "debug=default",
    "train=false",
    "index=flat",
    "evaluation.baselines=[]",
    "evaluation.utilization.enabled=false",
    "logger=none",
)


def _start_together(tmp: Path, commands: list[list[str]]) -> None:
    """Start every command at once and wait for all; fail with the output of a failure."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "colcompress.run", *args, *FAST],
            cwd=ROOT,
            env=run_env(tmp),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for args in commands
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-6000:]


def _check_coherent(run_dir: Path) -> int:
    """The seed a run directory's results were made with, checked against its config."""
    results = json.loads((run_dir / "results.json").read_text())
    config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    assert results["output_dir"] == str(run_dir)
    assert results["config"]["seed"] == config["seed"]
    assert f"seed={config['seed']}" in overrides
    assert (run_dir / "run.trec").is_file()
    return config["seed"]


@pytest.mark.slow
def test_two_sweeps_in_the_same_second_get_their_own_directories(tmp_path: Path):
    # the timestamp is fixed (one name for both) so that they always collide
    same = f"hydra.sweep.dir=${{claim_dir:{tmp_path / 'logs' / 'multiruns' / 'same'}}}"
    _start_together(tmp_path, [["-m", same, "seed=1"], ["-m", same, "seed=2"]])
    dirs = sorted((tmp_path / "logs" / "multiruns").iterdir())
    assert [d.name for d in dirs] == ["same", "same_1"]
    assert sorted(_check_coherent(d / "0") for d in dirs) == [1, 2]


@pytest.mark.slow
def test_two_runs_started_together_get_their_own_directories(tmp_path: Path):
    """Started together, two runs get the same timestamp; each claims its own directory."""
    _start_together(tmp_path, [["seed=1"], ["seed=2"]])
    dirs = sorted((tmp_path / "logs" / "debug" / "runs").iterdir())
    assert len(dirs) == 2
    assert sorted(_check_coherent(d) for d in dirs) == [1, 2]
