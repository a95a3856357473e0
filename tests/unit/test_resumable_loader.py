"""The training loader's state: where an epoch stopped, and refusal of another setup."""

from __future__ import annotations

import pytest

from colcompress.data.datamodule import EpochShuffleSampler, ResumableDataLoader


class _Indexable(list):
    def __getitem__(self, index):  # the sampler yields (index, epoch)
        return super().__getitem__(index[0])


def _loader(length: int = 10, seed: int = 3, batch_size: int = 3) -> ResumableDataLoader:
    return ResumableDataLoader(
        _Indexable(range(length)),
        sampler=EpochShuffleSampler(length, seed),
        batch_size=batch_size,
        collate_fn=lambda batch: batch,
    )


def _run_epoch(loader: ResumableDataLoader, batches: int | None = None) -> list[list[int]]:
    """Draw batches as Lightning does: counted as taken once each is trained on."""
    out = []
    for batch in loader:
        out.append(batch)
        loader.batch_taken()
        if batches is not None and len(out) == batches:
            break
    return out


def test_resumed_loader_continues_the_same_permutation():
    whole = _loader()
    whole.sampler.set_epoch(1)
    uninterrupted = _run_epoch(whole)
    first = _loader()
    first.sampler.set_epoch(1)
    head = _run_epoch(first, batches=2)
    state = first.state_dict()
    assert state == {
        "epoch": 1,
        "position": 6,
        "length": 10,
        "seed": 3,
        "num_replicas": 1,
        "batch_size": 3,
    }
    second = _loader()
    second.load_state_dict(state)
    second.sampler.set_epoch(1)  # Lightning sets the epoch it resumes in
    tail = _run_epoch(second)
    assert head + tail == uninterrupted
    assert second.state_dict()["position"] == 12  # the whole epoch (4 batches)
    second.sampler.set_epoch(2)
    assert len(_run_epoch(second)) == 4  # the next epoch starts from its beginning


def test_a_state_at_the_end_of_an_epoch_resumes_at_the_next():
    loader = _loader()
    loader.load_state_dict({**loader.state_dict(), "epoch": 0, "position": 12})
    assert (loader.sampler.epoch, loader.sampler.start) == (1, 0)


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"seed": 4}, "seed 4 in the checkpoint, 3 now"),
        ({"length": 11}, "length 11 in the checkpoint, 10 now"),
        ({"batch_size": 2}, "batch_size 2 in the checkpoint, 3 now"),
        ({"num_replicas": 2}, "num_replicas 2 in the checkpoint, 1 now"),
    ],
)
def test_another_sampling_setup_is_refused(changed: dict, message: str):
    loader = _loader()
    with pytest.raises(ValueError, match=rf"cannot resume the training data.*{message}"):
        loader.load_state_dict({**loader.state_dict(), **changed})
