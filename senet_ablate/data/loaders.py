"""The two loaders a training loop walks, both deterministic given (seed, epoch) and sharded by
``sampling.Batches``: ``TensorLoader`` (a split held on the device, augmented a batch at a time)
and ``StreamLoader`` (image files through a DataLoader with workers, augmented per image). Each
also tells the loop the batch shapes it will meet (``global_size``, ``part_sizes``)."""

from __future__ import annotations

import logging
from functools import partial
from typing import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError
from .augment import BATCH_AUGMENT, crop_flip, cutout
from .files import Seeded, collate_readable
from .sampling import Batches, Parts, draw_seed
from .workers import quiet_worker, worker_pass

log = logging.getLogger("senet_ablate")


class _Batched:
    """What both loaders share: their ``batches`` (``sampling.Batches``) and what they say of them."""

    batches: Batches

    @property
    def batch_size(self) -> int:
        return self.batches.batch_size

    def __len__(self) -> int:
        return len(self.batches)

    def global_size(self, b: int) -> int:
        """Images in global batch ``b`` (every rank's part together)."""
        return self.batches.size(b)

    def part_sizes(self) -> list[int]:
        """This rank's images in the first and the last batch of an epoch."""
        return self.batches.part_sizes()


class TensorLoader(_Batched):
    """A split held as uint8 ``images`` (N, 3, H, W) and int64 ``labels`` on one device."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        train: bool,
        augment: str,
        mean: Sequence[float],
        std: Sequence[float],
        seed: int,
        rank: int = 0,
        world: int = 1,
        pad_mode: str = "zeros",
        cutout: int | None = None,
    ):
        self.images, self.labels, self.train = images, labels, train
        self.batches = Batches(len(labels), batch_size, shuffle=train, seed=seed, rank=rank, world=world)
        op = BATCH_AUGMENT[augment if train else "none"]
        self.augment = partial(op, pad_mode=pad_mode) if op is crop_flip else op
        self.cutout = cutout if train else None
        dev = images.device
        self.mean = torch.tensor(mean, device=dev).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=dev).view(1, -1, 1, 1) * 255

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.batches.set_epoch(epoch, start)

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dev = self.images.device
        g = torch.Generator(device=dev)
        for b, idx, part in self.batches.on(dev):
            g.manual_seed(draw_seed(self.batches.seed, self.batches.epoch, b))
            mine = idx[part]
            x = (self.augment(self.images[mine], g, part, len(idx)).float() - self.mean) / self.std
            yield (cutout(x, g, part, len(idx), self.cutout) if self.cutout else x), self.labels[mine]


class StreamLoader(_Batched):
    """A file-backed split through a DataLoader (workers, pinned memory), sharded and reseeded per
    epoch by ``Batches``. Per-image augmentation runs in the workers, each image from its own seed
    (``Parts`` hands it, ``Seeded`` draws from it), so the crops do not depend on ``data.workers``
    and a mid-epoch resume sees the same crops.

    An image that cannot be decoded stops the job in the main process with an error naming the
    file (``last.pt`` is left as it was, so a relaunch after the fix resumes), or, with
    ``skip_bad_images``, is left out of its batch with one warning and listed in ``skipped``.
    The workers stop when an epoch ends, when the loop is left by an error, and at ``close``."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        train: bool,
        workers: int,
        pin_memory: bool,
        seed: int,
        rank: int = 0,
        world: int = 1,
        skip_bad_images: bool = False,
    ):
        self.batches = Batches(len(dataset), batch_size, shuffle=train, seed=seed, rank=rank, world=world)
        self.generator = torch.Generator()
        self.skip_bad_images, self.skipped, self._current = skip_bad_images, [], None
        self.loader = DataLoader(
            Seeded(dataset),
            batch_sampler=Parts(self.batches),
            num_workers=workers,
            pin_memory=pin_memory,
            generator=self.generator,
            worker_init_fn=quiet_worker,
            persistent_workers=False,
            collate_fn=collate_readable,
        )

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.batches.set_epoch(epoch, start)
        self.generator.manual_seed(draw_seed(self.batches.seed, epoch, start))

    @property
    def num_samples(self) -> int:
        return len(self.loader.dataset)

    def __iter__(self):
        self.close()
        self._current = self._batches()
        return self._current

    def _batches(self):
        with worker_pass(self.loader) as it:
            for b, (x, y, bad) in enumerate(it, start=self.batches.start):
                for path, reason in bad:
                    self._unreadable(path, reason, b)
                if x is None:
                    raise ConfigError(
                        f"every image of batch {b + 1} (epoch {self.batches.epoch + 1}) is "
                        f"unreadable, e.g. {bad[0][0]}: is data.root the right tree?"
                    )
                yield x, y

    def _unreadable(self, path: str, reason: str, b: int) -> None:
        """Fail naming the file, or (``skip_bad_images``) list it and warn once."""
        if not self.skip_bad_images:
            raise ConfigError(
                f"{reason} (epoch {self.batches.epoch + 1}, batch {b + 1}). "
                "Fix or remove the file and relaunch: the run resumes from its last.pt. Or set "
                "data.skip_bad_images=true to leave unreadable images out."
            )
        if path not in self.skipped:
            self.skipped.append(path)
            log.warning("skipping an unreadable image (data.skip_bad_images=true): %s", reason)

    def close(self) -> None:
        """Stop the workers of an unfinished pass (the generator's ``with`` block does it)."""
        if self._current is not None:
            self._current.close()
            self._current = None
