"""ResNets (He et al. 2016; paper Table 1), ResNeXt 32x4d (Table 2) and SENet-154 (Table 8) for
ImageNet, and He et al.'s CIFAR ResNets.

Blocks know only where an SE block may sit: each residual unit owns one :class:`SESite` and
calls it at the five places it offers. Everything about squeeze and excitation lives in ``se/``.

Stage ids follow the SE paper: ImageNet conv2_x..conv5_x are stages 2..5 (56², 28², 14², 7² at
224 input). The CIFAR nets have three stages (32², 16², 8² at 32 input) with ids 2, 3, 4.

Two layout keys, both of which the official Caffe models fix (``backbones.md``):
``stride_style`` where a bottleneck's stride-2 sits (caffe: first 1x1, as in the SE-ResNet
prototxts; pytorch: the 3x3, as in ResNeXt, SENet-154, torchvision and timm) and ``stem_pool``
(ceil: Caffe's 3x3/2 max pool in ceil mode without padding; pad: PyTorch's padding 1). They give
the same map sizes at 224 px, so the counts agree; weights trained with one need it.
"""

from __future__ import annotations

from functools import partial
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..se import SESite, SESpec
from .layers import PAPER_SE, Backbone, Port, check_choice, check_classes, conv_bn, make_stages
from .sk import SKConv, SKSpec

STRIDE_STYLES = ("caffe", "pytorch")  # caffe: stride-2 in the first 1x1 conv; pytorch: in the 3x3
STEM_POOLS = ("ceil", "pad")  # ceil: Caffe 3x3/2 max pool, ceil mode, no padding; pad: padding 1
SKOption = Mapping[str, object] | SKSpec | None  # model.sk as a config gives it (SKSpec.from_option)


class PadShortcut(nn.Module):
    """Parameter-free shortcut (He et al.'s option A): subsample and zero-pad the new channels."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride, self.extra = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


def shortcut(kind: str, cin: int, cout: int, stride: int) -> nn.Module:
    """identity where shapes agree; else projection (1x1 conv + BN), projection3x3 (SENet-154:
    3x3/2 conv + BN where the stride is 2) or pad (option A)."""
    if cin == cout and stride == 1:
        return nn.Identity()
    if kind == "pad":
        return PadShortcut(cin, cout, stride)
    k = 3 if kind == "projection3x3" and stride > 1 else 1
    return conv_bn(cin, cout, k, stride)


def conv3x3_relu(cin: int, cout: int, stride: int, groups: int = 1, sk: SKSpec | None = None) -> nn.Module:
    """The unit's 3x3 conv + BN + ReLU, or with ``model.sk`` its selective-kernel variant (models/sk.py)."""
    return SKConv(cin, cout, stride, sk) if sk is not None else conv_bn(cin, cout, 3, stride, groups=groups, relu=True)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34 and the CIFAR ResNets); ``sk``: the first one selective-kernel (our
    choice: SKNet defines SK for bottlenecks only; this 3x3 is the one with the stride and the ReLU)."""

    expansion = 1

    def __init__(
        self,
        cin: int,
        planes: int,
        stride: int,
        se: SESpec | None,
        stage: int,
        index: int,
        shortcut_kind: str = "projection",
        stride_style: str = "caffe",
        sk: SKSpec | None = None,
    ):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = conv3x3_relu(cin, planes, stride, sk=sk)
        self.conv2 = conv_bn(planes, cout, 3)
        self.shortcut = shortcut(shortcut_kind, cin, cout, stride)
        self.se = SESite(
            se, dict(input=cin, mid=planes, branch=cout, identity=cout, output=cout), stage=stage, index=index
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.shortcut(x)
        out = self.conv1(self.se(x, "input"))
        out = self.conv2(self.se(out, "mid"))
        out = F.relu(self.se.add(out, identity), inplace=True)
        return self.se(out, "output")


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (``groups``) -> 1x1 expand to 4 x planes; the stride sits where
    ``stride_style`` says. ``reduce``/``mid`` scale planes to the widths of the first 1x1 and the
    3x3: (1, 1) ResNet, (2, 2) ResNeXt 32x4d, (2, 4) SENet-154 (64 groups). ``sk``: the 3x3 is a
    selective-kernel conv (SKNet's SK unit, models/sk.py)."""

    expansion = 4

    def __init__(
        self,
        cin: int,
        planes: int,
        stride: int,
        se: SESpec | None,
        stage: int,
        index: int,
        shortcut_kind: str = "projection",
        stride_style: str = "caffe",
        groups: int = 1,
        reduce: int = 1,
        mid: int = 1,
        sk: SKSpec | None = None,
    ):
        super().__init__()
        cout, w1, w2 = planes * self.expansion, planes * reduce, planes * mid
        s1, s3 = (stride, 1) if stride_style == "caffe" else (1, stride)
        self.conv1 = conv_bn(cin, w1, 1, s1)
        self.conv2 = conv3x3_relu(w1, w2, s3, groups, sk)
        self.conv3 = conv_bn(w2, cout, 1)
        self.shortcut = shortcut(shortcut_kind, cin, cout, stride)
        self.se = SESite(se, dict(input=cin, mid=w2, branch=cout, identity=cout, output=cout), stage=stage, index=index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.shortcut(x)
        out = F.relu(self.conv1(self.se(x, "input")), inplace=True)
        out = self.conv3(self.se(self.conv2(out), "mid"))
        out = F.relu(self.se.add(out, identity), inplace=True)
        return self.se(out, "output")


class ResNet(Backbone):
    """stem -> stages (ids ``stage_ids``) -> global average pool -> (dropout) -> fc."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        depths: Sequence[int],
        widths: Sequence[int],
        stem: nn.Module,
        stem_channels: int,
        stage_ids: Sequence[int],
        se: SESpec | None,
        num_classes: int,
        shortcut_kind: str = "projection",
        stride_style: str = "caffe",
        dropout: float = 0.0,
        block_options: dict[str, object] | None = None,
    ):
        super().__init__()
        check_choice("model.stride_style", stride_style, STRIDE_STYLES)
        check_classes(num_classes)
        self.stage_ids = tuple(stage_ids)
        self.stem = stem
        unit = partial(block, shortcut_kind=shortcut_kind, stride_style=stride_style, **(block_options or {}))
        stages, cin = make_stages(self.stage_ids, depths, widths, stem_channels, se, unit, block.expansion)
        self.finish(stages, cin, num_classes, dropout)


def max_pool(stem_pool: str) -> nn.MaxPool2d:
    """The stem's 3x3/2 max pool: Caffe's ceil mode without padding (``ceil``) or PyTorch's padding 1 (``pad``)."""
    check_choice("model.stem_pool", stem_pool, STEM_POOLS)
    return nn.MaxPool2d(3, 2, 0, ceil_mode=True) if stem_pool == "ceil" else nn.MaxPool2d(3, 2, 1)


def imagenet_resnet(
    block: type[BasicBlock | Bottleneck],
    depths: Sequence[int],
    *,
    se: SESpec | None = None,
    num_classes: int = 1000,
    stride_style: str = "caffe",
    stem_pool: str = "ceil",
    groups: int = 1,
    reduce: int = 1,
    mid: int = 1,
    sk: SKOption = None,
) -> ResNet:
    """The ImageNet ResNet / ResNeXt: 7x7/2 conv + 3x3/2 max pool, four stages with ids 2..5.
    ``sk``: selective-kernel units (``model.sk``, models/sk.py; SKNet-50 = resnext50_32x4d + SK)."""
    options = {"sk": SKSpec.from_option(sk)}
    if block is Bottleneck:
        options.update(groups=groups, reduce=reduce, mid=mid)
    stem = nn.Sequential(conv_bn(3, 64, 7, 2, relu=True), max_pool(stem_pool))
    return ResNet(
        block,
        depths,
        (64, 128, 256, 512),
        stem,
        64,
        (2, 3, 4, 5),
        se,
        num_classes,
        "projection",
        stride_style,
        block_options=options,
    )


def senet154(
    *,
    se: SESpec | None = None,
    num_classes: int = 1000,
    stride_style: str = "pytorch",
    stem_pool: str = "ceil",
    dropout: float = 0.2,
) -> ResNet:
    """SENet-154 (paper appendix, Table 8): a 64x4d ResNeXt-152 (3, 8, 36, 3) with half-width first
    1x1s, a three-conv 3x3 stem to 128 channels, 3x3/2 projections and dropout before the fc."""
    stem = nn.Sequential(
        conv_bn(3, 64, 3, 2, relu=True),
        conv_bn(64, 64, 3, relu=True),
        conv_bn(64, 128, 3, relu=True),
        max_pool(stem_pool),
    )
    return ResNet(
        Bottleneck,
        (3, 8, 36, 3),
        (64, 128, 256, 512),
        stem,
        128,
        (2, 3, 4, 5),
        se,
        num_classes,
        "projection3x3",
        stride_style,
        dropout,
        dict(groups=64, reduce=2, mid=4),
    )


def cifar_resnet(
    depth: int, *, se: SESpec | None = None, num_classes: int = 10, stride_style: str = "caffe", sk: SKOption = None
) -> ResNet:
    """He et al.'s 6n+2 CIFAR ResNet: 3x3 stem, three stages (ids 2, 3, 4) of widths 16/32/64,
    parameter-free shortcuts (option A). ``stride_style`` has no effect on basic blocks; ``sk``: as
    :func:`imagenet_resnet`'s."""
    n = (depth - 2) // 6
    stem = nn.Sequential(conv_bn(3, 16, 3, relu=True))
    options = {"sk": SKSpec.from_option(sk)}
    return ResNet(
        BasicBlock,
        (n, n, n),
        (16, 32, 64),
        stem,
        16,
        (2, 3, 4),
        se,
        num_classes,
        "pad",
        stride_style,
        block_options=options,
    )


# ---------------------------------------------------------------------------- weight ports
# source key -> our key, applied in order (weights.py). timm's ResNet / legacy SENet names and
# torchvision's ResNet names all follow the layerN.B.convK / bnK pattern.
_STAGES = [
    (r"^layer([1-4])\.", lambda m: f"stages.{int(m[1]) - 1}."),
    (r"\.conv(\d)\.", r".conv\1.0."),
    (r"\.bn(\d)\.", r".conv\1.1."),
    (r"\.downsample\.", ".shortcut."),
    (r"\.se(_module)?\.", ".se.block."),
]
RESNET_KEYS = [(r"^conv1\.", "stem.0.0."), (r"^bn1\.", "stem.0.1."), *_STAGES]
LEGACY_KEYS = [
    (r"^layer0\.conv(\d)\.", lambda m: f"stem.{int(m[1]) - 1}.0."),
    (r"^layer0\.bn(\d)\.", lambda m: f"stem.{int(m[1]) - 1}.1."),
    (r"^last_linear\.", "fc."),
    *_STAGES,
]

_TIMM = {"stride_style": "pytorch", "stem_pool": "pad"}  # timm's and torchvision's ResNet / ResNeXt
_CAFFE_RESNET = {"stride_style": "caffe", "stem_pool": "ceil"}  # the official SE-ResNet (timm legacy_*)
_CAFFE_RESNEXT = {"stride_style": "pytorch", "stem_pool": "ceil"}  # official SE-ResNeXt / SENet-154
_RESNEXT = {"groups": 32, "reduce": 2, "mid": 2}
PORTS = {
    **{
        f"{lib}:resnet{d}": Port(f"resnet{d}", RESNET_KEYS, _TIMM)
        for d in (18, 34, 50, 101, 152)
        for lib in ("timm", "torchvision")
    },
    **{f"timm:seresnet{d}": Port(f"resnet{d}", RESNET_KEYS, _TIMM, PAPER_SE) for d in (50, 101, 152)},
    # (not timm's legacy_seresnet18/34: no official model exists, and timm's blocks have a ReLU before the SE)
    **{f"timm:legacy_seresnet{d}": Port(f"resnet{d}", LEGACY_KEYS, _CAFFE_RESNET, PAPER_SE) for d in (50, 101, 152)},
    **{f"timm:resnext{d}_32x4d": Port(f"resnext{d}_32x4d", RESNET_KEYS, {**_TIMM, **_RESNEXT}) for d in (50, 101)},
    "torchvision:resnext50_32x4d": Port("resnext50_32x4d", RESNET_KEYS, {**_TIMM, **_RESNEXT}),
    **{
        f"timm:seresnext{d}_32x4d": Port(f"resnext{d}_32x4d", RESNET_KEYS, {**_TIMM, **_RESNEXT}, PAPER_SE)
        for d in (50, 101)
    },
    **{
        f"timm:legacy_seresnext{d}_32x4d": Port(
            f"resnext{d}_32x4d", LEGACY_KEYS, {**_CAFFE_RESNEXT, **_RESNEXT}, PAPER_SE
        )
        for d in (50, 101)
    },
    "timm:legacy_senet154": Port("senet154", LEGACY_KEYS, _CAFFE_RESNEXT, PAPER_SE),
}
