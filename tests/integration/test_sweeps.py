"""A sweep as a whole: exit status and tally, one wandb run per job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.helpers import results_files, run_env
from tests.integration.wandb_records import records

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
    assert "%|" not in proc.stderr  # progress=auto draws no bar when stderr is not a TTY
    assert f"sweep: 2 jobs run, 1 failed; results.json in {sweep_dir}" in proc.stdout
    assert f"failed: {sweep_dir / '1' / 'results.json'}" in proc.stdout
    good, bad = (json.loads(p.read_text()) for p in results_files(tmp_path))
    assert good.get("status") != "failed" and 0.0 <= good["metrics"]["ndcg@10"] <= 1.0
    assert bad["status"] == "failed" and "missing.ckpt" in bad["error"]


@pytest.mark.slow
def test_every_job_of_a_sweep_is_its_own_wandb_run_with_its_config(tmp_path: Path):
    sweep_dir = tmp_path / "logs" / "sweep"
    proc = _sweep(tmp_path, "budget=4,8", "tags=[sweep_test]", f"hydra.sweep.dir={sweep_dir}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    runs = []
    for job in ("0", "1"):
        (path,) = (sweep_dir / job / "wandb").glob("offline-run-*/run-*.wandb")
        by_kind: dict[str, list] = {}
        for record in records(path):
            by_kind.setdefault(record.WhichOneof("record_type"), []).append(record)
        (run,) = by_kind["run"]
        config = {
            item.key: json.loads(item.value_json)
            for record in by_kind["config"]
            for item in record.config.update
        }
        artifacts = {r.artifact.type: r.artifact for r in by_kind["artifact"]}
        files = sorted(e.path for e in artifacts["results"].manifest.contents)
        (exit_record,) = by_kind["exit"]
        runs.append((run.run, config, files, exit_record.exit.exit_code))
    (run_a, config_a, files_a, exit_a), (run_b, config_b, files_b, exit_b) = runs
    assert run_a.run_id != run_b.run_id
    assert (config_a["budget"], config_b["budget"]) == (4, 8)
    assert config_a["model"]["_target_"].endswith("ColBERT")  # the full resolved config
    assert run_a.run_group == run_b.run_group == "debug/sweep"
    assert "budget=4" in run_a.display_name and "budget=8" in run_b.display_name
    assert list(run_a.tags) == list(run_b.tags) == ["sweep_test"]
    assert files_a == files_b == ["results.json", "run.trec"]
    assert exit_a == exit_b == 0
