"""ShuffleNet v1 1x, g = 3 (Zhang et al. 2018, Table 1), the SE paper's Table 3 mobile backbone
(``backbones.md`` Sec. 7; layout as in megvii's ShuffleNet-Series ``ShuffleNetV1``).

Stem: conv 3x3/2, 24 + BN + ReLU -> max pool 3x3/2 pad 1. Three stages of shuffle units, then a
global average pool (adaptive; megvii's is a fixed 7x7) and the classifier. Stage ids are the
ShuffleNet paper's; sizes at 224 px input:

    stage  map    units  out C  bottleneck  branch C (first unit / others)  SE hidden (r = 16)
    2      28^2   4      240    60          216 / 240                        13 / 15
    3      14^2   8      480    120         240 / 480                        15 / 30
    4       7^2   4      960    240         480 / 960                        30 / 60

Unit: GConv 1x1 (g = 3) -> BN -> ReLU -> channel shuffle -> depthwise 3x3 (stride s) -> BN (no
ReLU) -> GConv 1x1 (g = 3) -> BN. Stride 1: add the input, then ReLU. Stride 2 (each stage's first
unit): the branch outputs out - in channels, the shortcut is an average pool 3x3/2 pad 1 (padding
counted, as PyTorch's and megvii's default), and the output is ReLU(concat[shortcut, branch]).
The first 1x1 of stage 2's first unit is not grouped (24 input channels; ShuffleNet paper Sec. 3.3);
that unit still shuffles, as megvii's does (a fixed permutation after an ungrouped conv).

Documented choices (no official SE-ShuffleNet exists):

- Channel shuffle follows the ShuffleNet paper: reshape the channels to (g, C/g), transpose,
  flatten, so channel j of group i goes to position j * g + i. megvii reshapes to (C/g, g), the
  inverse permutation (and shuffles after the depthwise conv, which is equivalent); this only
  matters when porting megvii weights.
- SE on the branch after the second GConv's BN, before the add / concat (``integration=standard``;
  SE paper Sec. 3.3 "similar schemes"): 16 blocks, hidden floor(C/16). The unit also offers
  ``input`` (the branch input), ``mid`` (after the depthwise conv + BN), ``identity`` (the
  shortcut: the input, or its average pool in a stride-2 unit) and ``output`` (after the
  add / concat and ReLU). Blocks are named ``SE_{stage}_{k}``.
- The classifier has a bias (megvii's has none: 1,000 parameters fewer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..se import SESite, SESpec
from .layers import Backbone, check_classes, conv_bn

GROUPS = 3
STAGES = ((2, 4, 240), (3, 8, 480), (4, 4, 960))  # (stage id, units, output channels) for g = 3, 1x
STEM_CHANNELS = 24


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """The ShuffleNet paper's shuffle: channels viewed as (groups, C / groups), transposed, flattened."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """One ShuffleNet v1 unit (stride 1: residual add; stride 2: concat with a pooled shortcut)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        stride: int,
        se: SESpec | None,
        stage: int,
        index: int,
        groups: int = GROUPS,
        group_first: bool = True,
    ):
        super().__init__()
        mid = cout // 4
        branch = cout - cin if stride == 2 else cout
        self.stride, self.groups = stride, groups
        self.conv1 = conv_bn(cin, mid, 1, groups=groups if group_first else 1, relu=True)
        self.conv2 = conv_bn(mid, mid, 3, stride, groups=mid)  # depthwise, no ReLU
        self.conv3 = conv_bn(mid, branch, 1, groups=groups)
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()
        self.se = SESite(
            se, dict(input=cin, mid=mid, branch=branch, identity=cin, output=cout), stage=stage, index=index
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.shortcut(x)
        out = channel_shuffle(self.conv1(self.se(x, "input")), self.groups)
        out = self.conv3(self.se(self.conv2(out), "mid"))
        if self.stride == 1:
            out = self.se.add(out, identity)
        else:
            out = torch.cat([self.se(identity, "identity"), self.se(out, "branch")], 1)
        return self.se(F.relu(out, inplace=True), "output")


class ShuffleNetV1(Backbone):
    """stem -> stages 2, 3, 4 of shuffle units -> global average pool -> fc."""

    stage_ids = tuple(s for s, _, _ in STAGES)

    def __init__(self, se: SESpec | None, num_classes: int):
        super().__init__()
        check_classes(num_classes)
        se_stages = se.resolve_stages(self.stage_ids) if se is not None else ()
        self.stem = nn.Sequential(conv_bn(3, STEM_CHANNELS, 3, 2, relu=True), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], STEM_CHANNELS
        for i, (sid, units, cout) in enumerate(STAGES):
            blocks = []
            for k in range(units):
                blocks.append(
                    ShuffleUnit(
                        cin,
                        cout,
                        2 if k == 0 else 1,
                        se if sid in se_stages else None,
                        sid,
                        k + 1,
                        group_first=not (i == 0 and k == 0),
                    )
                )
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.finish(stages, cin, num_classes)


def shufflenet_v1_g3(*, se: SESpec | None = None, num_classes: int = 1000) -> ShuffleNetV1:
    """ShuffleNet v1 1x with 3 groups (no layout options)."""
    return ShuffleNetV1(se, num_classes)
