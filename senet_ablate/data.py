"""Datasets and batch augmentation (``data=``).

Small-image datasets (digits, CIFAR, a small ImageFolder tree, synthetic) are held whole in
memory, on the training device, as uint8 tensors; a batch is augmented with tensor ops
(pad-4 random crop + flip), never a per-image Python transform. Large ImageFolder data (the
ImageNet layout) streams through a DataLoader with workers and pinned memory, with the paper's
augmentation (random-resized crop + flip; eval: resize to 256/224 of the size, centre crop).

Every loader is deterministic given (seed, epoch): ``set_epoch`` reseeds its generator, so a
resumed run sees exactly the batches an uninterrupted one would, also from the middle of an
epoch. A streamed image is augmented from a seed of its own (seed, epoch, position in the epoch),
so its crop does not depend on the worker count or on which process draws it; nothing here draws
from torch's global generator, so loading data (a cache hit or a miss) never moves the model's
initialisation. Under DDP every rank walks the same global batches and takes its own contiguous part of
each, so 2 ranks × 32 images see what one process sees with batch 64.
"""
from __future__ import annotations

import atexit
import logging
import math
import os
import weakref
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from .errors import ConfigError

log = logging.getLogger("senet_ablate")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
EVAL_SPLITS = ("val", "test")


# ---------------------------------------------------------------------------- augmentation
# A batch op draws its random numbers for the whole *global* batch (``total`` images) and applies
# the ``part`` of them that this process holds, so that a DDP rank augments its images exactly as
# a single process would.
PAD_MODES = ("zeros", "reflect")  # the SE paper's zero padding | WRN's code reflects


def _pad(x: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    if mode == "zeros":
        return F.pad(x, (pad, pad, pad, pad))

    def reflected(n: int) -> torch.Tensor:  # indices -pad..n+pad-1 mirrored into 0..n-1 (edge not repeated)
        i = torch.arange(-pad, n + pad, device=x.device).abs()
        return torch.where(i >= n, 2 * (n - 1) - i, i)

    return x[:, :, reflected(x.shape[2])][:, :, :, reflected(x.shape[3])]  # index, not F.pad: uint8 works


def crop_flip(x: torch.Tensor, g: torch.Generator, part: slice, total: int, pad: int = 4,
              pad_mode: str = "zeros") -> torch.Tensor:
    """He et al.'s CIFAR augmentation on a whole uint8 batch: pad (``pad_mode``), random crop, random flip."""
    b, c, h, w = x.shape
    dev = x.device
    xp = _pad(x, pad, pad_mode)
    dy = torch.randint(0, 2 * pad + 1, (total,), generator=g, device=dev)[part]
    dx = torch.randint(0, 2 * pad + 1, (total,), generator=g, device=dev)[part]
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    out = xp[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
             rows, cols]
    flip = (torch.rand(total, generator=g, device=dev) < 0.5)[part]
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def cutout(x: torch.Tensor, g: torch.Generator, part: slice, total: int, size: int) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017; Tables 4/5's Shake nets): one ``size`` x ``size`` square per
    image set to 0, its centre uniform over the image, clipped at the border. Applied after the
    normalisation, as the original, so the square holds the mean."""
    b, _, h, w = x.shape
    dev = x.device
    top = torch.randint(0, h, (total,), generator=g, device=dev)[part] - size // 2
    left = torch.randint(0, w, (total,), generator=g, device=dev)[part] - size // 2
    rows, cols = torch.arange(h, device=dev), torch.arange(w, device=dev)
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size)
    return x.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0.0)


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
        return self.on(None)

    def on(self, device) -> Iterator[tuple[int, torch.Tensor, slice]]:
        """(batch index, global batch indices on ``device``, this rank's part of them). The epoch's
        order is drawn on the CPU (the same on every device) and copied once: a copy per batch
        would make the host wait for the GPU at every step."""
        order = self.order() if device is None else self.order().to(device)
        for b in range(self.start, len(self)):
            idx = order[slice(*self.bounds(b))]
            yield b, idx, shard(len(idx), self.rank, self.world)


class TensorLoader:
    """A split held as uint8 ``images`` (N, 3, H, W) and int64 ``labels`` on one device."""

    def __init__(self, images, labels, batch_size, *, train, augment, mean, std, seed, rank=0, world=1,
                 pad_mode="zeros", cutout=None):
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
        for b, idx, part in self.batches.on(dev):
            g.manual_seed(_epoch_seed(self.batches.seed, self.batches.epoch) * 100_003 + b)
            mine = idx[part]
            x = (self.augment(self.images[mine], g, part, len(idx)).float() - self.mean) / self.std
            yield (cutout(x, g, part, len(idx), self.cutout) if self.cutout else x), self.labels[mine]


def _quiet_worker(_: int) -> None:
    """DataLoader workers leave preemption signals and Ctrl-C to the main process (SLURM signals
    every process of a job, a terminal's Ctrl-C the whole process group; a worker killed by it
    would fail the job instead of letting it checkpoint). Hence they ignore SIGTERM and SIGINT
    too, and are stopped by ``stop_workers``, never by a signal alone."""
    import signal

    from .launch import PREEMPT_SIGNALS

    for name in (*PREEMPT_SIGNALS, "SIGINT"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


_LIVE_ITERATORS: "weakref.WeakSet" = weakref.WeakSet()  # DataLoader iterators whose workers may run


def stop_workers(it) -> None:
    """Shut a DataLoader iterator's workers down now: the loader's own shutdown, then SIGKILL for
    any worker still alive (ours ignore SIGTERM, which is all that shutdown and multiprocessing's
    exit handler send: without this, a failed job's workers kept its process from exiting)."""
    shutdown = getattr(it, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
    for w in getattr(it, "_workers", ()):
        if w.is_alive():
            w.kill()
            w.join()
    _LIVE_ITERATORS.discard(it)


@atexit.register  # runs before multiprocessing's exit handler, which would wait for the workers
def _stop_all_workers() -> None:
    for it in list(_LIVE_ITERATORS):
        stop_workers(it)


@dataclass(frozen=True)
class Unreadable:
    """What a worker returns for an image file it cannot decode (the batch goes on without it)."""
    path: str
    reason: str  # "cannot decode image <path>: <why>"


def collate_readable(items: list) -> tuple:
    """Collate the decodable images of a batch; the unreadable ones come back as (path, reason)."""
    from torch.utils.data import default_collate

    good = [it for it in items if not isinstance(it, Unreadable)]
    bad = [(it.path, it.reason) for it in items if isinstance(it, Unreadable)]
    x, y = default_collate(good) if good else (None, None)
    return x, y, bad


class StreamLoader:
    """A file-backed split through a DataLoader (workers, pinned memory), sharded and reseeded per
    epoch by ``Batches``. Per-image augmentation runs in the workers, each image from its own seed
    (``_Parts`` hands it, ``Seeded`` draws from it), so the crops do not depend on ``data.workers`` and a mid-epoch resume sees the
    same crops.

    An image that cannot be decoded stops the job in the main process with an error naming the
    file (``last.pt`` is left as it was, so a relaunch after the fix resumes), or, with
    ``skip_bad_images``, is left out of its batch with one warning and listed in ``skipped``.
    The workers stop when an epoch ends, when the loop is left by an error, and at ``close``."""

    def __init__(self, dataset, batch_size, *, train, workers, pin_memory, seed, rank=0, world=1,
                 skip_bad_images=False):
        from torch.utils.data import DataLoader

        self.batches = Batches(len(dataset), batch_size, shuffle=train, seed=seed, rank=rank, world=world)
        self.generator = torch.Generator()
        self.skip_bad_images, self.skipped, self._current = skip_bad_images, [], None
        self.loader = DataLoader(Seeded(dataset), batch_sampler=_Parts(self.batches), num_workers=workers,
                                 pin_memory=pin_memory, generator=self.generator, worker_init_fn=_quiet_worker,
                                 persistent_workers=False, collate_fn=collate_readable)

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
        self.close()
        self._current = self._batches()
        return self._current

    def _batches(self):
        it = iter(self.loader)
        _LIVE_ITERATORS.add(it)
        try:
            for b, (x, y, bad) in enumerate(it, start=self.batches.start):
                for path, reason in bad:
                    if not self.skip_bad_images:
                        raise ConfigError(
                            f"{reason} (epoch {self.batches.epoch + 1}, batch {b + 1}). "
                            "Fix or remove the file and relaunch: the run resumes from its last.pt. Or set "
                            "data.skip_bad_images=true to leave unreadable images out.")
                    if path not in self.skipped:
                        self.skipped.append(path)
                        log.warning("skipping an unreadable image (data.skip_bad_images=true): %s", reason)
                if x is None:
                    raise ConfigError(f"every image of batch {b + 1} (epoch {self.batches.epoch + 1}) is "
                                      f"unreadable, e.g. {bad[0][0]}: is data.root the right tree?")
                yield x, y
        finally:
            stop_workers(it)

    def close(self) -> None:
        """Stop the workers of an unfinished pass (the generator's ``finally`` does it)."""
        if self._current is not None:
            self._current.close()
            self._current = None


class _Parts:
    """A DataLoader batch sampler: this rank's indices of each global batch."""

    def __init__(self, batches: Batches):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches) - self.batches.start

    def __iter__(self):
        first = _epoch_seed(self.batches.seed, self.batches.epoch) * 100_003
        for b, idx, part in self.batches:
            lo = self.batches.bounds(b)[0] + part.start  # this image's position in the epoch
            yield [(i, first + lo + k) for k, i in enumerate(idx[part].tolist())]


@dataclass
class Data:
    train: TensorLoader | StreamLoader
    eval: TensorLoader | StreamLoader
    num_classes: int
    image_size: int
    eval_split: str
    skipped: list[str] = field(default_factory=list)  # unreadable images left out before training
    cache: str | None = None  # decoded-data cache of an in-memory tree: hit | miss | off
    load_s: float = 0.0  # seconds ``build`` took (set by it)

    def load_record(self) -> dict:
        """What a run record says about this data step: ``data_load_s`` and ``data_cache``."""
        return {"data_load_s": self.load_s, **({"data_cache": self.cache} if self.cache else {})}

    def skipped_images(self) -> list[str]:
        """Every unreadable image left out so far (data.skip_bad_images=true)."""
        seen = [*self.skipped, *getattr(self.train, "skipped", ()), *getattr(self.eval, "skipped", ())]
        return list(dict.fromkeys(seen))

    def close(self) -> None:
        """Stop any DataLoader workers still running."""
        for loader in (self.train, self.eval):
            if isinstance(loader, StreamLoader):
                loader.close()


# ---------------------------------------------------------------------------- sources
def _root(cfg) -> Path | None:
    from omegaconf import OmegaConf

    missing = OmegaConf.is_missing(cfg, "root") if "root" in cfg else True
    return None if missing or not cfg.root else Path(str(cfg.root)).expanduser()


def count_classes(cfg) -> int | None:
    """``data.num_classes``, or the class folders under an ImageFolder tree's train/ (cheap: no
    file listing); None when unknown before loading."""
    if cfg.get("num_classes") is not None:
        return int(cfg.num_classes)
    root = _root(cfg)
    if root is None or not (root / "train").is_dir():
        return None
    return sum(1 for d in (root / "train").iterdir() if d.is_dir()) or None


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


def load_digits_split(cfg, cache_dir=None):
    """scikit-learn's bundled 8x8 digits (1,797 images), a fixed stratified 75/25 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = (torch.as_tensor(d.images) * (255 / 16)).round()
    labels = torch.as_tensor(d.target, dtype=torch.int64)
    tr, te = train_test_split(range(len(labels)), test_size=0.25, stratify=d.target, random_state=0)
    grey = _to_chw_uint8(images)
    return (grey[tr], labels[tr]), (grey[te], labels[te]), "test"


def load_torchvision_cifar(cfg, cache_dir=None):
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
            folder = str(root / split / c)
            with os.scandir(folder) as entries:  # names only: no Path objects, no stat (60,000 files in ~0.1 s)
                names = sorted(e.name for e in entries if not e.name.startswith("."))
            for name in names:
                if not name.lower().endswith(IMAGE_SUFFIXES):
                    raise ConfigError(f"not an image file in the ImageFolder tree: {os.path.join(folder, name)} "
                                      f"(expected {', '.join(IMAGE_SUFFIXES)}); move it out of data.root")
                items.append((os.path.join(folder, name), i))
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


def warn_if_upsampled(samples: list[tuple[str, int]], cfg, first: int = 3) -> None:
    """A streamed tree of small images (e.g. CIFAR's 32 px) read at 224 px trains ~50x slower
    than the same tree held in memory at its own size: say so once, with the sizes."""
    from PIL import Image

    sizes = []
    for path, _ in samples[:first]:
        try:
            with Image.open(path) as im:  # reads the header only
                sizes.append(im.size)
        except OSError:
            return  # an unreadable file is reported where it is decoded
    if sizes and max(max(s) for s in sizes) * 2 <= cfg.image_size:
        shown = ", ".join(f"{w}x{h}" for w, h in sizes)
        log.warning("the first images under data.root are %s px but data.image_size=%d: every image is "
                    "upsampled and streamed from disk, far slower than needed. For small images use "
                    "data=cifar10_jpeg (decoded once into memory at 32 px), or data.image_size=<their size> "
                    "data.in_memory=true data.augment=cifar.", shown, cfg.image_size)


class ToUint8:
    """PIL image -> uint8 (3, size, size) tensor; other sizes are resized (bilinear, antialiased)."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image) -> torch.Tensor:
        import numpy as np

        img = torch.from_numpy(np.array(image)).permute(2, 0, 1)
        if img.shape[-2:] != (self.size, self.size):
            img = F.interpolate(img[None].float(), size=(self.size, self.size), mode="bilinear", antialias=True,
                                align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
        return img.contiguous()


def decode_workers(setting, images: int) -> int:
    """Processes decoding an in-memory tree (``data.workers``; auto = the job's cores, at most 8).
    A small tree (under 2,000 images a process) is decoded in the job's own process."""
    from .launch import available_cores, cpu_budget, data_workers

    n = min(8, cpu_budget()[0] or available_cores()) if setting == "auto" else data_workers(setting)
    n = min(n, images // 2000)
    return n if n > 1 else 0


def decode_split(items: list[tuple[str, int]], size: int, workers: int, skip_bad: bool, where: Path):
    """Decode a split's files in parallel (DataLoader worker processes): uint8 images, int64
    labels and the unreadable files left out (with ``skip_bad``; else the first one fails)."""
    from torch.utils.data import DataLoader

    # a generator of its own: a DataLoader draws its workers' base seed from it (from the global one
    # without it, and a cache miss would then move the model's initialisation)
    loader = DataLoader(FileDataset(items, ToUint8(size)), batch_size=500, num_workers=workers,
                        collate_fn=collate_readable, worker_init_fn=_quiet_worker if workers else None,
                        generator=torch.Generator().manual_seed(0))
    images, labels, skipped = [], [], []
    it = iter(loader)
    try:
        for x, y, bad in it:
            for path, reason in bad:
                if not skip_bad:
                    raise ConfigError(reason)
                log.warning("skipping unreadable image %s", path)
                skipped.append(path)
            if x is not None:
                images.append(x)
                labels.append(y)
    finally:
        stop_workers(it)
    if not images:
        raise ConfigError(f"no readable image under {where}")
    return torch.cat(images), torch.cat(labels).to(torch.int64), skipped


def load_imagefolder_in_memory(cfg, cache_dir=None):
    """A small class-folder tree (e.g. the CIFAR-10 JPEG tree) as uint8 tensors: decoded in
    parallel on the first job, then read from the decoded-data cache (``decoded.py``) by every
    later job of the same tree and size. An unreadable image fails naming the file, or is left
    out with ``data.skip_bad_images``."""
    import time

    from . import decoded

    root = _need_root(cfg)
    _, samples, eval_split = scan_imagefolder(cfg)
    skip_bad = bool(cfg.get("skip_bad_images", False))
    n = sum(len(v) for v in samples.values())
    t0 = time.perf_counter()

    def decode_tree() -> dict:
        workers = decode_workers(cfg.get("workers", "auto"), n)
        entry = {"skipped": []}
        for split, items in samples.items():
            x, y, bad = decode_split(items, cfg.image_size, workers, skip_bad, root / split)
            entry[split] = {"images": x, "labels": y}
            entry["skipped"] += [os.path.relpath(p, root) for p in bad]
        log.info("decoded %d images of %s with %d worker processes in %.1f s", n, root, workers,
                 time.perf_counter() - t0)
        return entry

    key = decoded.tree_key(root, samples, cfg.image_size) if cache_dir else ""
    entry, status = decoded.cached(cache_dir, f"{root.name}-{cfg.image_size}px", key, decode_tree)
    skipped = [str(root / p) for p in entry["skipped"]]
    if skipped and not skip_bad:  # the cached decode left them out; this job did not ask to
        raise ConfigError(f"cannot decode image {skipped[0]} ({len(skipped)} unreadable in the tree; found when "
                          "it was cached). Fix or remove the file, or set data.skip_bad_images=true.")
    if status == "hit":
        log.info("%d decoded images of %s from the cache in %.2f s", n - len(skipped), root, time.perf_counter() - t0)
    tr, ev = entry["train"], entry[eval_split]
    return (tr["images"], tr["labels"]), (ev["images"], ev["labels"]), eval_split, skipped, status


def load_synthetic(cfg, cache_dir=None):
    """Random images and labels, for speed benchmarks only."""
    g = torch.Generator().manual_seed(12345)
    s, k = cfg.image_size, cfg.num_classes
    make = lambda n: (torch.randint(0, 256, (n, 3, s, s), generator=g, dtype=torch.uint8),  # noqa: E731
                      torch.randint(0, k, (n,), generator=g))
    return make(cfg.train_size), make(cfg.eval_size), "test"


# data.name -> (cfg, cache_dir) -> (train, eval, eval split[, skipped files, cache status]); each split
# is (uint8 images (N, 3, H, W), int64 labels)
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
        try:
            image = read_rgb(path)
        except ConfigError as e:  # reported by the main process (StreamLoader), never raised in a worker
            return Unreadable(path, str(e))
        return self.transform(image), label


class Seeded(torch.utils.data.Dataset):
    """``seeded[(i, seed)]``: item ``i`` of ``dataset`` with its random transform drawn from
    ``seed``, in whichever process loads it, leaving that process's global generator as it was."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, item):
        i, seed = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[i]


INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
CHANNEL_ORDERS = ("rgb", "bgr")


class ToChannelOrder:
    """RGB -> BGR (Caffe models) and [0, 1] -> [0, pixel_range] before normalisation."""

    def __init__(self, order: str, pixel_range: float):
        self.bgr, self.scale = order == "bgr", float(pixel_range)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flip(0) if self.bgr else x
        return x * self.scale if self.scale != 1 else x


def eval_resize(cfg) -> int:
    """The shorter side before the centre crop: data.resize, or 256/224 of the crop (paper §5.1)."""
    return int(cfg.get("resize") or round(cfg.image_size * 256 / 224))


def _imagenet_transforms(cfg, train: bool):
    """PIL in, normalised tensor out; resize and crop on the PIL image (as timm and torchvision
    evaluate), then channel order, pixel range and mean/std."""
    from torchvision.transforms import InterpolationMode, v2

    size, mode = cfg.image_size, InterpolationMode(cfg.get("interpolation", "bilinear"))
    head = ([v2.RandomResizedCrop(size, interpolation=mode, antialias=True), v2.RandomHorizontalFlip()] if train else
            [v2.Resize(eval_resize(cfg), interpolation=mode, antialias=True), v2.CenterCrop(size)])
    order = ToChannelOrder(cfg.get("channel_order", "rgb"), cfg.get("pixel_range", 1))
    return v2.Compose([*head, v2.ToImage(), v2.ToDtype(torch.float32, scale=True), order,
                       v2.Normalize(list(cfg.mean), list(cfg.std))])


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
    if cfg.get("interpolation", "bilinear") not in INTERPOLATIONS:
        raise ConfigError(f"data.interpolation={cfg.interpolation!r} is not valid; valid values: {', '.join(INTERPOLATIONS)}")
    if cfg.get("channel_order", "rgb") not in CHANNEL_ORDERS:
        raise ConfigError(f"data.channel_order={cfg.channel_order!r} is not valid; valid values: {', '.join(CHANNEL_ORDERS)}")
    if cfg.get("resize") is not None and (not isinstance(cfg.resize, int) or cfg.resize < cfg.image_size):
        raise ConfigError(f"data.resize={cfg.resize!r} must be null or an integer >= data.image_size ({cfg.image_size})")
    if not isinstance(cfg.get("skip_bad_images", False), bool):
        raise ConfigError(f"data.skip_bad_images={cfg.skip_bad_images!r} must be true or false")
    if cfg.get("pad_mode", "zeros") not in PAD_MODES:
        raise ConfigError(f"data.pad_mode={cfg.pad_mode!r} is not valid; valid values: {', '.join(PAD_MODES)}")
    size = cfg.get("cutout")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= cfg.image_size:
            raise ConfigError(f"data.cutout={size!r} must be null (off) or a square side in pixels, 1 to "
                              f"data.image_size ({cfg.image_size})")
        if not cfg.in_memory:
            raise ConfigError("data.cutout is a batch augmentation of in-memory data (data.in_memory=true)")
    if not cfg.in_memory and cfg.augment != "imagenet":
        raise ConfigError("a streamed ImageFolder (data.in_memory=false) uses data.augment=imagenet; "
                          "for small images set data.in_memory=true")


def build(cfg, batch_size: int, eval_batch_size: int, device: torch.device, seed: int,
          rank: int = 0, world: int = 1, cache_dir=None) -> Data:
    """Load (and validate) the data named by the ``data:`` node; with ``world`` > 1 each loader
    yields this rank's part of every global batch. ``cache_dir``: where decoded in-memory trees
    are kept for later jobs (None: decode every time)."""
    import time

    t0 = time.perf_counter()
    d = _build(cfg, batch_size, eval_batch_size, device, seed, rank, world, cache_dir)
    d.load_s = time.perf_counter() - t0
    return d


def _build(cfg, batch_size, eval_batch_size, device, seed, rank, world, cache_dir) -> Data:
    check(cfg)
    if cfg.in_memory:
        (xtr, ytr), (xte, yte), eval_split, *extra = IN_MEMORY_SOURCES[cfg.name](cfg, cache_dir)
        num_classes = int(cfg.num_classes) if cfg.get("num_classes") is not None else int(ytr.max()) + 1
        if int(max(ytr.max(), yte.max())) >= num_classes:
            raise ConfigError(f"data.num_classes={num_classes} but the labels go up to {int(max(ytr.max(), yte.max()))}")
        common = dict(augment=cfg.augment, mean=list(cfg.mean), std=list(cfg.std), seed=seed, rank=rank, world=world)
        train = TensorLoader(xtr.to(device), ytr.to(device), batch_size, train=True, **common,
                             pad_mode=cfg.get("pad_mode", "zeros"), cutout=cfg.get("cutout"))
        evaluate = TensorLoader(xte.to(device), yte.to(device), eval_batch_size, train=False, **common)
        return Data(train, evaluate, num_classes, int(xtr.shape[-1]), eval_split, *extra)
    classes, samples, eval_split = scan_imagefolder(cfg)
    warn_if_upsampled(samples["train"], cfg)
    from .launch import data_workers

    common = dict(workers=data_workers(cfg.workers), pin_memory=device.type == "cuda", seed=seed, rank=rank,
                  world=world, skip_bad_images=bool(cfg.get("skip_bad_images", False)))
    train = StreamLoader(FileDataset(samples["train"], _imagenet_transforms(cfg, True)), batch_size, train=True,
                         **common)
    evaluate = StreamLoader(FileDataset(samples[eval_split], _imagenet_transforms(cfg, False)), eval_batch_size,
                            train=False, **common)
    return Data(train, evaluate, len(classes), cfg.image_size, eval_split)
