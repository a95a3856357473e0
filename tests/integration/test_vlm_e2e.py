"""Vision-language models end to end: Flickr8k-1k through the entry point (debug size)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.integration.helpers import colcompress, load_results
from tests.unit.test_media import FLICKR, needs_flickr

pytestmark = needs_flickr

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
RUN = (
    "debug=default",
    "dataset=flickr8k",
    f"dataset.path={FLICKR}",
    "evaluation.baselines=[random]",
    "logger=csv",
    "training.freeze_layers=0",  # a vision-language model's layers are not frozen by count
)


def _finite_unit(value: float) -> bool:
    return math.isfinite(value) and 0.0 <= value <= 1.0


def test_hpool_posthoc_compresses_a_colqwen2_index_without_training(tmp_path: Path):
    colcompress(
        tmp_path, *RUN, "model=colqwen2_tiny", "train=false", "compressor=hpool_posthoc", "budget=8"
    )
    results = load_results(tmp_path)
    assert results["config"]["model"]["_target_"].endswith("ColVision")
    assert all(_finite_unit(results["metrics"][m]) for m in METRICS)
    index = results["index"]
    assert index["num_docs"] == 64 and index["vectors_per_doc"] == 8
    assert index["avg_tokens_per_doc"] > 8  # prompt and visual tokens, pooled to 8
    assert not list((tmp_path / "logs").rglob("*.ckpt"))  # nothing trained


@pytest.mark.slow
def test_qwen_vl_trains_agc_and_indexes(tmp_path: Path):
    colcompress(tmp_path, *RUN, "model=qwen25vl_tiny", "compressor=agc", "budget=8")
    results = load_results(tmp_path)
    run_dir = Path(results["output_dir"])
    assert results["config"]["model"]["_target_"].endswith("QwenVLColBERT")
    assert all(_finite_unit(results["metrics"][m]) for m in METRICS)
    assert results["index"]["vectors_per_doc"] == 8
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))
    assert checkpoints == ["last.ckpt", "step1.ckpt", "step2.ckpt"]  # trained 2 steps
