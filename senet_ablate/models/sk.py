"""Selective Kernel convolution (Li, Wang, Hu & Yang, CVPR 2019, Sec. 3.1; SKNet Table 1): a unit
variant of the ResNet family, not a block at an SE site. ``model.sk`` replaces the 3x3 conv of every
bottleneck (the strided first 3x3 of a basic block) with M parallel 3x3 paths whose outputs a softmax
over the paths, computed from their pooled sum, mixes channel by channel. The SE sites of the unit stay
where they are, so SK composes with every ``se.*`` axis (``attention=sk se.stages=all``: SK + SE).

``paths``: (groups, dilation) of each 3x3 path (the paper's SK[M=2, G=32]: a 3x3 and a dilated 3x3,
both with 32 groups, the "5x5" path of its Fig. 1); ``reduction``/``min_hidden``: the fuse layer's
width d = max(C / r, L) (the paper's Eq. 4, r = 16, L = 32)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from ..errors import ConfigError
from .layers import conv_bn

SK_PAPER = {"paths": ((32, 1), (32, 2)), "reduction": 16, "min_hidden": 32}  # SKNet-50's SK[2, 32, 16], L = 32
SK_KEYS = tuple(SK_PAPER)


@dataclass(frozen=True)
class SKSpec:
    """The layout option ``model.sk`` (None: a plain 3x3 conv)."""

    paths: tuple[tuple[int, int], ...] = SK_PAPER["paths"]
    reduction: int = 16
    min_hidden: int = 32

    @classmethod
    def from_option(cls, option: Mapping[str, object] | SKSpec | None) -> SKSpec | None:
        """``model.sk`` as a config gives it (a mapping of :data:`SK_KEYS`, or None), checked."""
        if option is None or isinstance(option, SKSpec):
            return option
        if not isinstance(option, Mapping) or set(option) - set(SK_KEYS):
            raise ConfigError(f"model.sk={option!r} must be null or a mapping of the keys {', '.join(SK_KEYS)}")
        spec = {**SK_PAPER, **option}
        paths = spec["paths"]
        if not isinstance(paths, (list, tuple)) or len(paths) < 2 or not all(_is_path(p) for p in paths):
            raise ConfigError(
                f"model.sk.paths={paths!r} must list two or more [groups, dilation] pairs of positive integers, "
                "e.g. [[32, 1], [32, 2]] (SKNet's SK[M=2, G=32])"
            )
        for key in ("reduction", "min_hidden"):
            value, low = spec[key], 1 if key == "reduction" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"model.sk.{key}={value!r} must be an integer >= {low}")
        return cls(tuple((int(g), int(d)) for g, d in paths), spec["reduction"], spec["min_hidden"])

    def hidden(self, channels: int) -> int:
        """d = max(C / r, L), at least 1."""
        return max(channels // self.reduction, self.min_hidden, 1)


def _is_path(p) -> bool:
    return (
        isinstance(p, (list, tuple))
        and len(p) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in p)
    )


class SKConv(nn.Module):
    """Split (M conv-BN-ReLU paths) -> fuse (pool their sum, 1x1 conv to d, BN, ReLU) -> select (1x1 conv
    to M x C, softmax over the paths) -> the paths' sum weighted channel by channel."""

    def __init__(self, cin: int, cout: int, stride: int, spec: SKSpec):
        super().__init__()
        for groups, _ in spec.paths:
            if cin % groups or cout % groups:
                raise ConfigError(
                    f"model.sk.paths: {groups} groups do not divide a {cin} -> {cout} channel 3x3 conv of this "
                    "backbone; use a group count that divides every stage's width"
                )
        self.paths = nn.ModuleList(
            conv_bn(cin, cout, 3, stride, padding=d, groups=g, relu=True, dilation=d) for g, d in spec.paths
        )
        hidden, self.stride = spec.hidden(cout), stride
        self.fuse = nn.Sequential(nn.Conv2d(cout, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True))
        self.select = nn.Conv2d(hidden, cout * len(spec.paths), 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.stack([path(x) for path in self.paths], 1)  # N, M, C, H, W
        weights = self.select(self.fuse(u.sum(1).mean((2, 3), keepdim=True)))
        weights = weights.view(u.shape[0], u.shape[1], u.shape[2], 1, 1).softmax(1)
        return (u * weights).sum(1)

    def elementwise_ops(self, x: torch.Tensor) -> int:
        """Paper-convention ops per sample, as SE's pooling and rescale: the paths' sum (M - 1), its pooling
        (1), the rescale (M) and the weighted sum (M - 1), each over one C x H x W output map."""
        m, (h, w) = len(self.paths), x.shape[-2:]
        s = self.stride
        return (3 * m - 1) * (self.select.out_channels // m) * ((h - 1) // s + 1) * ((w - 1) // s + 1)
