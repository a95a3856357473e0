"""``${claim_dir:}``: concurrent claims of one name get distinct directories."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from omegaconf import OmegaConf

from colcompress.resolvers import claim_dir


def test_claim_dir_creates_the_next_free_name(tmp_path: Path):
    base = tmp_path / "runs" / "2026-01-01_00-00-00"
    assert claim_dir(str(base)) == str(base)
    assert claim_dir(str(base)) == f"{base}_1"
    assert claim_dir(str(base)) == f"{base}_2"
    assert sorted(p.name for p in base.parent.iterdir()) == [
        base.name,
        f"{base.name}_1",
        f"{base.name}_2",
    ]


def test_concurrent_claims_are_exclusive(tmp_path: Path):
    base = str(tmp_path / "same-second")
    with ProcessPoolExecutor(4) as pool:
        claimed = list(pool.map(claim_dir, [base] * 12))
    assert sorted(claimed) == sorted([base] + [f"{base}_{n}" for n in range(1, 12)])


def test_a_config_resolves_its_claim_once(tmp_path: Path):
    cfg = OmegaConf.create({"dir": f"${{claim_dir:{tmp_path}/run}}"})
    assert cfg.dir == cfg.dir == str(tmp_path / "run")
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
