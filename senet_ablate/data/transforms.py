"""Per-image transforms, PIL image in, tensor out: to uint8 at a fixed size (decoding a tree into
memory), and the paper's ImageNet augmentation of a streamed image (train: random-resized crop +
flip; eval: resize to ``eval_resize``, centre crop), with channel order, pixel range and mean/std."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from omegaconf import DictConfig
    from PIL import Image
    from torchvision.transforms import v2

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
CHANNEL_ORDERS = ("rgb", "bgr")


class ToUint8:
    """PIL image -> uint8 (3, size, size) tensor; other sizes are resized (bilinear, antialiased)."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: Image.Image) -> torch.Tensor:
        img = torch.from_numpy(np.array(image)).permute(2, 0, 1)
        if img.shape[-2:] != (self.size, self.size):
            img = (
                F.interpolate(
                    img[None].float(), size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
                )[0]
                .round()
                .clamp(0, 255)
                .to(torch.uint8)
            )
        return img.contiguous()


class ToChannelOrder:
    """RGB -> BGR (Caffe models) and [0, 1] -> [0, pixel_range] before normalisation."""

    def __init__(self, order: str, pixel_range: float):
        self.bgr, self.scale = order == "bgr", float(pixel_range)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flip(0) if self.bgr else x
        return x * self.scale if self.scale != 1 else x


def eval_resize(cfg: DictConfig) -> int:
    """The shorter side before the centre crop: data.resize, or 256/224 of the crop (paper §5.1)."""
    return int(cfg.get("resize") or round(cfg.image_size * 256 / 224))


def imagenet_transforms(cfg: DictConfig, train: bool) -> v2.Compose:
    """PIL in, normalised tensor out; resize and crop on the PIL image (as timm and torchvision
    evaluate), then channel order, pixel range and mean/std."""
    from torchvision.transforms import InterpolationMode, v2

    size, mode = cfg.image_size, InterpolationMode(cfg.get("interpolation", "bilinear"))
    head = (
        [v2.RandomResizedCrop(size, interpolation=mode, antialias=True), v2.RandomHorizontalFlip()]
        if train
        else [v2.Resize(eval_resize(cfg), interpolation=mode, antialias=True), v2.CenterCrop(size)]
    )
    order = ToChannelOrder(cfg.get("channel_order", "rgb"), cfg.get("pixel_range", 1))
    return v2.Compose(
        [*head, v2.ToImage(), v2.ToDtype(torch.float32, scale=True), order, v2.Normalize(list(cfg.mean), list(cfg.std))]
    )
