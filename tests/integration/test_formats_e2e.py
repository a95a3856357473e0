"""A Stanford ColBERT checkpoint evaluated zero-shot through Hydra into a FastPlaid index."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.checkpoints import write_stanford
from tests.integration.helpers import colcompress, load_results


@pytest.mark.data
def test_zero_shot_stanford_checkpoint_builds_a_fastplaid_index(tmp_path: Path):
    metadata = {"query_maxlen": 16, "doc_maxlen": 48, "dim": 16}
    folder = write_stanford(tmp_path / "colbert", metadata).folder
    colcompress(
        tmp_path,
        "debug=default",
        "model=stanford",
        f"model.backbone={folder}",
        "model.doc_length=null",  # debug=default sets 64: keep the checkpoint's 48
        "train=false",
        "evaluation.baselines=[]",
        "logger=none",
    )
    results = load_results(tmp_path)
    model = results["config"]["model"]
    assert model["format"] == "stanford" and model["backbone"] == str(folder)
    assert results["config"]["index"]["_target_"].endswith("FastPlaidIndex")
    assert (Path(results["output_dir"]) / "index").is_dir()
    index = results["index"]
    # every document at most doc_maxlen vectors: the checkpoint's length, punctuation skipped
    assert index["num_docs"] > 0 and 1 < index["vectors_per_doc"] <= 48
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in results["metrics"].values())
