"""A class-folder image tree on disk (``root/train/<class>/*``, ``root/val|test/<class>/*``):
where ``data.root`` points, how many classes it has, the checked list of its files, and a hint
when its images are far smaller than the size they would be streamed at."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from . import subset
from .files import IMAGE_SUFFIXES

log = logging.getLogger("senet_ablate")

EVAL_SPLITS = ("val", "test")


def root_of(cfg: DictConfig) -> Path | None:
    """``data.root`` as a path (None when unset or missing)."""
    missing = OmegaConf.is_missing(cfg, "root") if "root" in cfg else True
    return None if missing or not cfg.root else Path(str(cfg.root)).expanduser()


def need_root(cfg: DictConfig) -> Path:
    """``data.root``, which must be an existing directory."""
    root = root_of(cfg)
    if root is None:
        raise ConfigError(f"data.root is not set: data={cfg.name} needs data.root=/path/to/the/data")
    if not root.is_dir():
        raise ConfigError(f"data.root={str(root)!r} does not exist or is not a directory (data={cfg.name})")
    return root


def count_classes(cfg: DictConfig) -> int | None:
    """``data.num_classes``, or the class folders under an ImageFolder tree's train/ (cheap: no
    file listing); None when unknown before loading."""
    if cfg.get("num_classes") is not None:
        return int(cfg.num_classes)
    root = root_of(cfg)
    if root is None or not (root / "train").is_dir():
        return None
    return sum(1 for d in (root / "train").iterdir() if d.is_dir()) or None


def scan_imagefolder(cfg: DictConfig) -> tuple[list[str], dict[str, list[tuple[str, int]]], str]:
    """Check and list ``root/train/<class>/*`` and ``root/val|test/<class>/*``; fail on anything odd.
    Returns (classes, {split: [(path, class index)]}, the eval split's name)."""
    root = need_root(cfg)
    train = root / "train"
    eval_split = next((s for s in EVAL_SPLITS if (root / s).is_dir()), None)
    if not train.is_dir() or eval_split is None:
        raise ConfigError(f"data.root={str(root)!r} must hold train/ and val/ (or test/) class folders")
    classes = sorted(p.name for p in train.iterdir() if p.is_dir())
    if not classes:
        raise ConfigError(f"no class folders under {train}")
    eval_classes = sorted(p.name for p in (root / eval_split).iterdir() if p.is_dir())
    if eval_classes != classes:
        raise ConfigError(
            f"class folders differ between train/ ({len(classes)}) and {eval_split}/ ({len(eval_classes)}) under {root}"
        )
    if cfg.get("num_classes") is not None and cfg.num_classes != len(classes):
        raise ConfigError(f"data.num_classes={cfg.num_classes} but {train} has {len(classes)} class folders")
    log.info("listing the image files of %d classes under %s (about 2 s a million on a local disk)", len(classes), root)
    samples = {split: _list_split(root, split, classes) for split in ("train", eval_split)}
    wanted = subset.sizes(cfg)  # data.subset: chosen here, before any image is read or decoded
    if wanted is not None:
        seed = cfg.get("subset_seed", 0)
        for split, role in (("train", "train"), (eval_split, "eval")):
            keep = subset.choose([y for _, y in samples[split]], wanted[role], seed, role)
            samples[split] = samples[split] if keep is None else [samples[split][i] for i in keep]
    return classes, samples, eval_split


def _list_split(root: Path, split: str, classes: list[str]) -> list[tuple[str, int]]:
    items = []
    for i, c in enumerate(classes):
        folder = str(root / split / c)
        with os.scandir(folder) as entries:  # names only: no Path objects, no stat (60,000 files in ~0.1 s)
            names = sorted(e.name for e in entries if not e.name.startswith("."))
        for name in names:
            if not name.lower().endswith(IMAGE_SUFFIXES):
                raise ConfigError(
                    f"not an image file in the ImageFolder tree: {os.path.join(folder, name)} "
                    f"(expected {', '.join(IMAGE_SUFFIXES)}); move it out of data.root"
                )
            items.append((os.path.join(folder, name), i))
    if not items:
        raise ConfigError(f"no images under {root / split}")
    return items


def warn_if_upsampled(samples: list[tuple[str, int]], cfg: DictConfig, first: int = 3) -> None:
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
        log.warning(
            "the first images under data.root are %s px but data.image_size=%d: every image is "
            "upsampled and streamed from disk, far slower than needed. For small images use "
            "data=cifar10_jpeg (decoded once into memory at 32 px), or data.image_size=<their size> "
            "data.in_memory=true data.augment=cifar.",
            shown,
            cfg.image_size,
        )
