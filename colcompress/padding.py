"""Variable-length vector sets as one zero-padded, masked batch (compressors, indexes,
utilization all pad the same way)."""

from __future__ import annotations

import torch
from torch import Tensor


def pad_stack(tensors: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Stack variable-length vector sets into one zero-padded batch with a mask.

    Parameters
    ----------
    tensors : list of Tensor[n_i, D]
        At least one tensor, all on one device.

    Returns
    -------
    padded : Tensor[B, max n_i, D]
        Padding rows are zero.
    mask : Tensor[B, max n_i]
        True for real rows.
    """
    lengths = torch.tensor([t.shape[0] for t in tensors])
    padded = torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True)
    mask = torch.arange(padded.shape[1])[None, :] < lengths[:, None]
    return padded, mask.to(padded.device)
