"""Inverted-residual (MBConv) nets, where most SE blocks run today: MobileNetV2 (Sandler et al. 2018,
Table 2), MobileNetV3-Large/Small (Howard et al. 2019, Tables 1 and 2) and EfficientNet-B0..B3 (Tan & Le
2019, Table 1 and its width/depth multipliers).

A unit (:class:`InvertedResidual`): [1x1 expansion + BN + act] -> kxk depthwise (stride s) + BN + act ->
1x1 projection + BN (linear), with the identity added where stride is 1 and the widths agree. Its SE
sites (``se/site.py``; the integration that picks each):

    input     before the expansion (pre)          mid       after the depthwise conv + BN + act
    branch    the projection output, before the   identity  the identity path
              add (standard: the SE paper's place) output    after the add (post)

identity and post exist only in the units with a residual (stride 1, equal widths): with them, the
other units carry no block, and a stage listed in se.stages without any residual unit fails at build.

The published nets put SE at ``mid`` (conv3x3: the analogue of Table 15's SE 3x3) and size it from the
unit's input (EfficientNet) or the expanded channels (MobileNetV3): ``PUBLISHED_SE`` holds each net's,
which its ``conf/model/*.yaml`` repeats. Stage ids are by output stride (log2): 1 = 112², 2 = 56²,
3 = 28², 4 = 14², 5 = 7² at 224 input; a unit's index counts from 1 within its stage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..se import SESite, SESpec
from ..se.spec import make_divisible
from .layers import Backbone, check_choice, check_classes, conv_bn


@dataclass(frozen=True)
class Unit:
    """One inverted residual of an architecture table: widths, depthwise kernel and stride, its
    activation, whether the published net has SE in it, and where it sits (stage id, index from 1)."""

    cin: int
    mid: int
    cout: int
    kernel: int
    stride: int
    act: type[nn.Module]
    se: bool = True
    stage: int = 0
    index: int = 0


def channels(v: float) -> int:
    """A width multiplier's channel count: the MobileNet/EfficientNet code bases' rounding to 8."""
    return make_divisible(v, 8, 0.9)


def placed(units: list[Unit], stem_stride: int = 2) -> list[Unit]:
    """``units`` with their stage ids (log2 of the output stride) and indices within the stage."""
    out, stride, last, index = [], stem_stride, None, 0
    for u in units:
        stride *= u.stride
        stage = int(math.log2(stride))
        index = index + 1 if stage == last else 1
        out.append(replace(u, stage=stage, index=index))
        last = stage
    return out


class InvertedResidual(nn.Module):
    """expand (if ``mid != cin``) -> depthwise -> project, with its SE sites (module docstring)."""

    def __init__(self, u: Unit, se: SESpec | None, bn_eps: float = 1e-5):
        super().__init__()
        bn = partial(conv_bn, eps=bn_eps)
        self.residual = u.stride == 1 and u.cin == u.cout
        self.expand = nn.Sequential(*bn(u.cin, u.mid, 1), u.act(inplace=True)) if u.mid != u.cin else None
        self.dw = nn.Sequential(*bn(u.mid, u.mid, u.kernel, u.stride, groups=u.mid), u.act(inplace=True))
        self.project = bn(u.mid, u.cout, 1)
        widths = dict(input=u.cin, mid=u.mid, branch=u.cout)
        if self.residual:
            widths.update(identity=u.cout, output=u.cout)
        # identity and post exist where the unit has its residual: the others carry no block there
        self.se = SESite(se, widths, stage=u.stage, index=u.index, required=self.residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(x, "input")
        if self.expand is not None:
            y = self.expand(y)
        y = self.project(self.se(self.dw(y), "mid"))
        if not self.residual:
            return self.se(y, "branch")
        return self.se(self.se.add(y, x), "output")


class MBConvNet(Backbone):
    """stem (3x3/2 conv + BN + act) -> stages of :class:`InvertedResidual` -> head (1x1 conv + BN + act)
    -> global average pool [-> MobileNetV3's pre-logits linear + act] -> dropout -> fc.

    ``se.stages=published`` keeps SE in the units the published net has it (``Unit.se``); ``all`` or a
    list of stage ids puts it in every unit of those stages. ``stem_stride`` 1: the CIFAR adaptation
    (32 px inputs end at 2x2, not 1x1); the stage ids stay the ImageNet net's."""

    def __init__(
        self,
        units: list[Unit],
        stem: int,
        head: int,
        se: SESpec | None,
        num_classes: int,
        *,
        act: type[nn.Module],
        dropout: float = 0.2,
        pre_logits: int | None = None,
        bn_eps: float = 1e-5,
        stem_stride: int = 2,
    ):
        super().__init__()
        check_classes(num_classes)
        check_choice("model.stem_stride", stem_stride, (2, 1))
        units = placed(units)
        self.stage_ids = tuple(dict.fromkeys(u.stage for u in units))
        chosen = se.resolve_stages(self.stage_ids) if se is not None else ()
        published = se is not None and se.published
        self.stem = nn.Sequential(*conv_bn(3, stem, 3, stem_stride, eps=bn_eps), act(inplace=True))
        stages = {sid: [] for sid in self.stage_ids}
        for u in units:
            spec = se if u.stage in chosen and (u.se or not published) else None
            stages[u.stage].append(InvertedResidual(u, spec, bn_eps))
        _check_placed(se, chosen, stages)
        cin = units[-1].cout
        head_layer = nn.Sequential(*conv_bn(cin, head, 1, eps=bn_eps), act(inplace=True))
        extra = None  # MobileNetV3: a linear layer after the pool (Howard et al., Sec. 5.4)
        if pre_logits is not None:
            extra = nn.Sequential(nn.Linear(head, pre_logits), nn.Hardswish(inplace=True))
        stages = [nn.Sequential(*s) for s in stages.values()]
        self.finish(stages, pre_logits or head, num_classes, dropout, head_layer, extra)


def _check_placed(se: SESpec | None, chosen, stages: dict) -> None:
    """identity and post sit only in residual units: a stage named in a list where none has one is an
    error (``all`` and ``published`` mean every unit that has the place)."""
    if se is None or se.integration not in ("identity", "post") or isinstance(se.stages, str):
        return
    empty = [sid for sid in chosen if not any(unit.se.block is not None for unit in stages[sid])]
    if empty:
        raise ConfigError(
            f"se.integration={se.integration!r} needs a residual unit (identity path, add), and no unit of "
            f"stage(s) {empty} has one (se.stages={list(se.stages)}); choose other stages, or an integration "
            "every unit has: standard, pre, conv3x3"
        )


# ---------------------------------------------------------------------------- MobileNetV2
# Sandler et al. 2018, Table 2: (t expansion, c output, n repeats, s first stride); 3x3 depthwise, ReLU6
V2_ROWS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def v2_units(rows: Sequence[tuple[int, int, int, int]] = V2_ROWS, stem: int = 32) -> list[Unit]:
    """MobileNetV2's units from its table's rows (t expansion, c output, n repeats, s first stride)."""
    units, cin = [], stem
    for t, c, n, s in rows:
        for i in range(n):
            units.append(Unit(cin, cin * t, c, 3, s if i == 0 else 1, nn.ReLU6))
            cin = c
    return units


def mobilenet_v2(
    *, se: SESpec | None = None, num_classes: int = 1000, bn_eps: float = 1e-5, stem_stride: int = 2
) -> MBConvNet:
    """MobileNetV2 1.0 (3,504,872 params at 1,000 classes); no published SE (se.stages=[] by default)."""
    return MBConvNet(v2_units(), 32, 1280, se, num_classes, act=nn.ReLU6, bn_eps=bn_eps, stem_stride=stem_stride)


# ---------------------------------------------------------------------------- MobileNetV3
# Howard et al. 2019, Table 1 (Large) and Table 2 (Small): (kernel, expanded width, output, SE, act, stride)
_RE, _HS = nn.ReLU, nn.Hardswish
V3_LARGE = [
    (3, 16, 16, 0, _RE, 1), (3, 64, 24, 0, _RE, 2), (3, 72, 24, 0, _RE, 1),
    (5, 72, 40, 1, _RE, 2), (5, 120, 40, 1, _RE, 1), (5, 120, 40, 1, _RE, 1),
    (3, 240, 80, 0, _HS, 2), (3, 200, 80, 0, _HS, 1), (3, 184, 80, 0, _HS, 1), (3, 184, 80, 0, _HS, 1),
    (3, 480, 112, 1, _HS, 1), (3, 672, 112, 1, _HS, 1),
    (5, 672, 160, 1, _HS, 2), (5, 960, 160, 1, _HS, 1), (5, 960, 160, 1, _HS, 1),
]  # fmt: skip
V3_SMALL = [
    (3, 16, 16, 1, _RE, 2), (3, 72, 24, 0, _RE, 2), (3, 88, 24, 0, _RE, 1),
    (5, 96, 40, 1, _HS, 2), (5, 240, 40, 1, _HS, 1), (5, 240, 40, 1, _HS, 1),
    (5, 120, 48, 1, _HS, 1), (5, 144, 48, 1, _HS, 1),
    (5, 288, 96, 1, _HS, 2), (5, 576, 96, 1, _HS, 1), (5, 576, 96, 1, _HS, 1),
]  # fmt: skip


def v3_units(rows: Sequence[tuple[int, int, int, int, type[nn.Module], int]], stem: int = 16) -> list[Unit]:
    """MobileNetV3's units from its table's rows (kernel, expanded width, output, SE, act, stride)."""
    units, cin = [], stem
    for k, mid, c, has_se, act, s in rows:
        units.append(Unit(cin, mid, c, k, s, act, bool(has_se)))
        cin = c
    return units


def mobilenet_v3_large(
    *, se: SESpec | None = None, num_classes: int = 1000, bn_eps: float = 1e-5, stem_stride: int = 2
) -> MBConvNet:
    """MobileNetV3-Large 1.0 (5,483,032 params); its published SE: ``PUBLISHED_SE``."""
    options = dict(act=nn.Hardswish, pre_logits=1280, bn_eps=bn_eps, stem_stride=stem_stride)
    return MBConvNet(v3_units(V3_LARGE), 16, 960, se, num_classes, **options)


def mobilenet_v3_small(
    *, se: SESpec | None = None, num_classes: int = 1000, bn_eps: float = 1e-5, stem_stride: int = 2
) -> MBConvNet:
    """MobileNetV3-Small 1.0 (2,542,856 params); its published SE: ``PUBLISHED_SE``."""
    options = dict(act=nn.Hardswish, pre_logits=1024, bn_eps=bn_eps, stem_stride=stem_stride)
    return MBConvNet(v3_units(V3_SMALL), 16, 576, se, num_classes, **options)


# ---------------------------------------------------------------------------- EfficientNet
# Tan & Le 2019, Table 1 (B0): (expansion, kernel, stride, output, repeats); SiLU throughout
B0_ROWS = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
           (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]  # fmt: skip
# (width, depth, resolution, dropout) multipliers of B0..B3 (the authors' code's efficientnet_params)
SCALES = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
}


def efficientnet_units(width: float, depth: float) -> list[Unit]:
    """EfficientNet-B0's units scaled by a width and a depth multiplier (rounded as its authors' code)."""
    units, cin = [], channels(32 * width)
    for e, k, s, c, n in B0_ROWS:
        c = channels(c * width)
        for i in range(math.ceil(n * depth)):
            units.append(Unit(cin, cin * e, c, k, s if i == 0 else 1, nn.SiLU))
            cin = c
    return units


def efficientnet(
    size: str, *, se: SESpec | None = None, num_classes: int = 1000, bn_eps: float = 1e-5, stem_stride: int = 2
) -> MBConvNet:
    """EfficientNet-``size`` (B0: 5,288,548 params, 4,652,008 without SE); SE in every unit."""
    width, depth, _, dropout = SCALES[size]
    units = efficientnet_units(width, depth)
    stem, head = channels(32 * width), channels(1280 * width)
    options = dict(act=nn.SiLU, dropout=dropout, bn_eps=bn_eps, stem_stride=stem_stride)
    return MBConvNet(units, stem, head, se, num_classes, **options)


def units_of(name: str) -> list[Unit]:
    """The placed units of MBConv net ``name`` (a key of ``MODELS``): what the weight ports read."""
    if name == "mobilenet_v2":
        return placed(v2_units())
    if name.startswith("mobilenet_v3"):
        return placed(v3_units(V3_LARGE if name.endswith("large") else V3_SMALL))
    width, depth, _, _ = SCALES[name.removeprefix("efficientnet_")]
    return placed(efficientnet_units(width, depth))


MODELS = {
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_large": mobilenet_v3_large,
    "mobilenet_v3_small": mobilenet_v3_small,
    **{f"efficientnet_{s}": partial(efficientnet, s) for s in SCALES},
}
NATIVE = {f"efficientnet_{s}": v[2] for s, v in SCALES.items() if v[2] != 224}  # input side, where not 224

# ---------------------------------------------------------------------------- published SE
_SHAPE = dict(squeeze="avg", excitation="fc", fusion="scale", spatial="none", min_hidden=0, bias=True)
_EFFICIENTNET_SE = dict(
    _SHAPE, gate="sigmoid", reduction=4, hidden_divisor=1, round_limit=0.0, hidden_from="input", hidden_act="silu",
    integration="conv3x3", stages="all",
)  # fmt: skip
_V3_SE = dict(
    _SHAPE, gate="hard_sigmoid", reduction=4, hidden_divisor=8, round_limit=0.9, hidden_from="site",
    hidden_act="relu", integration="conv3x3", stages="published",
)  # fmt: skip
# MobileNetV2 has no published SE: when switched on, ECA-Net's SE-MobileNetV2 (Wang et al., CVPR 2020, Sec. 4.2.2):
# on the projection output before the add, r = 8
_V2_SE = dict(
    _SHAPE, gate="sigmoid", reduction=8, hidden_divisor=1, round_limit=0.0, hidden_from="site", hidden_act="relu",
    integration="standard", stages=[],
)  # fmt: skip
# model name -> its published SE as se.* keys (conf/model/<name>.yaml repeats them: tests/test_mbconv.py)
PUBLISHED_SE = {
    "mobilenet_v2": _V2_SE,
    "mobilenet_v3_large": _V3_SE,
    "mobilenet_v3_small": _V3_SE,
    **{f"efficientnet_{s}": _EFFICIENTNET_SE for s in SCALES},
}
