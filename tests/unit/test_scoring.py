"""MaxSim against a Python double loop, and masked padding never winning."""

from __future__ import annotations

import pytest
import torch

from colcompress.models.scoring import maxsim, maxsim_pairwise


def _loop(q, qm, d, dm, relu=False):
    out = torch.zeros(q.shape[0], d.shape[0], dtype=torch.float64)
    for a in range(q.shape[0]):
        for b in range(d.shape[0]):
            total = 0.0
            for i in range(q.shape[1]):
                if not qm[a, i]:
                    continue
                best = None
                for j in range(d.shape[1]):
                    if not dm[b, j]:
                        continue
                    s = float(q[a, i] @ d[b, j])
                    s = max(s, 0.0) if relu else s
                    best = s if best is None else max(best, s)
                total += best if best is not None else 0.0
            out[a, b] = total
    return out


def _random(seed=0, bq=3, lq=5, bd=4, ld=7, dim=8):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(bq, lq, dim, generator=g, dtype=torch.float64)
    d = torch.randn(bd, ld, dim, generator=g, dtype=torch.float64)
    qm = torch.rand(bq, lq, generator=g) > 0.3
    dm = torch.rand(bd, ld, generator=g) > 0.3
    qm[:, 0] = True
    dm[:, 0] = True
    return q, qm, d, dm


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_maxsim_equals_double_loop(seed, relu):
    q, qm, d, dm = _random(seed)
    torch.testing.assert_close(maxsim(q, qm, d, dm, relu=relu), _loop(q, qm, d, dm, relu))


def test_pairwise_is_diagonal_of_all_pairs():
    q, qm, d, dm = _random(3, bq=4, bd=4)
    torch.testing.assert_close(maxsim_pairwise(q, qm, d, dm), maxsim(q, qm, d, dm).diagonal())


def test_masked_padding_never_wins():
    """A masked row that would dominate every query token changes nothing."""
    q, qm, d, dm = _random(4)
    reference = maxsim(q, qm, d, dm)
    d2 = torch.cat([d, 100 * q[:1, :1].expand(d.shape[0], 1, -1)], dim=1)
    dm2 = torch.cat([dm, torch.zeros(d.shape[0], 1, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(maxsim(q, qm, d2, dm2), reference)


def test_document_without_vectors_scores_zero():
    q, qm, d, dm = _random(5)
    dm[1] = False
    assert torch.all(maxsim(q, qm, d, dm)[:, 1] == 0)
