"""BN-Inception (Ioffe & Szegedy 2015), the layout of the official ``SE-BN-Inception`` prototxt
(paper Table 2; ``backbones.md`` Sec. 4).

Stem: conv 7x7/2, 64 -> max pool 3x3/2 -> conv 1x1, 64 -> conv 3x3, 192 -> max pool 3x3/2, both
pools Caffe-style (ceil mode, no padding). Then ten Inception modules whose branches are
concatenated, a global average pool (adaptive, so any input size works; the prototxt's fixed 7x7
pool would not) and the classifier. Every conv has no bias and is followed by BN (eps 1e-5) and ReLU.

Stage ids follow the module names (inception_3x / 4x / 5x); sizes at 224 px input:

    stage  module  in map  out map  out C   SE hidden (r = 16)
    3      3a      28^2    28^2     256     16
    3      3b      28^2    28^2     320     20
    3      3c      28^2    14^2     576     36   stride 2
    4      4a      14^2    14^2     576     36
    4      4b      14^2    14^2     576     36
    4      4c      14^2    14^2     608     38
    4      4d      14^2    14^2     608     38
    4      4e      14^2     7^2    1056     66   stride 2
    5      5a       7^2     7^2    1024     64
    5      5b       7^2     7^2    1024     64

The strided modules 3c and 4e belong to the stage they are named after, so stage 3's last SE
block acts on a 14^2 map and stage 4's on a 7^2 one. In a strided module the stride sits on the
last 3x3 of each conv branch (pad 1) and the pool branch is a Caffe ceil-mode 3x3/2 max pool
without padding or projection. The 3x3/1 pool branches are average pools (pad 1, the padding
counted as Caffe does), except 5b's, which is a max pool.

SE: each module is one unit offering only the site ``branch``, its concatenated output (the
prototxt puts the SE block after every ``inception_*/concat``, 3c and 4e included, none in the
stem). So ``integration=standard`` is the only integration; the others fail at build time.
Blocks are named ``SE_{stage}_{k}``, k counting modules within the stage (3c = ``SE_3_3``).

The official model expects Caffe preprocessing (BGR, 0-255, mean 104/117/123, no std); trained
from scratch any consistent normalisation works.

Input sizes: in 3c and 4e the stride-2 convs (pad 1, floor) and Caffe's ceil-mode max pool agree
only on even maps (the Caffe model takes sides 32k - 1 .. 32k + 6 only). The pool branch keeps
Caffe's windows on even maps and pads by 1 on odd ones (:class:`StridedMaxPool`), which gives the
conv branches' size on any input (299 included) and changes nothing at 224.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ..se import SESite, SESpec
from .layers import Backbone, check_classes, conv_bn

# (name, 1x1, (3x3 reduce, 3x3), (double-3x3 reduce, 3x3, 3x3), pool kind, pool projection, stride);
# a strided module has no 1x1 branch and an unprojected max-pool branch (0 = absent).
MODULES: dict[int, list[tuple]] = {
    3: [
        ("3a", 64, (64, 64), (64, 96, 96), "avg", 32, 1),
        ("3b", 64, (64, 96), (64, 96, 96), "avg", 64, 1),
        ("3c", 0, (128, 160), (64, 96, 96), "max", 0, 2),
    ],
    4: [
        ("4a", 224, (64, 96), (96, 128, 128), "avg", 128, 1),
        ("4b", 192, (96, 128), (96, 128, 128), "avg", 128, 1),
        ("4c", 160, (128, 160), (128, 160, 160), "avg", 128, 1),
        ("4d", 96, (128, 192), (160, 192, 192), "avg", 128, 1),
        ("4e", 0, (128, 192), (192, 256, 256), "max", 0, 2),
    ],
    5: [
        ("5a", 352, (192, 320), (160, 224, 224), "avg", 128, 1),
        ("5b", 352, (192, 320), (192, 224, 224), "max", 128, 1),
    ],
}


def caffe_max_pool() -> nn.MaxPool2d:
    """Caffe's 3x3/2 max pool: ceil mode, no padding."""
    return nn.MaxPool2d(3, 2, 0, ceil_mode=True)


class StridedMaxPool(nn.Module):
    """The pool branch of 3c/4e: Caffe's 3x3/2 pool (ceil mode), unpadded along an even side and
    padded by 1 along an odd one, so that it always matches the stride-2 convs (pad 1): both give
    ceil(n / 2) per side."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 3, 2, (x.shape[-2] % 2, x.shape[-1] % 2), ceil_mode=True)


class InceptionModule(nn.Module):
    """Branches [1x1] [1x1 -> 3x3] [1x1 -> 3x3 -> 3x3] [pool (-> 1x1)], concatenated in that order."""

    def __init__(
        self,
        cin: int,
        c1: int,
        c3: tuple[int, int],
        cd: tuple[int, int, int],
        pool: str,
        proj: int,
        stride: int,
        se: SESpec | None,
        stage: int,
        index: int,
    ):
        super().__init__()
        cbr = lambda i, o, k, s=1: conv_bn(i, o, k, s, relu=True)  # noqa: E731 - conv + BN + ReLU
        branches = []
        if c1:
            branches.append(cbr(cin, c1, 1))
        branches.append(nn.Sequential(cbr(cin, c3[0], 1), cbr(c3[0], c3[1], 3, stride)))
        branches.append(nn.Sequential(cbr(cin, cd[0], 1), cbr(cd[0], cd[1], 3), cbr(cd[1], cd[2], 3, stride)))
        if stride > 1:
            pooling = StridedMaxPool()
        elif pool == "max":
            pooling = nn.MaxPool2d(3, 1, 1)
        else:
            pooling = nn.AvgPool2d(3, 1, 1, count_include_pad=True)
        branches.append(nn.Sequential(pooling, cbr(cin, proj, 1)) if proj else pooling)
        self.branches = nn.ModuleList(branches)
        self.out_channels = c1 + c3[1] + cd[2] + (proj or cin)
        self.se = SESite(se, dict(branch=self.out_channels), stage=stage, index=index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(torch.cat([b(x) for b in self.branches], 1), "branch")


class BNInception(Backbone):
    """stem -> inception_3x / 4x / 5x (stage ids 3, 4, 5) -> global average pool -> fc."""

    stage_ids = (3, 4, 5)

    def __init__(self, se: SESpec | None, num_classes: int):
        super().__init__()
        check_classes(num_classes)
        se_stages = se.resolve_stages(self.stage_ids) if se is not None else ()
        self.stem = nn.Sequential(
            conv_bn(3, 64, 7, 2, relu=True),
            caffe_max_pool(),
            conv_bn(64, 64, 1, relu=True),
            conv_bn(64, 192, 3, relu=True),
            caffe_max_pool(),
        )
        stages, cin = [], 192
        for sid, modules in MODULES.items():
            units = OrderedDict()
            for k, (label, c1, c3, cd, pool, proj, stride) in enumerate(modules, 1):
                unit = InceptionModule(cin, c1, c3, cd, pool, proj, stride, se if sid in se_stages else None, sid, k)
                units[f"inception_{label}"] = unit
                cin = unit.out_channels
            stages.append(nn.Sequential(units))
        self.finish(stages, cin, num_classes)


def bn_inception(*, se: SESpec | None = None, num_classes: int = 1000) -> BNInception:
    """BN-Inception at the prototxt's widths (no layout options)."""
    return BNInception(se, num_classes)
