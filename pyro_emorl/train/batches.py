"""A reproducible, resumable stream of training batches.

The order of the data is a pure function of ``(seed, step)``: epoch ``e`` visits a permutation
drawn from a generator seeded with ``seed + e`` (``DistributedSampler``'s rule), each rank takes
every ``world_size``-th index of it, and every step consumes exactly one batch (also a step that is
skipped for a non-finite loss). A resumed run therefore continues with the very batch the
interrupted one would have used next, however the DataLoader prefetched.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterator, Sized
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler


class ResumableDistributedSampler(DistributedSampler):
    """A shuffling, ``drop_last`` `DistributedSampler` that can start
    part-way through an epoch.

    Args:
        dataset: the dataset (only its length is used).
        num_replicas: number of ranks.
        rank: this rank.
        seed: permutation seed; epoch ``e`` uses ``seed + e``.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int) -> None:
        super().__init__(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=True,
            seed=seed,
            drop_last=True,
        )
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        """Iterate epoch ``epoch`` from its ``start``-th index (of this rank's share) on."""
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"start must lie in [0, {self.num_samples}], got {start}")
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return self.num_samples - self.start


def batch_images(batch: Any) -> Tensor:
    """The images ``[B, C, H, W]`` of a collated batch: a dict's ``"imgs"``, a tensor, or the first
    element of a tuple (``TensorDataset``)."""
    if isinstance(batch, dict):
        if "imgs" not in batch:
            raise KeyError(f"dataset items need an 'imgs' entry, got keys {sorted(batch)}")
        return batch["imgs"]
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, list | tuple) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    raise TypeError(
        "dataset items must be dicts with 'imgs', tensors, or tuples whose first element is the "
        f"image; got {type(batch).__name__}"
    )


class BatchStream:
    """This rank's batches of images from a given training step on.

    Args:
        dataset: items as accepted by `batch_images`, images ``[C, H, W]`` in ``[0, 1]``.
        batch_size: images per batch on this rank (the global batch divided by the world size).
        rank: this rank.
        world_size: number of ranks.
        seed: data-order seed.
        num_workers: DataLoader worker processes (0 loads in the training process).
        pin_memory: pin batches for faster host-to-GPU copies.

    Raises:
        ValueError: if the dataset cannot fill a single global batch.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.sampler = ResumableDistributedSampler(dataset, world_size, rank, seed)
        self.batch_size = batch_size
        self.batches_per_epoch = self.sampler.num_samples // batch_size
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"the dataset has {len(cast(Sized, dataset))} images, fewer than one global "
                f"batch of "
                f"{batch_size * world_size}; use more data or a smaller batch size"
            )
        self.loader = DataLoader(
            dataset,
            batch_sampler=BatchSampler(self.sampler, batch_size, drop_last=True),
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=num_workers > 0,
            # Its own generator: creating an iterator must not draw from torch's global RNG,
            # or a resumed run (which creates one at a different moment) would diverge.
            generator=torch.Generator().manual_seed(seed),
        )

    def position(self, step: int) -> tuple[int, int]:
        """``(epoch, batch index within the epoch)`` of the batch used by training step ``step``."""
        return divmod(step, self.batches_per_epoch)

    def batches(self, first_step: int) -> Generator[Tensor, None, None]:
        """Endless batches of images ``[B, C, H, W]`` for the steps from ``first_step`` on."""
        first_epoch, batch = self.position(first_step)
        for epoch in itertools.count(first_epoch):
            self.sampler.set_position(epoch, batch * self.batch_size)
            for item in self.loader:
                yield batch_images(item)
            batch = 0
