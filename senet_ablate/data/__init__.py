"""Datasets, loaders and batch augmentation (``data=``): ``check`` a ``data:`` node, ``build`` its
loaders into a ``Data``.

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
initialisation. Under DDP every rank walks the same global batches and takes its own contiguous
part of each, so 2 ranks x 32 images see what one process sees with batch 64.

The modules: ``sources`` (in-memory datasets by name), ``tree`` (a class-folder tree on disk),
``files`` (reading image files), ``transforms`` (per image), ``augment`` (per batch),
``sampling`` (which images make a batch), ``subset`` (``data.subset``: a class-stratified part),
``loaders``, ``workers`` (DataLoader worker processes) and ``decoded`` (the decoded-data cache).
How many worker processes to use is the caller's decision (``run.launch.data_workers``,
``run.launch.decode_processes``), passed to ``build`` as numbers.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import ConfigError
from ..records.predictions import digest
from . import subset
from .augment import AUGMENTS, BATCH_AUGMENT, PAD_MODES, _pad, crop_flip, cutout, flip_only
from .files import IMAGE_SUFFIXES, FileDataset, Seeded, Unreadable, collate_readable, read_rgb
from .loaders import StreamLoader, TensorLoader
from .sampling import Batches, epoch_seed, shard
from .sources import DATASETS, SOURCES, STREAMED, Source, decode_split, decode_workers, load_digits_split
from .transforms import CHANNEL_ORDERS, INTERPOLATIONS, ToChannelOrder, ToUint8, eval_resize, imagenet_transforms
from .tree import EVAL_SPLITS, count_classes, scan_imagefolder, warn_if_upsampled
from .workers import _LIVE_ITERATORS, stop_workers

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = [  # what callers and tests use through ``senet_ablate.data``
    "AUGMENTS",
    "BATCH_AUGMENT",
    "CHANNEL_ORDERS",
    "DATASETS",
    "EVAL_SPLITS",
    "IMAGE_SUFFIXES",
    "INTERPOLATIONS",
    "PAD_MODES",
    "SOURCES",
    "STREAMED",
    "Batches",
    "Data",
    "FileDataset",
    "Seeded",
    "Source",
    "StreamLoader",
    "TensorLoader",
    "ToChannelOrder",
    "ToUint8",
    "Unreadable",
    "build",
    "check",
    "collate_readable",
    "count_classes",
    "crop_flip",
    "cutout",
    "decode_split",
    "decode_workers",
    "epoch_seed",
    "eval_resize",
    "flip_only",
    "imagenet_transforms",
    "load_digits_split",
    "read_rgb",
    "scan_imagefolder",
    "shard",
    "stop_workers",
    "warn_if_upsampled",
    "_LIVE_ITERATORS",
    "_pad",
]


@dataclass
class Data:
    """A job's data, as :func:`build` loads it: the train and eval loaders (in memory or streamed), what
    the model is built for (classes, input side) and what the record says of the loading."""

    train: TensorLoader | StreamLoader
    eval: TensorLoader | StreamLoader
    num_classes: int
    image_size: int
    eval_split: str
    skipped: list[str] = field(default_factory=list)  # unreadable images left out before training
    cache: str | None = None  # decoded-data cache of an in-memory tree: hit | miss | off
    workers: int = 0  # DataLoader workers of the streamed train loader (0: in memory)
    load_s: float = 0.0  # seconds ``build`` took (set by it)
    subset: dict | None = None  # data.subset: images per split and class, the seed, the images' digest

    def load_record(self) -> dict:
        """What a run record says about this data step: ``data_load_s``, ``data_cache``, ``data_subset``."""
        return {
            "data_load_s": self.load_s,
            **({"data_cache": self.cache} if self.cache else {}),
            **({"data_subset": self.subset} if self.subset else {}),
        }

    def describe_subset(self, cfg: DictConfig) -> dict | None:
        """``data.subset``'s record: each split's images per class, the seed, and a digest of the
        images in order (train then eval): equal digests, the same images for every row and seed."""
        if subset.sizes(cfg) is None:
            return None
        out = {"seed": int(cfg.get("subset_seed", 0))}
        for role, loader in (("train", self.train), ("eval", self.eval)):
            labels = _labels(loader)
            out[role] = len(labels)
            out[f"{role}_per_class"] = [labels.count(c) for c in range(self.num_classes)]
        out["images_digest"] = digest(self._order(self.train).encode(), self.eval_order().encode())
        return out

    def eval_order(self) -> str:
        """A fingerprint of the eval images in their order (``predictions.npz``): of the pixels of an in-memory
        split, of the class folder and file name of each streamed image (not of data.root, which may move)."""
        return self._order(self.eval)

    @staticmethod
    def _order(loader) -> str:
        if isinstance(loader, TensorLoader):
            return digest(loader.images.cpu().numpy().tobytes())
        samples = loader.loader.dataset.dataset.samples
        return digest("\n".join(f"{Path(p).parent.name}/{Path(p).name}" for p, _ in samples).encode())

    def skipped_images(self) -> list[str]:
        """Every unreadable image left out so far (data.skip_bad_images=true)."""
        seen = [*self.skipped, *getattr(self.train, "skipped", ()), *getattr(self.eval, "skipped", ())]
        return list(dict.fromkeys(seen))

    def close(self) -> None:
        """Stop any DataLoader workers still running."""
        for loader in (self.train, self.eval):
            if isinstance(loader, StreamLoader):
                loader.close()


def _valid(key: str, value, valid) -> None:
    if value not in valid:
        raise ConfigError(f"data.{key}={value!r} is not valid; valid values: {', '.join(valid)}")


def check_workers(setting: int | str) -> int | str:
    """``data.workers``: 'auto' or an int >= 0 (resolving 'auto' is the launcher's business)."""
    if setting != "auto" and (not isinstance(setting, int) or isinstance(setting, bool) or setting < 0):
        raise ConfigError(f"data.workers={setting!r} must be 'auto' or a non-negative integer")
    return setting


def check(cfg: DictConfig) -> None:
    """Config-level checks that need no data."""
    check_workers(cfg.get("workers", 0))
    subset.sizes(cfg)
    if cfg.name not in DATASETS:
        raise ConfigError(f"data.name={cfg.name!r} is not a dataset; valid values: {', '.join(DATASETS)}")
    if cfg.name == "custom" and not isinstance(cfg.get("_target_"), str):
        raise ConfigError("data=custom needs data._target_=<your function's dotted path> (docs/bring-your-own.md)")
    _valid("augment", cfg.augment, AUGMENTS)
    if cfg.in_memory and cfg.augment == "imagenet":
        raise ConfigError("data.augment=imagenet runs per image: use it with data.in_memory=false")
    if not cfg.in_memory and cfg.name not in STREAMED:
        raise ConfigError(f"data.in_memory=false is only for data={'|'.join(STREAMED)}; {cfg.name} is always in memory")
    _valid("interpolation", cfg.get("interpolation", "bilinear"), INTERPOLATIONS)
    _valid("channel_order", cfg.get("channel_order", "rgb"), CHANNEL_ORDERS)
    if cfg.get("resize") is not None and (not isinstance(cfg.resize, int) or cfg.resize < cfg.image_size):
        raise ConfigError(
            f"data.resize={cfg.resize!r} must be null or an integer >= data.image_size ({cfg.image_size})"
        )
    if not isinstance(cfg.get("skip_bad_images", False), bool):
        raise ConfigError(f"data.skip_bad_images={cfg.skip_bad_images!r} must be true or false")
    _valid("pad_mode", cfg.get("pad_mode", "zeros"), PAD_MODES)
    size = cfg.get("cutout")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= cfg.image_size:
            raise ConfigError(
                f"data.cutout={size!r} must be null (off) or a square side in pixels, 1 to "
                f"data.image_size ({cfg.image_size})"
            )
        if not cfg.in_memory:
            raise ConfigError("data.cutout is a batch augmentation of in-memory data (data.in_memory=true)")
    if not cfg.in_memory and cfg.augment != "imagenet":
        raise ConfigError(
            "a streamed ImageFolder (data.in_memory=false) uses data.augment=imagenet; "
            "for small images set data.in_memory=true"
        )


def build(
    cfg: DictConfig,
    batch_size: int,
    eval_batch_size: int,
    device: torch.device,
    seed: int,
    rank: int = 0,
    world: int = 1,
    cache_dir: str | Path | None = None,
    workers: int = 0,
    decode_workers: int = 0,
) -> Data:
    """Load (and validate) the data named by the ``data:`` node; with ``world`` > 1 each loader
    yields this rank's part of every global batch. ``cache_dir``: where decoded in-memory trees
    are kept for later jobs (None: decode every time). ``workers``: DataLoader workers of a
    streamed tree; ``decode_workers``: the most processes that may decode an in-memory tree
    (resolved by the caller from ``data.workers``; a small tree uses fewer, or none)."""
    t0 = time.perf_counter()
    check(cfg)
    shards = dict(seed=seed, rank=rank, world=world)
    if cfg.in_memory:
        src = SOURCES[cfg.name](cfg, cache_dir, decode_workers)
        if cfg.name != "imagefolder":  # a class-folder tree took its subset from the file list (tree.py)
            src = _subset(src, cfg)
        num_classes = _num_classes(cfg, src)
        train, evaluate = _tensor_loaders(cfg, src, batch_size, eval_batch_size, device, shards)
        d = Data(
            train, evaluate, num_classes, int(src.train[0].shape[-1]), src.eval_split, list(src.skipped), src.cache
        )
    else:
        classes, samples, eval_split = scan_imagefolder(cfg)
        warn_if_upsampled(samples["train"], cfg)
        train, evaluate = _stream_loaders(
            cfg, samples, eval_split, batch_size, eval_batch_size, device, shards, workers
        )
        d = Data(train, evaluate, len(classes), cfg.image_size, eval_split, workers=workers)
    d.load_s = time.perf_counter() - t0
    d.subset = d.describe_subset(cfg)
    return d


def _subset(src: Source, cfg: DictConfig) -> Source:
    """``data.subset`` of an in-memory source: the chosen images of each split, in their order."""
    wanted = subset.sizes(cfg)
    if wanted is None:
        return src
    seed, parts = cfg.get("subset_seed", 0), {}
    for role, (images, labels) in (("train", src.train), ("eval", src.eval)):
        keep = subset.choose(labels.tolist(), wanted[role], seed, role)
        parts[role] = (images, labels) if keep is None else (images[keep], labels[keep])
    return dataclasses.replace(src, train=parts["train"], eval=parts["eval"])


def _labels(loader) -> list[int]:
    if isinstance(loader, TensorLoader):
        return loader.labels.tolist()
    return [y for _, y in loader.loader.dataset.dataset.samples]


def _num_classes(cfg: DictConfig, src: Source) -> int:
    """``data.num_classes``, else what the source says, else the largest train label + 1; every label
    must be below it."""
    (_, ytr), (_, yte) = src.train, src.eval
    if cfg.get("num_classes") is not None:
        num_classes = int(cfg.num_classes)
    else:
        num_classes = src.num_classes if src.num_classes is not None else int(ytr.max()) + 1
    if int(max(ytr.max(), yte.max())) >= num_classes:
        raise ConfigError(f"data.num_classes={num_classes} but the labels go up to {int(max(ytr.max(), yte.max()))}")
    return num_classes


def _tensor_loaders(
    cfg: DictConfig, src: Source, batch_size, eval_batch_size, device, shards
) -> tuple[TensorLoader, TensorLoader]:
    (xtr, ytr), (xte, yte) = src.train, src.eval
    common = dict(augment=cfg.augment, mean=list(cfg.mean), std=list(cfg.std), **shards)
    train = TensorLoader(
        xtr.to(device),
        ytr.to(device),
        batch_size,
        train=True,
        **common,
        pad_mode=cfg.get("pad_mode", "zeros"),
        cutout=cfg.get("cutout"),
    )
    evaluate = TensorLoader(xte.to(device), yte.to(device), eval_batch_size, train=False, **common)
    return train, evaluate


def _stream_loaders(
    cfg, samples, eval_split, batch_size, eval_batch_size, device, shards, workers
) -> tuple[StreamLoader, StreamLoader]:
    common = dict(
        workers=workers,
        pin_memory=device.type == "cuda",
        **shards,
        skip_bad_images=bool(cfg.get("skip_bad_images", False)),
    )
    train = StreamLoader(
        FileDataset(samples["train"], imagenet_transforms(cfg, True)), batch_size, train=True, **common
    )
    evaluate = StreamLoader(
        FileDataset(samples[eval_split], imagenet_transforms(cfg, False)), eval_batch_size, train=False, **common
    )
    return train, evaluate
