"""The data order: a function of (seed, step), resumable mid-epoch, disjoint across ranks."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import TensorDataset

from pyro_emorl.train.batches import BatchStream, batch_images


def _indexed(n: int) -> TensorDataset:
    """Image i is filled with the value i, so a batch reveals the indices it holds."""
    return TensorDataset(torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 2, 2))


def _indices(stream: BatchStream, first_step: int, count: int) -> list[list[int]]:
    batches = itertools.islice(stream.batches(first_step), count)
    return [b[:, 0, 0, 0].long().tolist() for b in batches]


def test_order_depends_on_the_step_only_and_resumes_mid_epoch() -> None:
    data = _indexed(10)  # 3 batches of 3 per epoch, one image dropped
    stream = BatchStream(data, batch_size=3, seed=5)
    assert stream.batches_per_epoch == 3
    full = _indices(stream, 0, 8)
    for start in (1, 3, 4, 7):
        assert _indices(BatchStream(data, batch_size=3, seed=5), start, 8 - start) == full[start:]
    for epoch in range(2):  # each epoch is a permutation without repeats
        seen = sum(full[3 * epoch : 3 * epoch + 3], [])
        assert len(set(seen)) == 9
    assert full[:3] != full[3:6]  # a new order every epoch
    assert _indices(BatchStream(data, batch_size=3, seed=6), 0, 3) != full[:3]


def test_ranks_share_an_epoch_without_overlap() -> None:
    data = _indexed(16)
    ranks = [BatchStream(data, batch_size=2, rank=r, world_size=2, seed=0) for r in range(2)]
    assert [s.batches_per_epoch for s in ranks] == [4, 4]
    per_rank = [sum(_indices(s, 0, 4), []) for s in ranks]
    assert not set(per_rank[0]) & set(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == list(range(16))


def test_workers_keep_the_order() -> None:
    data = _indexed(12)
    with_workers = BatchStream(data, batch_size=2, seed=1, num_workers=2)
    assert _indices(with_workers, 2, 6) == _indices(BatchStream(data, batch_size=2, seed=1), 2, 6)


def test_iteration_leaves_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    _indices(BatchStream(_indexed(8), batch_size=2), 1, 6)
    assert torch.equal(torch.get_rng_state(), state)


def test_too_little_data_is_an_error() -> None:
    with pytest.raises(ValueError, match="fewer than one global batch"):
        BatchStream(_indexed(5), batch_size=4, world_size=2)


def test_batch_images_accepts_dicts_tensors_and_tuples() -> None:
    x = torch.zeros(2, 3, 4, 4)
    assert batch_images({"imgs": x}) is x
    assert batch_images(x) is x
    assert batch_images((x, torch.zeros(2))) is x
    with pytest.raises(KeyError, match="'imgs'"):
        batch_images({"images": x})
    with pytest.raises(TypeError):
        batch_images("x")
