"""A run resumed mid-epoch ends with exactly the weights of an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.integration.helpers import colcompress

# backbone dropout on: the resumed run must also draw the same dropout masks
COMMON = (
    "debug=default",
    "model.dropout=0.1",
    "trainer.max_steps=4",
    "evaluate=false",
    "logger=none",
)


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_mid_epoch_resume_reproduces_the_uninterrupted_weights(tmp_path: Path):
    """Resume from step 2 of a 4-step run (an epoch is far longer than 4 batches)."""
    colcompress(tmp_path / "whole", *COMMON)
    checkpoints = {p.name: p for p in (tmp_path / "whole" / "logs").rglob("*.ckpt")}
    whole = _state(checkpoints["last.ckpt"])
    at_two = _state(checkpoints["step2.ckpt"])
    assert at_two["global_step"] == 2 and at_two["epoch"] == 0  # mid-epoch
    assert at_two["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["position"] == 8
    colcompress(tmp_path / "resumed", *COMMON, f"ckpt_path={checkpoints['step2.ckpt']}")
    (last,) = (tmp_path / "resumed" / "logs").rglob("last.ckpt")
    resumed = _state(last)
    assert resumed["global_step"] == whole["global_step"] == 4
    assert resumed["state_dict"].keys() == whole["state_dict"].keys()
    differing = [
        name
        for name, value in whole["state_dict"].items()
        if not torch.equal(value, resumed["state_dict"][name])
    ]
    assert differing == []
    # and training did move the weights between step 2 and step 4
    assert any(
        not torch.equal(value, at_two["state_dict"][name])
        for name, value in whole["state_dict"].items()
    )
