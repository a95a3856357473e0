"""Matching strength of uncompressed image runs over their patch grid: layout, refusals, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import CLIPVisionConfig
from transformers.models.clip.modeling_clip import CLIPVisionEmbeddings

from colcompress.analysis import plots
from colcompress.analysis.cli import main
from colcompress.analysis.records import AnalysisError, RunRecord
from colcompress.evaluation.utilization import UtilizationStats, coefficient_of_variation, gini

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLIP_160_16 = {"model_type": "clip_vision_model", "image_size": 160, "patch_size": 16}
HPOOL = "colcompress.compressors.hpool.HPool"
AGC = "colcompress.compressors.agc.AGC"


def _write_run(
    run_dir: Path,
    strength: np.ndarray,
    vision_config: dict | None = CLIP_160_16,
    method: str = "none",
    compressor: str = plots.NO_COMPRESSION,
    model: str = plots.IMAGE_MODEL,
) -> Path:
    """A run directory whose ``results.json`` has the layout evaluation writes."""
    values = [float(v) for v in strength]
    utilization = UtilizationStats(
        strength=values,
        strength_sum=values,
        wins=[1] * len(values),
        position_counts=[1] * len(values),
        cv=coefficient_of_variation(values),
        gini=gini(values),
        num_pairs=10,
        num_match_records=100,
    )
    results = {
        "method": method,
        "index": {"budget": None},
        "metrics": {"ndcg@10": 0.5},
        "config": {
            "model": {"_target_": model, "vision_config": vision_config},
            "compressor": {"_target_": compressor},
        },
        "utilization": utilization.to_dict(),
    }
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps(results))
    return run_dir


def _strength(positions: int, seed: int = 0) -> np.ndarray:
    """``positions`` distinct positive values, shape [positions]."""
    return np.random.default_rng(seed).permutation(positions) / positions + 0.01


def test_clip_puts_the_class_token_first_and_the_patches_in_row_major_order():
    """Position ``1 + r * G + x`` is the patch at row r, column x (what the grid assumes)."""
    config = CLIPVisionConfig(
        hidden_size=8, num_attention_heads=2, image_size=32, patch_size=8, num_channels=1
    )
    embeddings = CLIPVisionEmbeddings(config)
    with torch.no_grad():
        embeddings.patch_embedding.weight.fill_(1.0)  # every channel: the patch's pixel sum
        embeddings.class_embedding.zero_()
        embeddings.position_embedding.weight.zero_()
        pixels = torch.zeros(1, 1, 32, 32)
        pixels[0, 0, 8 * 1 + 3, 8 * 2 + 5] = 1.0  # inside the patch at row 1, column 2
        tokens = embeddings(pixels)[0, :, 0]  # [1 + 4 * 4]
    assert tokens.shape == (17,)
    assert tokens.nonzero().flatten().tolist() == [1 + 1 * 4 + 2]


def test_figure_shows_the_strength_reshaped_to_the_patch_grid(tmp_path: Path):
    strength = _strength(101)
    record = RunRecord.from_dir(_write_run(tmp_path / "none", strength))
    grid, leading = plots.patch_strength(record)
    assert grid.shape == (10, 10) and grid[1, 2] == strength[1 + 1 * 10 + 2]
    assert leading.tolist() == [strength[0]]
    fig = plots.patch_grid_figure({"none": record})
    (image,) = fig.axes[0].images
    assert np.array_equal(image.get_array(), strength[1:].reshape(10, 10))
    assert fig.axes[0].get_title() == f"none\n10x10 patches, class token {strength[0]:.3g}"


def test_grid_without_a_recorded_image_size_comes_from_the_number_of_positions(tmp_path: Path):
    """A pretrained tower records no image size: P = G^2 (SigLIP) or G^2 + 1 (CLIP)."""
    siglip = _write_run(tmp_path / "siglip", _strength(64), vision_config=None)
    grid, leading = plots.patch_strength(RunRecord.from_dir(siglip))
    assert np.array_equal(grid, _strength(64).reshape(8, 8)) and leading.size == 0
    clip = _write_run(tmp_path / "clip", _strength(50), vision_config=None)
    grid, leading = plots.patch_strength(RunRecord.from_dir(clip))
    assert grid.shape == (7, 7) and leading.tolist() == [_strength(50)[0]]


def test_positions_that_fit_no_patch_grid_are_refused(tmp_path: Path):
    odd = RunRecord.from_dir(_write_run(tmp_path / "odd", _strength(52), vision_config=None))
    with pytest.raises(AnalysisError, match=r"odd/results.json: 52 positions do not fit a 7x7"):
        plots.patch_strength(odd)
    short = RunRecord.from_dir(_write_run(tmp_path / "short", _strength(90)))
    with pytest.raises(AnalysisError, match=r"short/results.json: 90 positions .* 10x10 .*160"):
        plots.patch_strength(short)


def test_compressed_and_text_runs_are_refused(tmp_path: Path):
    hpool = _write_run(tmp_path / "hpool", _strength(32), method="hpool", compressor=HPOOL)
    with pytest.raises(AnalysisError, match=r"hpool/results.json: compressor 'hpool' .* not patch"):
        plots.patch_strength(RunRecord.from_dir(hpool))
    text = _write_run(tmp_path / "text", _strength(101), model="colcompress.models.colbert.ColBERT")
    with pytest.raises(AnalysisError, match=r"text/results.json: model .*ColBERT' is not"):
        plots.patch_strength(RunRecord.from_dir(text))


def test_cli_writes_the_patch_grid_and_names_a_refused_run(tmp_path: Path, capsys):
    run = _write_run(tmp_path / "none", _strength(101))
    out = tmp_path / "figs" / "grid.png"
    assert main(["patch-grid", str(run), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    agc = _write_run(tmp_path / "agc", _strength(5), method="agc", compressor=AGC)
    assert main(["patch-grid", str(run), str(agc), "--out", str(tmp_path / "no.png")]) == 1
    assert "agc/results.json: compressor 'agc'" in capsys.readouterr().err
    assert not (tmp_path / "no.png").exists()
