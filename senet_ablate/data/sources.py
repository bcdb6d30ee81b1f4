"""The datasets held whole in memory, by ``data.name``: each source turns the ``data:`` node into a
``Source`` (train and eval splits as uint8 images (N, 3, H, W) and int64 labels). An in-memory
ImageFolder tree is decoded by worker processes once and kept in the decoded-data cache.
``DATASETS`` are the valid names; ``STREAMED`` those that may also stream from disk."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from torch.utils.data import DataLoader

from ..errors import ConfigError
from ..targets import import_object
from . import decoded
from .files import FileDataset, collate_readable
from .transforms import ToUint8
from .tree import need_root, root_of, scan_imagefolder
from .workers import quiet_worker, worker_pass

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger("senet_ablate")

Split = tuple[torch.Tensor, torch.Tensor]  # uint8 images (N, 3, H, W), int64 labels (N,)
# small JPEGs one process decodes a second: CIFAR-10's 60,000 took 8.5-15 s with 2 processes on 2 cores
DECODE_PER_S = 2000


@dataclass(frozen=True)
class Source:
    """A dataset loaded into memory: its splits, which split is evaluated, the unreadable images
    left out (``data.skip_bad_images``) and what the decoded-data cache did (hit | miss | off)."""

    train: Split
    eval: Split
    eval_split: str
    skipped: tuple[str, ...] = ()
    cache: str | None = None
    num_classes: int | None = None  # what the source says (data=custom); None: data.num_classes or the labels


def to_chw_uint8(array: object) -> torch.Tensor:
    """Images as uint8 (N, 3, H, W): from (N, H, W, 3), (N, 3, H, W) or grey (N, H, W) (repeated to 3 channels)."""
    t = torch.as_tensor(array)
    if t.ndim == 3:  # N, H, W grey
        t = t[:, None].expand(-1, 3, -1, -1)
    elif t.shape[-1] == 3:  # N, H, W, C
        t = t.permute(0, 3, 1, 2)
    return t.contiguous().to(torch.uint8)


def load_digits_split(cfg: DictConfig | None = None) -> tuple[Split, Split, str]:
    """scikit-learn's bundled 8x8 digits (1,797 images), a fixed stratified 75/25 split:
    (train, test, "test")."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = (torch.as_tensor(d.images) * (255 / 16)).round()
    labels = torch.as_tensor(d.target, dtype=torch.int64)
    tr, te = train_test_split(range(len(labels)), test_size=0.25, stratify=d.target, random_state=0)
    grey = to_chw_uint8(images)
    return (grey[tr], labels[tr]), (grey[te], labels[te]), "test"


def digits_source(cfg: DictConfig, cache_dir: str | Path | None = None, processes: int = 0) -> Source:
    """scikit-learn's digits (:func:`load_digits_split`); nothing to cache or decode."""
    return Source(*load_digits_split(cfg))


def cifar_source(cfg: DictConfig, cache_dir: str | Path | None = None, processes: int = 0) -> Source:
    """torchvision's CIFAR-10/100 under data.root; downloads when data.download is true."""
    import torchvision

    cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[cfg.name]
    root = root_of(cfg)
    if root is None:
        raise ConfigError(f"data.root is not set: data={cfg.name} needs data.root=/path/for/{cfg.name}")
    splits = []
    for train in (True, False):
        try:
            ds = cls(str(root), train=train, download=bool(cfg.download))
        except RuntimeError as e:  # not found and download=false, or a damaged archive
            raise ConfigError(
                f"{cfg.name} not found under data.root={str(root)!r} ({e}). Set data.download=true to fetch it, "
                f"or place torchvision's python-version archive contents there."
            ) from None
        except OSError as e:  # offline, DNS failure, refused connection...
            raise ConfigError(
                f"could not download {cfg.name} to {str(root)!r}: {e}. Without internet, fetch the "
                f"python-version archive on another machine and unpack it into data.root (torchvision layout), "
                f"or point data=imagefolder (e.g. data=cifar10_jpeg) at a class-folder copy."
            ) from None
        splits.append((to_chw_uint8(ds.data), torch.as_tensor(ds.targets, dtype=torch.int64)))
    return Source(splits[0], splits[1], "test")


def decode_workers(processes: int, images: int) -> int:
    """Processes decoding a tree of ``images``: at most ``processes`` (the caller's budget), one
    per 2,000 images; a small tree is decoded in the job's own process (0)."""
    n = min(processes, images // 2000)
    return n if n > 1 else 0


def decode_split(
    items: list[tuple[str, int]], size: int, workers: int, skip_bad: bool, where: Path
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Decode a split's files in parallel (DataLoader worker processes): uint8 images, int64
    labels and the unreadable files left out (with ``skip_bad``; else the first one fails)."""
    # a generator of its own: a DataLoader draws its workers' base seed from it (from the global one
    # without it, and a cache miss would then move the model's initialisation)
    loader = DataLoader(
        FileDataset(items, ToUint8(size)),
        batch_size=500,
        num_workers=workers,
        collate_fn=collate_readable,
        worker_init_fn=quiet_worker if workers else None,
        generator=torch.Generator().manual_seed(0),
    )
    images, labels, skipped = [], [], []
    with worker_pass(loader) as it:
        for x, y, bad in it:
            for path, reason in bad:
                if not skip_bad:
                    raise ConfigError(reason)
                log.warning("skipping unreadable image %s", path)
                skipped.append(path)
            if x is not None:
                images.append(x)
                labels.append(y)
    if not images:
        raise ConfigError(f"no readable image under {where}")
    return torch.cat(images), torch.cat(labels).to(torch.int64), skipped


def imagefolder_source(cfg: DictConfig, cache_dir: str | Path | None = None, processes: int = 0) -> Source:
    """A small class-folder tree (e.g. the CIFAR-10 JPEG tree) as uint8 tensors: decoded by up to
    ``processes`` processes on the first job, then read from the decoded-data cache (``decoded``)
    by every later job of the same tree and size. An unreadable image fails naming the file, or
    is left out with ``data.skip_bad_images``."""
    root = need_root(cfg)
    _, samples, eval_split = scan_imagefolder(cfg)
    skip_bad = bool(cfg.get("skip_bad_images", False))
    n = sum(len(v) for v in samples.values())
    t0 = time.perf_counter()

    def decode_tree() -> dict:
        workers = decode_workers(processes, n)
        expected = max(n / (DECODE_PER_S * max(workers, 1)), 1)
        once = "into the cache (once; " if cache_dir else "(cache_dir=null: every job; "
        log.info("decoding %d images of %s %sabout %.0f s)", n, root, once, expected)
        entry = {"skipped": []}
        for split, items in samples.items():
            x, y, bad = decode_split(items, cfg.image_size, workers, skip_bad, root / split)
            entry[split] = {"images": x, "labels": y}
            entry["skipped"] += [os.path.relpath(p, root) for p in bad]
        log.info(
            "decoded %d images of %s with %d worker processes in %.1f s", n, root, workers, time.perf_counter() - t0
        )
        return entry

    key = decoded.tree_key(root, samples, cfg.image_size) if cache_dir else ""
    entry, status = decoded.cached(cache_dir, f"{root.name}-{cfg.image_size}px", key, decode_tree)
    skipped = tuple(str(root / p) for p in entry["skipped"])
    if skipped and not skip_bad:  # the cached decode left them out; this job did not ask to
        raise ConfigError(
            f"cannot decode image {skipped[0]} ({len(skipped)} unreadable in the tree; found when "
            "it was cached). Fix or remove the file, or set data.skip_bad_images=true."
        )
    if status == "hit":
        log.info("%d decoded images of %s from the cache in %.2f s", n - len(skipped), root, time.perf_counter() - t0)
    tr, ev = entry["train"], entry[eval_split]
    return Source((tr["images"], tr["labels"]), (ev["images"], ev["labels"]), eval_split, skipped, status)


def synthetic_source(cfg: DictConfig, cache_dir: str | Path | None = None, processes: int = 0) -> Source:
    """Random images and labels, for speed benchmarks only."""
    g = torch.Generator().manual_seed(12345)
    s, k = cfg.image_size, cfg.num_classes
    make = lambda n: (
        torch.randint(0, 256, (n, 3, s, s), generator=g, dtype=torch.uint8),  # noqa: E731
        torch.randint(0, k, (n,), generator=g),
    )
    return Source(make(cfg.train_size), make(cfg.eval_size), "test")


# ---------------------------------------------------------------- your own dataset (data=custom)
# data._target_ names a function in your package, called as fn(root=data.root, **data.args), that returns
# {"train": (images, labels), "test": (images, labels), "num_classes": K}: uint8 images (N, 3, H, W),
# (N, H, W, 3) or grey (N, H, W), integer labels in 0..K-1 (or data.num_classes set). Held in memory like
# the digits: the same seeded batches, DDP shards and batch augmentations as the built-in datasets.
def _split(result: Mapping, name: str, target: str, size) -> tuple[torch.Tensor, torch.Tensor]:
    pair = result.get(name)
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ConfigError(
            f"data._target_={target} must return {name!r}: (images, labels); it gave {type(pair).__name__}"
        )
    images, labels = to_chw_uint8(pair[0]), torch.as_tensor(pair[1], dtype=torch.int64)
    if images.ndim != 4 or images.shape[1] != 3 or len(images) != len(labels):
        raise ConfigError(
            f"data._target_={target}: {name} images {tuple(images.shape)} and labels {tuple(labels.shape)} must be "
            "(N, 3, H, W) or (N, H, W[, 3]) images and N labels"
        )
    if size is not None and images.shape[-2:] != (size, size):
        raise ConfigError(
            f"data.image_size={size} but data._target_={target} gave {name} images of {tuple(images.shape[-2:])} px"
        )
    return images, labels


def custom_source(cfg: DictConfig, cache_dir: str | Path | None = None, processes: int = 0) -> Source:
    """Call the user's function and check what it returns (a ConfigError names what is wrong)."""
    target = cfg.get("_target_")
    fn = import_object(target, "data._target_")
    args = dict(cfg.get("args") or {})
    result = fn(root=cfg.get("root"), **args)
    if not isinstance(result, Mapping):
        raise ConfigError(f"data._target_={target} must return a dict with train, test and num_classes")
    classes = result.get("num_classes", cfg.get("num_classes"))
    if classes is None:
        raise ConfigError(
            f"data._target_={target} gave no class count: return {{'num_classes': K, ...}} or set data.num_classes"
        )
    if cfg.get("num_classes") is not None and result.get("num_classes") not in (None, cfg.num_classes):
        raise ConfigError(f"data.num_classes={cfg.num_classes} but data._target_={target} says {result['num_classes']}")
    size = cfg.get("image_size")
    train, test = (_split(result, s, target, size) for s in ("train", "test"))
    top = int(max(train[1].max(), test[1].max()))
    if top >= int(classes):
        raise ConfigError(f"data._target_={target}: num_classes={classes} but the labels go up to {top}")
    return Source(train, test, "test", num_classes=int(classes))


# data.name -> (cfg, cache_dir, processes) -> Source, for data.in_memory=true
SOURCES: dict[str, Callable[..., Source]] = {
    "digits": digits_source,
    "cifar10": cifar_source,
    "cifar100": cifar_source,
    "imagefolder": imagefolder_source,
    "synthetic": synthetic_source,
    "custom": custom_source,
}
STREAMED = ("imagefolder",)  # the names that may also stream from disk (data.in_memory=false)
DATASETS = tuple(dict.fromkeys([*SOURCES, *STREAMED]))  # every valid data.name
