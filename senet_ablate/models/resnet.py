"""ResNets for ImageNet (He et al. 2016, paper Table 1) and CIFAR (He et al. 2016, Sec. 4.2).

Blocks know only where an SE block may sit: each residual unit owns one :class:`SESite` and
calls it at the five places it offers. Everything about squeeze and excitation lives in ``se.py``.

Stage ids follow the SE paper: ImageNet conv2_x..conv5_x are stages 2..5 (56², 28², 14², 7² at
224 input). The CIFAR nets have three stages (32², 16², 8² at 32 input) with ids 2, 3, 4.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..se import SESite, SESpec

STRIDE_STYLES = ("caffe", "pytorch")  # caffe: stride-2 in the first 1x1 conv; pytorch: in the 3x3


def conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False), nn.BatchNorm2d(cout))


class PadShortcut(nn.Module):
    """Parameter-free shortcut (He et al.'s option A): subsample and zero-pad the new channels."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride, self.extra = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


def shortcut(kind: str, cin: int, cout: int, stride: int) -> nn.Module:
    if cin == cout and stride == 1:
        return nn.Identity()
    return conv_bn(cin, cout, 1, stride) if kind == "projection" else PadShortcut(cin, cout, stride)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34 and the CIFAR ResNets)."""

    expansion = 1

    def __init__(self, cin, width, stride, se, name, shortcut_kind="projection", stride_style="caffe"):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = conv_bn(cin, width, 3, stride)
        self.conv2 = conv_bn(width, cout, 3)
        self.shortcut = shortcut(shortcut_kind, cin, cout, stride)
        self.se = SESite(se, dict(input=cin, mid=width, branch=cout, identity=cout, output=cout), name)

    def forward(self, x):
        identity = self.shortcut(x)
        out = F.relu(self.conv1(self.se(x, "input")), inplace=True)
        out = self.conv2(self.se(out, "mid"))
        out = F.relu(self.se(out, "branch") + self.se(identity, "identity"))
        return self.se(out, "output")


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (ResNet-50/101/152); the stride sits where ``stride_style`` says."""

    expansion = 4

    def __init__(self, cin, width, stride, se, name, shortcut_kind="projection", stride_style="caffe"):
        super().__init__()
        cout = width * self.expansion
        s1, s3 = (stride, 1) if stride_style == "caffe" else (1, stride)
        self.conv1 = conv_bn(cin, width, 1, s1)
        self.conv2 = conv_bn(width, width, 3, s3)
        self.conv3 = conv_bn(width, cout, 1)
        self.shortcut = shortcut(shortcut_kind, cin, cout, stride)
        self.se = SESite(se, dict(input=cin, mid=width, branch=cout, identity=cout, output=cout), name)

    def forward(self, x):
        identity = self.shortcut(x)
        out = F.relu(self.conv1(self.se(x, "input")), inplace=True)
        out = F.relu(self.conv2(out), inplace=True)
        out = self.conv3(self.se(out, "mid"))
        out = F.relu(self.se(out, "branch") + self.se(identity, "identity"))
        return self.se(out, "output")


class ResNet(nn.Module):
    """stem -> stages (ids ``stage_ids``) -> global average pool -> fc."""

    def __init__(
        self,
        block: type[nn.Module],
        depths: Sequence[int],
        widths: Sequence[int],
        stem: nn.Module,
        stem_channels: int,
        stage_ids: Sequence[int],
        se: SESpec | None,
        num_classes: int,
        shortcut_kind: str = "projection",
        stride_style: str = "caffe",
    ):
        super().__init__()
        if stride_style not in STRIDE_STYLES:
            raise ConfigError(f"model.stride_style={stride_style!r} is not valid; valid values: {', '.join(STRIDE_STYLES)}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"model.num_classes={num_classes!r} must be a positive integer")
        self.stage_ids = tuple(stage_ids)
        se_stages = se.resolve_stages(self.stage_ids) if se is not None else ()
        self.stem = stem
        stages, cin = [], stem_channels
        for i, (sid, depth, width) in enumerate(zip(stage_ids, depths, widths)):
            blocks = []
            for b in range(depth):
                stride = 2 if (b == 0 and i > 0) else 1
                blocks.append(
                    block(cin, width, stride, se if sid in se_stages else None, f"SE_{sid}_{b + 1}",
                          shortcut_kind, stride_style)
                )
                cin = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, num_classes)
        if not self.fc.weight.is_meta:  # a meta model (validation, counting) has no values to set
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation (the paper's [66]) for convs; BN to identity."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def imagenet_resnet(block, depths, *, se=None, num_classes=1000, stride_style="caffe") -> ResNet:
    """The ImageNet ResNet: 7x7/2 conv + 3x3/2 max pool, four stages with ids 2..5."""
    stem = nn.Sequential(conv_bn(3, 64, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
    return ResNet(block, depths, (64, 128, 256, 512), stem, 64, (2, 3, 4, 5), se, num_classes,
                  "projection", stride_style)


def cifar_resnet(depth: int, *, se=None, num_classes=10, stride_style="caffe") -> ResNet:
    """He et al.'s 6n+2 CIFAR ResNet: 3x3 stem, three stages (ids 2, 3, 4) of widths 16/32/64,
    parameter-free shortcuts (option A). ``stride_style`` has no effect on basic blocks."""
    n = (depth - 2) // 6
    stem = nn.Sequential(conv_bn(3, 16, 3), nn.ReLU(inplace=True))
    return ResNet(BasicBlock, (n, n, n), (16, 32, 64), stem, 16, (2, 3, 4), se, num_classes,
                  "pad", stride_style)
