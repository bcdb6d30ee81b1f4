"""Which images make each batch: the seeds of an epoch, the global batches of an epoch (shuffled
by (seed, epoch) for training, in file order for evaluation), each rank's contiguous part of a
global batch (DDP), and the DataLoader batch sampler that hands a streamed image its own seed."""

from __future__ import annotations

import math
from typing import Iterator

import torch


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def draw_seed(seed: int, epoch: int, k: int) -> int:
    """The seed of draw ``k`` of an epoch: batch ``k`` of an in-memory epoch, image ``k`` of a
    streamed one (and a streamed epoch's DataLoader generator, from its first batch ``k``)."""
    return epoch_seed(seed, epoch) * 100_003 + k


def shard(n: int, rank: int, world: int) -> slice:
    """The contiguous part of ``n`` items that ``rank`` of ``world`` holds (sizes differ by at most 1)."""
    q, r = divmod(n, world)
    lo = rank * q + min(rank, r)
    return slice(lo, lo + q + (rank < r))


class Batches:
    """Global batches of one epoch, and this rank's part of each (DDP sharding).

    Training order is a permutation seeded by (seed, epoch); evaluation keeps the file order.
    ``start`` skips the first batches of the epoch (resuming mid-epoch after preemption).
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world, self.epoch, self.start = rank, world, 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        nb = math.ceil(self.n / self.batch_size)
        # a training tail smaller than the world would leave a rank without images: fold it into
        # the batch before (DDP needs every rank to take every step)
        return nb - 1 if self.shuffle and nb > 1 and 0 < self.n % self.batch_size < self.world else nb

    def bounds(self, b: int) -> tuple[int, int]:
        lo = b * self.batch_size
        return lo, (self.n if b == len(self) - 1 else lo + self.batch_size)

    def size(self, b: int) -> int:
        """Images in global batch ``b``."""
        lo, hi = self.bounds(b)
        return hi - lo

    def part_sizes(self) -> list[int]:
        """This rank's images in the first and the last batch of an epoch: the shapes a compiled model meets."""
        sizes = []
        for b in (0, len(self) - 1):
            part = shard(self.size(b), self.rank, self.world)
            sizes.append(part.stop - part.start)
        return sizes

    def order(self, device: torch.device | None = None) -> torch.Tensor:
        """This epoch's order of the ``n`` items (drawn from the seed and the epoch), on ``device``."""
        if not self.shuffle:
            return torch.arange(self.n, device=device)
        g = torch.Generator(device=device or "cpu").manual_seed(epoch_seed(self.seed, self.epoch))
        return torch.randperm(self.n, generator=g, device=device)

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor, slice]]:
        return self.on(None)

    def on(self, device: torch.device | None) -> Iterator[tuple[int, torch.Tensor, slice]]:
        """(batch index, global batch indices on ``device``, this rank's part of them). The epoch's
        order is drawn on the CPU (the same on every device) and copied once: a copy per batch
        would make the host wait for the GPU at every step."""
        order = self.order() if device is None else self.order().to(device)
        for b in range(self.start, len(self)):
            idx = order[slice(*self.bounds(b))]
            yield b, idx, shard(len(idx), self.rank, self.world)


class Parts:
    """A DataLoader batch sampler: this rank's indices of each global batch, each paired with
    its image's seed (its position in the epoch), for ``files.Seeded``."""

    def __init__(self, batches: Batches):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches) - self.batches.start

    def __iter__(self):
        first = draw_seed(self.batches.seed, self.batches.epoch, 0)
        for b, idx, part in self.batches:
            lo = self.batches.bounds(b)[0] + part.start  # this image's position in the epoch
            yield [(i, first + lo + k) for k, i in enumerate(idx[part].tolist())]
