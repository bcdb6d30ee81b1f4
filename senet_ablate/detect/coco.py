"""COCO-format detection data (``data=coco``): ``<root>/<split>/`` images and
``<root>/annotations/instances_<split>.json``, checked whole before any work; deterministic batches.

Categories map to contiguous labels 1..K in id order (0 is the background); detections map back to the
JSON's ids for COCOeval. Crowd boxes are left out of training and kept in the evaluation's ground truth,
as Detectron does. A batch holds images of one orientation (aspect-ratio grouping: landscape or portrait,
torchvision's reference with two groups); the order depends only on (seed, epoch) and each image's flip on
(seed, epoch, image), so a resumed run, any worker count and any number of DDP ranks see the same batches.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from ..errors import ConfigError


@dataclass
class CocoSplit:
    """One split: its images (COCO dicts), boxes and labels per image, category ids by label."""

    json_path: Path
    image_dir: Path
    images: list[dict]
    boxes: list[torch.Tensor]  # (n, 4) x1, y1, x2, y2, crowd boxes left out
    labels: list[torch.Tensor]  # (n,) 1..K
    category_ids: list[int]  # label - 1 -> the JSON's category id
    category_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)


def paths(root: Path, split: str) -> tuple[Path, Path]:
    return root / "annotations" / f"instances_{split}.json", root / split


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(
            f"data.root: no instances JSON at {path} (COCO layout: <root>/annotations/instances_<split>.json "
            "beside <root>/<split>/; senet-detset makes a small set offline)"
        )
    try:
        coco = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON ({e})") from None
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(coco.get(k), list)]
    if not isinstance(coco, dict) or missing:
        raise ConfigError(f"{path} is not a COCO instances file: no list {', '.join(missing)}")
    return coco


def check_box(path: Path, ann: dict, image: dict | None, categories: set) -> None:
    """A box inside its image, of positive size, with a known category (1 px of slack for rounding)."""
    where = f"{path}: annotation {ann.get('id')!r}"
    if image is None:
        raise ConfigError(f"{where} refers to image_id {ann.get('image_id')!r}, which the file does not list")
    if ann.get("category_id") not in categories:
        raise ConfigError(f"{where} has category_id {ann.get('category_id')!r}, not among the file's categories")
    box = ann.get("bbox")
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
        raise ConfigError(f"{where}: bbox {box!r} must be [x, y, width, height]")
    x, y, w, h = box
    if w <= 0 or h <= 0 or x < -1 or y < -1 or x + w > image["width"] + 1 or y + h > image["height"] + 1:
        raise ConfigError(
            f"{where}: bbox {box} lies outside its image {image.get('file_name')!r} "
            f"({image['width']} x {image['height']}) or has no area"
        )


def load_split(root: str | Path, split: str, num_classes: int | None = None) -> CocoSplit:
    """Read and check one split; ``num_classes`` (data.num_classes: object categories, no background),
    when set, must equal the JSON's category count."""
    json_path, image_dir = paths(Path(str(root)).expanduser(), split)
    coco = read_json(json_path)
    cats = sorted(coco["categories"], key=lambda c: c["id"])
    if num_classes is not None and num_classes != len(cats):
        raise ConfigError(
            f"data.num_classes={num_classes} disagrees with {json_path}, which lists {len(cats)} categories "
            "(set data.num_classes=null to take the file's)"
        )
    label = {c["id"]: i + 1 for i, c in enumerate(cats)}
    images = sorted(coco["images"], key=lambda im: im["id"])
    by_id = {im["id"]: im for im in images}
    per_image = {im["id"]: ([], []) for im in images}
    for ann in coco["annotations"]:
        check_box(json_path, ann, by_id.get(ann.get("image_id")), set(label))
        if not ann.get("iscrowd", 0):
            x, y, w, h = ann["bbox"]
            per_image[ann["image_id"]][0].append([x, y, x + w, y + h])
            per_image[ann["image_id"]][1].append(label[ann["category_id"]])
    absent = [im["file_name"] for im in images if not (image_dir / im["file_name"]).is_file()]
    if absent:
        raise ConfigError(f"{json_path} lists {len(absent)} images missing from {image_dir}, e.g. {absent[0]!r}")
    boxes = [torch.tensor(per_image[im["id"]][0], dtype=torch.float32).reshape(-1, 4) for im in images]
    labels = [torch.tensor(per_image[im["id"]][1], dtype=torch.int64) for im in images]
    return CocoSplit(json_path, image_dir, images, boxes, labels, [c["id"] for c in cats], [c["name"] for c in cats])


def sample(split: CocoSplit, i: int, flip: bool) -> tuple[torch.Tensor, dict]:
    """Image ``i`` as a float tensor in [0, 1] and its target, mirrored when ``flip``."""
    im = split.images[i]
    with Image.open(split.image_dir / im["file_name"]) as f:
        x = pil_to_tensor(f.convert("RGB")).float().div_(255)
    boxes = split.boxes[i].clone()
    if flip:
        x = x.flip(-1)
        boxes[:, [0, 2]] = x.shape[-1] - boxes[:, [2, 0]]
    return x, {"boxes": boxes, "labels": split.labels[i].clone(), "image_id": im["id"]}


def flip_of(seed: int, epoch: int, i: int) -> bool:
    return random.Random(f"{seed}-{epoch}-{i}").random() < 0.5


def grouped_batches(split: CocoSplit, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's batches: a shuffled order (seed, epoch), each batch filled from one orientation group;
    the last, incomplete batch of each group ends the epoch."""
    order = torch.randperm(len(split.images), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    batches, groups = [], {True: [], False: []}
    for i in order.tolist():
        group = groups[split.images[i]["width"] >= split.images[i]["height"]]
        group.append(i)
        if len(group) == batch_size:
            batches.append(group.copy())
            group.clear()
    return batches + [g for g in groups.values() if g]


class Batches(torch.utils.data.Dataset):
    """The epoch's batches from ``start`` on as a dataset of whole batches (a DataLoader with
    ``batch_size=None`` reads them in workers); ``part``: this rank's slice of each global batch."""

    def __init__(
        self,
        split: CocoSplit,
        batches: list[list[int]],
        seed: int,
        epoch: int,
        flip: bool,
        part: tuple[int, int] = (0, 1),
    ):
        self.split, self.batches, self.seed, self.epoch, self.flip = split, batches, seed, epoch, flip
        self.rank, self.world = part

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int):
        ids = self.batches[b]
        per = -(-len(ids) // self.world)
        mine = ids[self.rank * per : (self.rank + 1) * per]
        items = [sample(self.split, i, self.flip and flip_of(self.seed, self.epoch, i)) for i in mine]
        return [x for x, _ in items], [t for _, t in items]
