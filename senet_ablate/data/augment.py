"""Augmentation of a whole in-memory batch with tensor ops (no per-image Python): pad + random
crop + flip, flip alone, Cutout. An op draws its random numbers for the whole *global* batch
(``total`` images) and applies the ``part`` of them that this process holds, so that a DDP rank
augments its images exactly as a single process would."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

PAD_MODES = ("zeros", "reflect")  # the SE paper's zero padding | WRN's code reflects


def _pad(x: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    if mode == "zeros":
        return F.pad(x, (pad, pad, pad, pad))

    def reflected(n: int) -> torch.Tensor:  # indices -pad..n+pad-1 mirrored into 0..n-1 (edge not repeated)
        i = torch.arange(-pad, n + pad, device=x.device).abs()
        return torch.where(i >= n, 2 * (n - 1) - i, i)

    return x[:, :, reflected(x.shape[2])][:, :, :, reflected(x.shape[3])]  # index, not F.pad: uint8 works


def crop_flip(
    x: torch.Tensor, g: torch.Generator, part: slice, total: int, pad: int = 4, pad_mode: str = "zeros"
) -> torch.Tensor:
    """He et al.'s CIFAR augmentation on a whole uint8 batch: pad (``pad_mode``), random crop, random flip."""
    b, c, h, w = x.shape
    dev = x.device
    xp = _pad(x, pad, pad_mode)
    dy = torch.randint(0, 2 * pad + 1, (total,), generator=g, device=dev)[part]
    dx = torch.randint(0, 2 * pad + 1, (total,), generator=g, device=dev)[part]
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    out = xp[
        torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None], rows, cols
    ]
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
