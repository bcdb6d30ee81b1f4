"""Datasets and batch augmentation (``data=``).

Small-image datasets (digits, CIFAR, a small ImageFolder tree, synthetic) are held whole in
memory, on the training device, as uint8 tensors; a batch is augmented with tensor ops
(pad-4 random crop + flip), never a per-image Python transform. Large ImageFolder data (the
ImageNet layout) streams through a DataLoader with workers and pinned memory, with the paper's
augmentation (random-resized crop + flip; eval: resize to 256/224 of the size, centre crop).

Every loader is deterministic given (seed, epoch): ``set_epoch`` reseeds its generator, so a
resumed run sees exactly the batches an uninterrupted one would, also from the middle of an
epoch. Under DDP every rank walks the same global batches and takes its own contiguous part of
each, so 2 ranks × 32 images see what one process sees with batch 64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from .errors import ConfigError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
EVAL_SPLITS = ("val", "test")


# ---------------------------------------------------------------------------- augmentation
# A batch op draws its random numbers for the whole *global* batch (``total`` images) and applies
# the ``part`` of them that this process holds, so that a DDP rank augments its images exactly as
# a single process would.
def crop_flip(x: torch.Tensor, g: torch.Generator, part: slice, total: int, pad: int = 4) -> torch.Tensor:
    """He et al.'s CIFAR augmentation on a whole uint8 batch: zero-pad, random crop, random flip."""
    b, c, h, w = x.shape
    dev = x.device
    xp = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (total,), generator=g, device=dev)[part]
    dx = torch.randint(0, 2 * pad + 1, (total,), generator=g, device=dev)[part]
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    out = xp[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
             rows, cols]
    flip = (torch.rand(total, generator=g, device=dev) < 0.5)[part]
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def flip_only(x: torch.Tensor, g: torch.Generator, part: slice, total: int) -> torch.Tensor:
    flip = (torch.rand(total, generator=g, device=x.device) < 0.5)[part]
    return torch.where(flip[:, None, None, None], x.flip(3), x)


# augmentation name -> batch op for in-memory data ("imagenet" is per image, in the DataLoader path)
BATCH_AUGMENT: dict[str, Callable] = {"none": lambda x, g, part, total: x, "flip": flip_only, "cifar": crop_flip}
AUGMENTS = (*BATCH_AUGMENT, "imagenet")


# ---------------------------------------------------------------------------- loaders
def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


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

    def order(self, device=None) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n, device=device)
        g = torch.Generator(device=device or "cpu").manual_seed(_epoch_seed(self.seed, self.epoch))
        return torch.randperm(self.n, generator=g, device=device)

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor, slice]]:
        """(batch index, global batch indices, this rank's part of them)."""
        order = self.order()
        for b in range(self.start, len(self)):
            idx = order[slice(*self.bounds(b))]
            yield b, idx, shard(len(idx), self.rank, self.world)


class TensorLoader:
    """A split held as uint8 ``images`` (N, 3, H, W) and int64 ``labels`` on one device."""

    def __init__(self, images, labels, batch_size, *, train, augment, mean, std, seed, rank=0, world=1):
        self.images, self.labels, self.train = images, labels, train
        self.batches = Batches(len(labels), batch_size, shuffle=train, seed=seed, rank=rank, world=world)
        self.augment = BATCH_AUGMENT[augment] if train else BATCH_AUGMENT["none"]
        dev = images.device
        self.mean = torch.tensor(mean, device=dev).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=dev).view(1, -1, 1, 1) * 255

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.batches.set_epoch(epoch, start)

    @property
    def batch_size(self) -> int:
        return self.batches.batch_size

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dev = self.images.device
        g = torch.Generator(device=dev)
        for b, idx, part in self.batches:
            g.manual_seed(_epoch_seed(self.batches.seed, self.batches.epoch) * 100_003 + b)
            mine = idx[part].to(dev)
            x = self.augment(self.images[mine], g, part, len(idx))
            yield (x.float() - self.mean) / self.std, self.labels[mine]


def _quiet_worker(_: int) -> None:
    """DataLoader workers leave preemption signals to the main process, which stops them."""
    import signal

    from .launch import PREEMPT_SIGNALS

    for name in PREEMPT_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


class StreamLoader:
    """A file-backed split through a DataLoader (workers, pinned memory), sharded and reseeded per
    epoch by ``Batches``. Per-image augmentation runs in the workers, so a mid-epoch resume sees
    the same images but not bit-identical crops."""

    def __init__(self, dataset, batch_size, *, train, workers, pin_memory, seed, rank=0, world=1):
        from torch.utils.data import DataLoader

        self.batches = Batches(len(dataset), batch_size, shuffle=train, seed=seed, rank=rank, world=world)
        self.generator = torch.Generator()
        self.loader = DataLoader(dataset, batch_sampler=_Parts(self.batches), num_workers=workers,
                                 pin_memory=pin_memory, generator=self.generator, worker_init_fn=_quiet_worker,
                                 persistent_workers=False)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.batches.set_epoch(epoch, start)
        self.generator.manual_seed(_epoch_seed(self.batches.seed, epoch) * 100_003 + start)

    @property
    def batch_size(self) -> int:
        return self.batches.batch_size

    @property
    def num_samples(self) -> int:
        return len(self.loader.dataset)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.loader)


class _Parts:
    """A DataLoader batch sampler: this rank's indices of each global batch."""

    def __init__(self, batches: Batches):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches) - self.batches.start

    def __iter__(self):
        for _, idx, part in self.batches:
            yield idx[part].tolist()


@dataclass
class Data:
    train: TensorLoader | StreamLoader
    eval: TensorLoader | StreamLoader
    num_classes: int
    image_size: int
    eval_split: str


# ---------------------------------------------------------------------------- sources
def _root(cfg) -> Path | None:
    from omegaconf import OmegaConf

    missing = OmegaConf.is_missing(cfg, "root") if "root" in cfg else True
    return None if missing or not cfg.root else Path(str(cfg.root)).expanduser()


def _need_root(cfg) -> Path:
    root = _root(cfg)
    if root is None:
        raise ConfigError(f"data.root is not set: data={cfg.name} needs data.root=/path/to/the/data")
    if not root.is_dir():
        raise ConfigError(f"data.root={str(root)!r} does not exist or is not a directory (data={cfg.name})")
    return root


def _to_chw_uint8(array) -> torch.Tensor:
    t = torch.as_tensor(array)
    if t.ndim == 3:  # N, H, W grey
        t = t[:, None].expand(-1, 3, -1, -1)
    elif t.shape[-1] == 3:  # N, H, W, C
        t = t.permute(0, 3, 1, 2)
    return t.contiguous().to(torch.uint8)


def load_digits_split(cfg):
    """scikit-learn's bundled 8x8 digits (1,797 images), a fixed stratified 75/25 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = (torch.as_tensor(d.images) * (255 / 16)).round()
    labels = torch.as_tensor(d.target, dtype=torch.int64)
    tr, te = train_test_split(range(len(labels)), test_size=0.25, stratify=d.target, random_state=0)
    grey = _to_chw_uint8(images)
    return (grey[tr], labels[tr]), (grey[te], labels[te]), "test"


def load_torchvision_cifar(cfg):
    """torchvision's CIFAR-10/100 under data.root; downloads when data.download is true."""
    import torchvision

    cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[cfg.name]
    root = _root(cfg)
    if root is None:
        raise ConfigError(f"data.root is not set: data={cfg.name} needs data.root=/path/for/{cfg.name}")
    splits = []
    for train in (True, False):
        try:
            ds = cls(str(root), train=train, download=bool(cfg.download))
        except RuntimeError as e:  # not found and download=false, or a damaged archive
            raise ConfigError(
                f"{cfg.name} not found under data.root={str(root)!r} ({e}). Set data.download=true to fetch it, "
                f"or place torchvision's python-version archive contents there.") from None
        except OSError as e:  # offline, DNS failure, refused connection...
            raise ConfigError(
                f"could not download {cfg.name} to {str(root)!r}: {e}. Without internet, fetch the "
                f"python-version archive on another machine and unpack it into data.root (torchvision layout), "
                f"or point data=imagefolder (e.g. data=cifar10_jpeg) at a class-folder copy.") from None
        splits.append((_to_chw_uint8(ds.data), torch.as_tensor(ds.targets, dtype=torch.int64)))
    return splits[0], splits[1], "test"


def scan_imagefolder(cfg) -> tuple[list[str], dict[str, list[tuple[str, int]]], str]:
    """Check and list ``root/train/<class>/*`` and ``root/val|test/<class>/*``; fail on anything odd."""
    root = _need_root(cfg)
    train = root / "train"
    eval_split = next((s for s in EVAL_SPLITS if (root / s).is_dir()), None)
    if not train.is_dir() or eval_split is None:
        raise ConfigError(f"data.root={str(root)!r} must hold train/ and val/ (or test/) class folders")
    classes = sorted(p.name for p in train.iterdir() if p.is_dir())
    if not classes:
        raise ConfigError(f"no class folders under {train}")
    eval_classes = sorted(p.name for p in (root / eval_split).iterdir() if p.is_dir())
    if eval_classes != classes:
        raise ConfigError(f"class folders differ between train/ ({len(classes)}) and {eval_split}/ "
                          f"({len(eval_classes)}) under {root}")
    if cfg.get("num_classes") is not None and cfg.num_classes != len(classes):
        raise ConfigError(f"data.num_classes={cfg.num_classes} but {train} has {len(classes)} class folders")
    samples = {}
    for split in ("train", eval_split):
        items = []
        for i, c in enumerate(classes):
            for f in sorted((root / split / c).iterdir()):
                if f.name.startswith("."):
                    continue
                if f.suffix.lower() not in IMAGE_SUFFIXES:
                    raise ConfigError(f"not an image file in the ImageFolder tree: {f} "
                                      f"(expected {', '.join(IMAGE_SUFFIXES)}); move it out of data.root")
                items.append((str(f), i))
        if not items:
            raise ConfigError(f"no images under {root / split}")
        samples[split] = items
    return classes, samples, eval_split


def read_rgb(path: str):
    """One image file as an RGB PIL image; a file that is no image fails naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise ConfigError(f"cannot decode image {path}: {e}") from None


def _decode(path: str, size: int) -> torch.Tensor:
    import numpy as np

    img = torch.from_numpy(np.array(read_rgb(path))).permute(2, 0, 1)
    if img.shape[-2:] != (size, size):
        img = F.interpolate(img[None].float(), size=(size, size), mode="bilinear", antialias=True,
                            align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
    return img


def load_imagefolder_in_memory(cfg):
    """Decode a small class-folder tree once into uint8 tensors (e.g. the CIFAR-10 JPEG tree)."""
    _, samples, eval_split = scan_imagefolder(cfg)
    out = []
    for split in ("train", eval_split):
        paths, labels = zip(*samples[split])
        out.append((torch.stack([_decode(p, cfg.image_size) for p in paths]), torch.tensor(labels)))
    return out[0], out[1], eval_split


def load_synthetic(cfg):
    """Random images and labels, for speed benchmarks only."""
    g = torch.Generator().manual_seed(12345)
    s, k = cfg.image_size, cfg.num_classes
    make = lambda n: (torch.randint(0, 256, (n, 3, s, s), generator=g, dtype=torch.uint8),  # noqa: E731
                      torch.randint(0, k, (n,), generator=g))
    return make(cfg.train_size), make(cfg.eval_size), "test"


IN_MEMORY_SOURCES = {
    "digits": load_digits_split,
    "cifar10": load_torchvision_cifar,
    "cifar100": load_torchvision_cifar,
    "imagefolder": load_imagefolder_in_memory,
    "synthetic": load_synthetic,
}


class FileDataset(torch.utils.data.Dataset):
    def __init__(self, samples, transform):
        self.samples, self.transform = samples, transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        return self.transform(read_rgb(path)), label


def _imagenet_transforms(cfg, train: bool):
    from torchvision.transforms import v2

    size = cfg.image_size
    head = ([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()] if train else
            [v2.Resize(round(size * 256 / 224), antialias=True), v2.CenterCrop(size)])
    return v2.Compose([v2.ToImage(), *head, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(cfg.mean), list(cfg.std))])


# ---------------------------------------------------------------------------- entry
def check(cfg) -> None:
    """Config-level checks that need no data."""
    from .launch import data_workers

    data_workers(cfg.get("workers", 0))
    if cfg.name not in IN_MEMORY_SOURCES:
        raise ConfigError(f"data.name={cfg.name!r} is not a dataset; valid values: {', '.join(IN_MEMORY_SOURCES)}")
    if cfg.augment not in AUGMENTS:
        raise ConfigError(f"data.augment={cfg.augment!r} is not valid; valid values: {', '.join(AUGMENTS)}")
    if cfg.in_memory and cfg.augment == "imagenet":
        raise ConfigError("data.augment=imagenet runs per image: use it with data.in_memory=false")
    if not cfg.in_memory and cfg.name != "imagefolder":
        raise ConfigError(f"data.in_memory=false is only for data=imagefolder; {cfg.name} is always in memory")
    if not cfg.in_memory and cfg.augment != "imagenet":
        raise ConfigError("a streamed ImageFolder (data.in_memory=false) uses data.augment=imagenet; "
                          "for small images set data.in_memory=true")


def build(cfg, batch_size: int, eval_batch_size: int, device: torch.device, seed: int,
          rank: int = 0, world: int = 1) -> Data:
    """Load (and validate) the data named by the ``data:`` node; with ``world`` > 1 each loader
    yields this rank's part of every global batch."""
    check(cfg)
    if cfg.in_memory:
        (xtr, ytr), (xte, yte), eval_split = IN_MEMORY_SOURCES[cfg.name](cfg)
        num_classes = int(cfg.num_classes) if cfg.get("num_classes") is not None else int(ytr.max()) + 1
        if int(max(ytr.max(), yte.max())) >= num_classes:
            raise ConfigError(f"data.num_classes={num_classes} but the labels go up to {int(max(ytr.max(), yte.max()))}")
        common = dict(augment=cfg.augment, mean=list(cfg.mean), std=list(cfg.std), seed=seed, rank=rank, world=world)
        train = TensorLoader(xtr.to(device), ytr.to(device), batch_size, train=True, **common)
        evaluate = TensorLoader(xte.to(device), yte.to(device), eval_batch_size, train=False, **common)
        return Data(train, evaluate, num_classes, int(xtr.shape[-1]), eval_split)
    classes, samples, eval_split = scan_imagefolder(cfg)
    pin = device.type == "cuda"
    from .launch import data_workers

    workers = data_workers(cfg.workers)
    train = StreamLoader(FileDataset(samples["train"], _imagenet_transforms(cfg, True)), batch_size, train=True,
                         workers=workers, pin_memory=pin, seed=seed, rank=rank, world=world)
    evaluate = StreamLoader(FileDataset(samples[eval_split], _imagenet_transforms(cfg, False)), eval_batch_size,
                            train=False, workers=workers, pin_memory=pin, seed=seed, rank=rank,
                            world=world)
    return Data(train, evaluate, len(classes), cfg.image_size, eval_split)
