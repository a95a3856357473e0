"""Image documents end to end: Flickr8k-1k through the entry point (debug size)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.integration.helpers import colcompress, load_results
from tests.unit.test_media import FLICKR, needs_flickr

pytestmark = needs_flickr

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
IMAGE_RUN = (
    "debug=default",
    "model=vit_tiny",
    "dataset=flickr8k",
    f"dataset.path={FLICKR}",
    "evaluation.baselines=[random]",
    "logger=csv",
)


def _finite_unit(value: float) -> bool:
    return math.isfinite(value) and 0.0 <= value <= 1.0


def test_image_run_trains_indexes_and_evaluates(tmp_path: Path):
    proc = colcompress(tmp_path, *IMAGE_RUN, "compressor=agc", "budget=8")
    results = load_results(tmp_path)
    run_dir = Path(results["output_dir"])
    assert results["dataset"] == "flickr8k_1k" and results["split"] == "test"
    assert results["config"]["model"]["_target_"].endswith("ImageColBERT")
    assert all(_finite_unit(results["metrics"][m]) for m in METRICS)
    assert all(_finite_unit(results["baselines"]["random"]["metrics"][m]) for m in METRICS)
    index = results["index"]
    assert index["num_docs"] == 64  # debug: 8 test captions' images + random others
    assert index["avg_tokens_per_doc"] == 64  # visual tokens per image of vit_tiny
    assert index["vectors_per_doc"] == 8 and index["compression_ratio"] == 1 - 8 / 64
    assert results["config"]["index"]["_target_"].endswith("FastPlaidIndex")
    assert (run_dir / "index").is_dir() and (run_dir / "run.trec").is_file()
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))
    assert checkpoints == ["last.ckpt", "step1.ckpt", "step2.ckpt"]  # trained 2 steps
    assert "| colcompress (agc) |" in proc.stdout and "| random |" in proc.stdout


@pytest.mark.slow
def test_image_checkpoint_is_evaluated_without_training(tmp_path: Path):
    colcompress(tmp_path / "a", *IMAGE_RUN, "compressor=memtok", "budget=4", "evaluate=false")
    (ckpt,) = (tmp_path / "a" / "logs").rglob("last.ckpt")
    colcompress(
        tmp_path / "b", *IMAGE_RUN, "compressor=memtok", "budget=4", "train=false",
        f"init_from={ckpt}", "index=flat",
    )  # fmt: skip
    results = load_results(tmp_path / "b")
    assert results["index"]["vectors_per_doc"] == 4
    assert all(_finite_unit(results["metrics"][m]) for m in METRICS)
