"""Inception-ResNet-v2 (Szegedy et al. 2017; SE paper Table 2, 299 px), in the TF-slim layout of the
released checkpoints, which timm ``inception_resnet_v2`` and Cadene ``inceptionresnetv2`` also use
(``backbones.md`` Sec. 5): 10 x Block35, 20 x Block17, 10 x Block8, not the 5/10/5 of the paper's figure.

Every conv is conv -> BN (eps 1e-3) -> ReLU, "valid" unless it keeps the grid ("same" at stride 1 is a
symmetric k // 2 pad). Each residual block concatenates its branches, maps them back to the block width
with a linear 1x1 conv (bias, no BN, no ReLU) and adds ``scale`` x that to its input, then ReLU (the last
Block8: scale 1.0, no ReLU). Head: 1x1 conv to 1536, global average pool, dropout (TF keep 0.8), fc.

Stage ids (grids at 299 px), named like the ImageNet ResNet stages of the same output stride:

    stem      299 -> 35x35x192 (stride 8)        no SE
    stage 3   Mixed_5b (-> 320) + 10 x Block35   35x35, C = 320,  stride 8,  SE_3_1..SE_3_10
    stage 4   Mixed_6a (-> 1088) + 20 x Block17  17x17, C = 1088, stride 16, SE_4_1..SE_4_20
    stage 5   Mixed_7a (-> 2080) + 10 x Block8   8x8,   C = 2080, stride 32, SE_5_1..SE_5_10

SE placement is a documented choice: no official SE-Inception-ResNet-v2 exists (hujie-frank/SENet
GitHub #88), and the paper's Sec. 3.3 only says "similar schemes". Following the residual units, the
``standard`` integration puts SE on each residual block's linear 1x1 output, *before* the residual
scale and the add: 40 sites, hidden widths 320 // 16 = 20, 1088 // 16 = 68, 2080 // 16 = 130. The
order matters: SE(0.17 u) != 0.17 SE(u), since the FCs see the scaled descriptor. ``pre`` (block
input, on the branch path only), ``identity`` (the shortcut) and ``post`` (after the add and its ReLU)
are offered too; ``conv3x3`` is not (a block has several 3x3s, none of them "the" one). The reduction
modules Mixed_5b/6a/7a carry no SE. A block's residual add is ``u * scale + x``, as in timm, so that
ported weights give the same logits.

Complexity: at 299 px this layout costs 13.16 GMACs against the paper's 11.75 (not reproducible, see
``backbones.md`` Sec. 1 and 5); we keep 299 and report the gap.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..se import SESite, SESpec
from .layers import Backbone, Port, check_classes, conv_bn

EPS = 1e-3  # TF-slim's BN epsilon
STAGE_IDS = (3, 4, 5)


def unit(
    cin: int, cout: int, k: int | tuple[int, int], stride: int = 1, padding: int | tuple[int, int] | None = None
) -> nn.Sequential:
    """conv -> BN(eps 1e-3) -> ReLU; ``padding=None`` keeps the grid (stride 1, "same")."""
    return conv_bn(cin, cout, k, stride, padding, relu=True, eps=EPS)


def path(*layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(*layers)


class Mixed(nn.Module):
    """Parallel paths whose outputs are concatenated along channels (no SE)."""

    def __init__(self, paths: Sequence[nn.Module]):
        super().__init__()
        self.branches = nn.ModuleList(paths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


class ResidualInception(nn.Module):
    """Parallel conv paths -> concat -> linear 1x1 (bias) back to ``channels`` -> x + scale * that (-> ReLU).

    SE sites: input (the branch input), branch (the linear 1x1 output, before the scale), identity
    (the shortcut x) and output (after the add and its ReLU)."""

    def __init__(
        self,
        channels: int,
        paths: Sequence[nn.Module],
        width: int,
        scale: float,
        relu: bool,
        se: SESpec | None,
        stage: int,
        index: int,
    ):
        super().__init__()
        self.branches = nn.ModuleList(paths)
        self.linear = nn.Conv2d(width, channels, 1, bias=True)
        self.scale, self.relu = scale, relu
        self.se = SESite(
            se, dict(input=channels, branch=channels, identity=channels, output=channels), stage=stage, index=index
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.se(x, "input")
        u = self.linear(torch.cat([b(u) for b in self.branches], 1))
        out = self.se(u, "branch") * self.scale + self.se(x, "identity")
        if self.relu:
            out = F.relu(out)
        return self.se(out, "output")

    def extra_repr(self) -> str:
        return f"scale={self.scale}, relu={self.relu}"


def block35(se: SESpec | None, stage: int, index: int, scale: float = 0.17) -> ResidualInception:
    """35x35 block: [1x1 32 | 1x1 32 -> 3x3 32 | 1x1 32 -> 3x3 48 -> 3x3 64] = 128 -> 320."""
    return ResidualInception(
        320,
        [
            path(unit(320, 32, 1)),
            path(unit(320, 32, 1), unit(32, 32, 3)),
            path(unit(320, 32, 1), unit(32, 48, 3), unit(48, 64, 3)),
        ],
        128,
        scale,
        True,
        se,
        stage,
        index,
    )


def block17(se: SESpec | None, stage: int, index: int, scale: float = 0.10) -> ResidualInception:
    """17x17 block: [1x1 192 | 1x1 128 -> 1x7 160 -> 7x1 192] = 384 -> 1088."""
    return ResidualInception(
        1088,
        [
            path(unit(1088, 192, 1)),
            path(unit(1088, 128, 1), unit(128, 160, (1, 7)), unit(160, 192, (7, 1))),
        ],
        384,
        scale,
        True,
        se,
        stage,
        index,
    )


def block8(se: SESpec | None, stage: int, index: int, scale: float = 0.20, relu: bool = True) -> ResidualInception:
    """8x8 block: [1x1 192 | 1x1 192 -> 1x3 224 -> 3x1 256] = 448 -> 2080."""
    return ResidualInception(
        2080,
        [
            path(unit(2080, 192, 1)),
            path(unit(2080, 192, 1), unit(192, 224, (1, 3)), unit(224, 256, (3, 1))),
        ],
        448,
        scale,
        relu,
        se,
        stage,
        index,
    )


def mixed_5b() -> Mixed:
    """35x35x192 -> 320: [1x1 96 | 1x1 48 -> 5x5 64 | 1x1 64 -> 3x3 96 -> 3x3 96 | avg 3x3 -> 1x1 64]."""
    return Mixed(
        [
            path(unit(192, 96, 1)),
            path(unit(192, 48, 1), unit(48, 64, 5)),
            path(unit(192, 64, 1), unit(64, 96, 3), unit(96, 96, 3)),
            path(nn.AvgPool2d(3, 1, 1, count_include_pad=False), unit(192, 64, 1)),  # TF "same": pads not averaged
        ]
    )


def mixed_6a() -> Mixed:
    """35 -> 17, 320 -> 1088: [3x3/2 384 | 1x1 256 -> 3x3 256 -> 3x3/2 384 | max 3x3/2]."""
    return Mixed(
        [
            path(unit(320, 384, 3, 2, 0)),
            path(unit(320, 256, 1), unit(256, 256, 3), unit(256, 384, 3, 2, 0)),
            path(nn.MaxPool2d(3, 2)),
        ]
    )


def mixed_7a() -> Mixed:
    """17 -> 8, 1088 -> 2080: [1x1 256 -> 3x3/2 384 | 1x1 256 -> 3x3/2 288 | 1x1 256 -> 3x3 288 -> 3x3/2 320 | max]."""
    return Mixed(
        [
            path(unit(1088, 256, 1), unit(256, 384, 3, 2, 0)),
            path(unit(1088, 256, 1), unit(256, 288, 3, 2, 0)),
            path(unit(1088, 256, 1), unit(256, 288, 3), unit(288, 320, 3, 2, 0)),
            path(nn.MaxPool2d(3, 2)),
        ]
    )


class InceptionResNetV2(Backbone):
    """stem -> stages 3, 4, 5 (each: a Mixed module, then residual blocks) -> 1x1 conv 1536 -> pool -> fc."""

    def __init__(self, se: SESpec | None = None, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        check_classes(num_classes)
        self.stage_ids = STAGE_IDS
        on = se.resolve_stages(STAGE_IDS) if se is not None else ()

        def spec(sid: int) -> SESpec | None:
            return se if sid in on else None

        self.stem = nn.Sequential(
            unit(3, 32, 3, 2, 0),  # 149
            unit(32, 32, 3, 1, 0),  # 147
            unit(32, 64, 3),  # 147, "same"
            nn.MaxPool2d(3, 2),  # 73
            unit(64, 80, 1),
            unit(80, 192, 3, 1, 0),  # 71
            nn.MaxPool2d(3, 2),  # 35
        )
        stages = [
            nn.Sequential(mixed_5b(), *[block35(spec(3), 3, k) for k in range(1, 11)]),
            nn.Sequential(mixed_6a(), *[block17(spec(4), 4, k) for k in range(1, 21)]),
            nn.Sequential(
                mixed_7a(),
                *[block8(spec(5), 5, k) for k in range(1, 10)],
                block8(spec(5), 5, 10, scale=1.0, relu=False),
            ),
        ]
        self.finish(stages, 1536, num_classes, dropout, head=unit(2080, 1536, 1))


def inception_resnet_v2(
    *, se: SESpec | None = None, num_classes: int = 1000, dropout: float = 0.2
) -> InceptionResNetV2:
    """Inception-ResNet-v2 at 299 px; ``dropout`` before the fc (TF-slim keep 0.8 -> p = 0.2)."""
    return InceptionResNetV2(se, num_classes, dropout)


# ---------------------------------------------------------------------------- weight ports
# timm (Cadene's port of the TF-slim checkpoint): conv2d_1a .. conv2d_4a = stem, mixed_5b/6a/7a and
# repeat/repeat_1/repeat_2/block8 = the stages, conv2d_7b = head, classif = fc. A branch is either a
# bare ConvNormAct (branchN.conv / branchN.bn) or a Sequential of them (branchN.K.conv); the blocks'
# linear 1x1 is ``conv2d``.
_STEM = {"1a": 0, "2a": 1, "2b": 2, "3b": 4, "4a": 5}
_REPEATS = {"": 0, "_1": 1, "_2": 2}
IR_V2_KEYS = (
    (r"^conv2d_(1a|2a|2b|3b|4a)\.", lambda m: f"stem.{_STEM[m[1]]}."),
    (r"^mixed_(5b|6a|7a)\.", lambda m: f"stages.{'567'.index(m[1][0])}.0."),
    (r"^repeat(|_1|_2)\.(\d+)\.", lambda m: f"stages.{_REPEATS[m[1]]}.{int(m[2]) + 1}."),
    (r"^block8\.", "stages.2.10."),
    (r"^conv2d_7b\.", "head."),
    (r"^classif\.", "fc."),
    (r"\.branch(\d)\.(conv|bn)\.", r".branches.\1.0.\2."),  # a bare unit is path(unit) here
    (r"\.branch(\d)\.", r".branches.\1."),
    (r"\.conv2d\.", ".linear."),
    (r"\.conv\.", ".0."),
    (r"\.bn\.", ".1."),
)
PORTS = {
    "timm:inception_resnet_v2": Port("inception_resnet_v2", IR_V2_KEYS),
}
