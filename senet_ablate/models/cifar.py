"""The CIFAR backbones of paper Tables 4 and 5: pre-activation ResNet-110 and ResNet-164 (He et
al. 2016b, Identity Mappings), WRN-16-8 (Zagoruyko & Komodakis), Shake-Shake 26 2x96d and
Shake-Even 29 2x4x64d (Gastaldi). Layouts: ``../shared/paper/backbones.md`` section 10.

Stage ids 2, 3, 4 (32², 16², 8² at 32 px), as for the other CIFAR nets. SE sits on the residual
branch before the addition (§3.3). For the Shake nets, whose units have two branches, that is a
documented choice (``model.se_on``): ``branch`` (default) puts one SE block on each branch after its
last BN, before the shake mixing, so the descriptor never depends on the mixing coefficients;
``sum`` puts one on the mixed sum, before the shortcut is added. Either way ``pre`` acts on the
unit's input (both branches read it), ``conv3x3`` after each branch's first 3x3 conv.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..se import INTEGRATIONS, SESite, SESpec, SiteMissing, integrations_for
from .layers import Backbone, check_choice, check_classes, conv_bn, make_stages
from .resnet import PadShortcut

SHORTCUTS = ("projection", "pad")  # 1x1 conv from the pre-activated input | He et al.'s option A
SE_ON = ("branch", "sum")  # Shake nets: SE on each branch, or on the mixed sum
SHAKE_BACKWARD = ("shake", "even")  # backward coefficient: a fresh random one per image, or 0.5


def preact(c: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))


# ---------------------------------------------------------------------------- pre-activation nets
class PreActUnit(nn.Module):
    """BN -> ReLU -> conv, repeated: two 3x3 convs (basic: ResNet-110, WRN) or 1x1, 3x3, 1x1 to
    ``cout`` with width ``cout // 4`` (bottleneck: ResNet-164). The stride sits in the first conv.
    No activation after the add. A shortcut that changes the shape, and the net's first unit, read
    the pre-activated input (He et al. 2016b, appendix). SE-PRE acts on the branch input after the
    unit's BN-ReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        stride: int,
        se: SESpec | None,
        stage: int,
        index: int,
        bottleneck: bool = False,
        shortcut_kind: str = "projection",
        activated_shortcut: bool = False,
    ):
        super().__init__()
        width = cout // 4 if bottleneck else cout
        kernels, widths = ((1, 3, 1), (width, width, cout)) if bottleneck else ((3, 3), (cout, cout))
        self.mid = kernels.index(3)  # the first 3x3: SE 3x3 ("mid") follows its BN-ReLU
        self.pre = preact(cin)
        ins = (cin, *widths[:-1])
        self.convs = nn.ModuleList(
            nn.Conv2d(i, o, k, stride if j == 0 else 1, k // 2, bias=False)
            for j, (i, o, k) in enumerate(zip(ins, widths, kernels))
        )
        self.acts = nn.ModuleList(preact(w) for w in widths[:-1])
        if cin == cout and stride == 1:
            self.shortcut = nn.Identity()
        elif shortcut_kind == "pad":
            self.shortcut = PadShortcut(cin, cout, stride)
        else:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)
        self.activated_shortcut = activated_shortcut or not isinstance(self.shortcut, nn.Identity)
        self.se = SESite(
            se, dict(input=cin, mid=width, branch=cout, identity=cout, output=cout), stage=stage, index=index
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.pre(x)
        identity = self.shortcut(a if self.activated_shortcut else x)
        out = self.convs[0](self.se(a, "input"))
        for j, conv in enumerate(self.convs[1:]):
            out = self.acts[j](out)
            out = conv(self.se(out, "mid") if j == self.mid else out)
        return self.se(self.se.add(out, identity), "output")


class PreActNet(Backbone):
    """3x3 conv stem -> three stages of pre-activation units (ids 2, 3, 4) -> BN-ReLU -> pool -> fc."""

    stage_ids = (2, 3, 4)

    def __init__(
        self,
        depth: int,
        widths: Sequence[int],
        stem: int,
        se: SESpec | None,
        num_classes: int,
        bottleneck: bool,
        shortcut: str,
    ):
        super().__init__()
        check_choice("model.shortcut", shortcut, SHORTCUTS)
        check_classes(num_classes)
        self.stem = nn.Conv2d(3, stem, 3, 1, 1, bias=False)
        first = (self.stage_ids[0], 1)  # the net's first unit: its shortcut reads the pre-activated input

        def unit(cin: int, cout: int, stride: int, spec: SESpec | None, stage: int, index: int) -> PreActUnit:
            return PreActUnit(
                cin, cout, stride, spec, stage, index, bottleneck, shortcut, activated_shortcut=(stage, index) == first
            )

        stages, cin = make_stages(self.stage_ids, (depth,) * len(widths), widths, stem, se, unit)
        self.finish(stages, cin, num_classes, head=preact(cin))


def preact_resnet110(*, se: SESpec | None = None, num_classes: int = 10, shortcut: str = "projection") -> PreActNet:
    """Pre-activation ResNet-110 (Tables 4/5's 6.37 / 26.88): 18 basic units a stage, widths 16/32/64.
    The shortcut type is not stated in the paper: ``projection`` (default) or ``pad`` (option A)."""
    return PreActNet(18, (16, 32, 64), 16, se, num_classes, bottleneck=False, shortcut=shortcut)


def preact_resnet164(*, se: SESpec | None = None, num_classes: int = 10) -> PreActNet:
    """Pre-activation ResNet-164: 18 bottleneck units a stage, outputs 64/128/256, 1x1 projections."""
    return PreActNet(18, (64, 128, 256), 16, se, num_classes, bottleneck=True, shortcut="projection")


def wrn16_8(*, se: SESpec | None = None, num_classes: int = 10) -> PreActNet:
    """WRN-16-8: 2 pre-activation basic units a stage, widths 128/256/512, 1x1 projections, no dropout."""
    return PreActNet(2, (128, 256, 512), 16, se, num_classes, bottleneck=False, shortcut="projection")


# ---------------------------------------------------------------------------- Shake-Shake
class _Shake(torch.autograd.Function):
    """alpha * a + (1 - alpha) * b forward; the gradient split by beta, not alpha, backward."""

    @staticmethod
    def forward(ctx, a, b, alpha, beta):
        ctx.save_for_backward(beta)
        return torch.lerp(b, a, alpha)

    @staticmethod
    def backward(ctx, grad):
        (beta,) = ctx.saved_tensors
        return grad * beta, grad * (1 - beta), None, None


def shake(a: torch.Tensor, b: torch.Tensor, training: bool, backward: str = "shake") -> torch.Tensor:
    """Shake-Shake mixing of two branches, a coefficient per image (Gastaldi 2017): random alpha
    forward, random beta (``shake``) or 0.5 (``even``) backward, from torch's RNG; 0.5 each at eval."""
    if not training:
        return 0.5 * (a + b)
    shape = (a.shape[0], 1, 1, 1)
    alpha = torch.rand(shape, device=a.device, dtype=a.dtype)
    beta = torch.rand(shape, device=a.device, dtype=a.dtype) if backward == "shake" else torch.full_like(alpha, 0.5)
    return _Shake.apply(a, b, alpha, beta)


class ShakeBranch(nn.Module):
    """One branch of a Shake unit: its convs, with an SE site after the first 3x3 (``mid``) and,
    with ``model.se_on=branch``, at its end (``branch``)."""

    def __init__(
        self,
        layers: Sequence[nn.Module],
        mid_after: int,
        widths: dict[str, int],
        se: SESpec | None,
        stage: int,
        index: int,
        suffix: str,
    ):
        super().__init__()
        self.layers, self.mid_after = nn.ModuleList(layers), mid_after
        self.se = SESite(se, widths, stage=stage, index=index, suffix=suffix, required=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for j, layer in enumerate(self.layers):
            x = layer(x)
            if j == self.mid_after:
                x = self.se(x, "mid")
        return self.se(x, "branch")


class ShiftedShortcut(nn.Module):
    """Shake-Shake 26's shortcut where the shape changes: ReLU, then two strided 1x1 convs to half
    the channels each, the second on the map shifted by one pixel (down and right, as the Torch
    code pads top/left and crops bottom/right); their channels concatenated, then BN."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        self.a, self.b = (nn.Conv2d(cin, cout // 2, 1, bias=False) for _ in range(2))
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        s = self.stride
        shifted = F.pad(x, (1, -1, 1, -1))
        return self.bn(torch.cat([self.a(x[:, :, ::s, ::s]), self.b(shifted[:, :, ::s, ::s])], 1))


class ShakeUnit(nn.Module):
    """Two branches mixed by :func:`shake`, added to the shortcut. ``even29``: Shake-Even's ResNeXt
    branches (1x1, grouped 3x3 with the stride, 1x1; ReLU after the add); otherwise Shake-Shake 26's
    (ReLU-conv-BN twice; no ReLU after the add)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        stride: int,
        se: SESpec | None,
        stage: int,
        index: int,
        even29: bool = False,
        se_on: str = "branch",
        backward: str = "shake",
    ):
        super().__init__()
        self.backward, self.relu_out = backward, even29
        per_branch = dict(mid=cout)  # the sites each branch offers
        if se_on == "branch":
            per_branch["branch"] = cout

        def layers() -> list[nn.Module]:  # the first 3x3 (and its BN-ReLU) is layer 1 in both kinds
            if even29:
                return [
                    conv_bn(cin, cout, 1, relu=True),
                    conv_bn(cout, cout, 3, stride, groups=4, relu=True),
                    conv_bn(cout, cout, 1),
                ]
            return [nn.ReLU(), conv_bn(cin, cout, 3, stride, relu=True), conv_bn(cout, cout, 3)]

        self.branches = nn.ModuleList(ShakeBranch(layers(), 1, per_branch, se, stage, index, tag) for tag in "ab")
        if cin == cout and stride == 1:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = conv_bn(cin, cout, 1, stride) if even29 else ShiftedShortcut(cin, cout, stride)
        unit = dict(input=cin, identity=cout, output=cout)
        if se_on == "sum":
            unit["branch"] = cout
        self.se = SESite(se, unit, stage=stage, index=index, required=False)
        if se is not None and INTEGRATIONS[se.integration] not in {*unit, *per_branch}:
            raise SiteMissing(se.integration, self.se.name, integrations_for({*unit, *per_branch}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.se(x, "input")
        a, b = (branch(u) for branch in self.branches)
        out = self.se.add(shake(a, b, self.training, self.backward), self.shortcut(x))
        return self.se(F.relu(out, inplace=True) if self.relu_out else out, "output")


class ShakeNet(Backbone):
    """Stem -> three stages of Shake units (ids 2, 3, 4) -> (ReLU) -> pool -> fc."""

    stage_ids = (2, 3, 4)

    def __init__(
        self,
        depth: int,
        widths: Sequence[int],
        se: SESpec | None,
        num_classes: int,
        even29: bool,
        se_on: str,
        backward: str,
    ):
        super().__init__()
        check_choice("model.se_on", se_on, SE_ON)
        check_choice("model.shake_backward", backward, SHAKE_BACKWARD)
        check_classes(num_classes)
        stem = 64 if even29 else 16
        self.stem = conv_bn(3, stem, 3, relu=even29)  # Shake-Shake 26: no ReLU after the stem
        unit = partial(ShakeUnit, even29=even29, se_on=se_on, backward=backward)
        stages, cin = make_stages(self.stage_ids, (depth,) * len(widths), widths, stem, se, unit)
        self.finish(stages, cin, num_classes, head=nn.Identity() if even29 else nn.ReLU())


def shake_shake26_2x96d(
    *, se: SESpec | None = None, num_classes: int = 10, se_on: str = "branch", shake_backward: str = "shake"
) -> ShakeNet:
    """Shake-Shake 26 2x96d (Table 4, with Cutout): 4 units a stage, widths 96/192/384."""
    return ShakeNet(4, (96, 192, 384), se, num_classes, even29=False, se_on=se_on, backward=shake_backward)


def shake_even29_2x4x64d(
    *, se: SESpec | None = None, num_classes: int = 100, se_on: str = "branch", shake_backward: str = "even"
) -> ShakeNet:
    """Shake-Even 29 2x4x64d (Table 5): 3 ResNeXt units a stage (4 groups), widths 256/512/1024,
    forward shake, backward even (beta = 0.5)."""
    return ShakeNet(3, (256, 512, 1024), se, num_classes, even29=True, se_on=se_on, backward=shake_backward)
