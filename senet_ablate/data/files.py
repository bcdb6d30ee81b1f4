"""Image files read one at a time: the suffixes we accept, decoding to RGB, and the datasets a
DataLoader draws from. A file that does not decode comes back as ``Unreadable`` (never raised
in a worker), so that the main process can name it or leave it out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from torch.utils.data import Dataset, default_collate

from ..errors import ConfigError

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def read_rgb(path: str) -> Image.Image:
    """One image file as an RGB PIL image; a file that is no image fails naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise ConfigError(f"cannot decode image {path}: {e}") from None


@dataclass(frozen=True)
class Unreadable:
    """What a worker returns for an image file it cannot decode (the batch goes on without it)."""

    path: str
    reason: str  # "cannot decode image <path>: <why>"


def collate_readable(items: list) -> tuple:
    """Collate the decodable images of a batch; the unreadable ones come back as (path, reason)."""
    good = [it for it in items if not isinstance(it, Unreadable)]
    bad = [(it.path, it.reason) for it in items if isinstance(it, Unreadable)]
    x, y = default_collate(good) if good else (None, None)
    return x, y, bad


class FileDataset(Dataset):
    """(path, label) samples read with ``read_rgb`` and passed through ``transform``."""

    def __init__(self, samples: list[tuple[str, int]], transform: Callable[[Image.Image], object]):
        self.samples, self.transform = samples, transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        try:
            image = read_rgb(path)
        except ConfigError as e:  # reported by the main process (StreamLoader), never raised in a worker
            return Unreadable(path, str(e))
        return self.transform(image), label


class Seeded(Dataset):
    """``seeded[(i, seed)]``: item ``i`` of ``dataset`` with its random transform drawn from
    ``seed``, in whichever process loads it, leaving that process's global generator as it was."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        i, seed = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[i]
