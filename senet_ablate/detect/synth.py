"""A small real detection set that needs no download (``senet-detset``): CIFAR-10 images pasted at
random positions and scales onto larger canvases, their boxes and classes written as COCO JSON.

The objects are real photographs (the CIFAR-10 JPEG tree: train/ and test/ with one folder per class);
the canvases alternate landscape and portrait, so aspect-ratio grouping has two groups to form. The
train split draws its objects from CIFAR's train images, the val split from its test images. The same
source, arguments and seed give the same files and JSON, byte for byte.

    senet-detset --source ~/data/cifar10-jpeg --out ~/data/cifar-det      # 600 train / 150 val canvases
    senet-ablate task=detect data=cifar_det data.root=~/data/cifar-det model=resnet18
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ConfigError

SPLITS = {"train": "train", "val": "test"}  # our split -> the CIFAR split its objects come from
CANVASES = ((160, 120), (120, 160))  # (width, height): landscape and portrait


def source_images(source: Path, split: str) -> tuple[list[str], list[list[Path]]]:
    """Class names and, per class, its image files in name order."""
    root = source / split
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    files = [sorted(p for p in (root / c).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")) for c in classes]
    if not classes or not all(files):
        raise ConfigError(
            f"--source {source}: expected {root} with one folder of images per class (the CIFAR-10 JPEG tree: "
            "tar xzf cifar10-jpeg.tar.gz)"
        )
    return classes, files


def overlap(a: list[int], b: list[int]) -> float:
    """Intersection over union of two [x, y, w, h] boxes."""
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def place(rng: random.Random, width: int, height: int, count: int, scales: tuple[int, int]) -> list[list[int]]:
    """Up to ``count`` square boxes of side in ``scales`` inside the canvas, overlapping by IoU < 0.1."""
    boxes = []
    for _ in range(count * 20):
        if len(boxes) == count:
            break
        side = rng.randint(*scales)
        box = [rng.randint(0, width - side), rng.randint(0, height - side), side, side]
        if all(overlap(box, b) < 0.1 for b in boxes):
            boxes.append(box)
    return boxes


def canvas(rng: random.Random, noise: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A flat random colour with mild pixel noise."""
    w, h = size
    base = np.array([rng.randint(40, 215) for _ in range(3)], dtype=np.int16)
    pixels = base + noise.integers(-12, 13, size=(h, w, 3), dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_split(source: Path, out: Path, split: str, n: int, seed: int, objects: int, scales: tuple[int, int]) -> dict:
    """Write ``n`` canvases of ``split`` and return its COCO dict."""
    classes, files = source_images(source, SPLITS[split])
    rng, noise = random.Random(f"{seed}-{split}"), np.random.default_rng([seed, len(split)])
    (out / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(n):
        size = CANVASES[i % 2]
        img = canvas(rng, noise, size)
        for box in place(rng, *size, rng.randint(1, objects), scales):
            c = rng.randrange(len(classes))
            obj = Image.open(rng.choice(files[c])).convert("RGB").resize((box[2], box[3]), Image.BILINEAR)
            img.paste(obj, (box[0], box[1]))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": c + 1,
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": 0,
                }
            )
        name = f"{i:06d}.jpg"
        img.save(out / split / name, quality=95)
        images.append({"id": i + 1, "file_name": name, "width": size[0], "height": size[1]})
    categories = [{"id": c + 1, "name": name} for c, name in enumerate(classes)]
    return {"images": images, "annotations": annotations, "categories": categories}


def make(
    source: Path,
    out: Path,
    train: int = 600,
    val: int = 150,
    seed: int = 0,
    objects: int = 3,
    scales: tuple[int, int] = (24, 64),
) -> dict[str, int]:
    """The whole set under ``out`` (COCO layout: <split>/, annotations/instances_<split>.json)."""
    counts = {}
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", train), ("val", val)):
        coco = make_split(source, out, split, n, seed, objects, scales)
        (out / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
        counts[split] = len(coco["annotations"])
    return counts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="senet-detset", description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=Path, required=True, help="the CIFAR-10 JPEG tree (train/, test/ by class)")
    p.add_argument("--out", type=Path, required=True, help="where the set goes (COCO layout)")
    p.add_argument("--train", type=int, default=600, help="train canvases (default 600)")
    p.add_argument("--val", type=int, default=150, help="val canvases (default 150)")
    p.add_argument("--objects", type=int, default=3, help="at most this many objects a canvas (default 3)")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same set (default 0)")
    args = p.parse_args(argv)
    try:
        counts = make(args.source.expanduser(), args.out.expanduser(), args.train, args.val, args.seed, args.objects)
    except ConfigError as e:
        raise SystemExit(f"senet-detset: {e}") from None
    print(
        f"wrote {args.out}: {args.train} train canvases ({counts['train']} objects), "
        f"{args.val} val canvases ({counts['val']} objects), 10 classes"
    )


if __name__ == "__main__":
    main()
