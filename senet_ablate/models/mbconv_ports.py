"""Key maps from timm's and torchvision's MBConv nets onto ours (``mbconv.py``), generated from the
same architecture tables, one explicit ``(their prefix, our prefix)`` pair per layer.

Ours: ``stem.{0,1}``, ``stages.S.U.{expand,dw,project}.{0,1}``, ``stages.S.U.se.block.{fc1,fc2}``,
``head.{0,1}``, ``pre_logits.0`` (MobileNetV3), ``fc``.

- timm groups units by the rows of its architecture strings (``blocks.G.B``); its first unit is a
  ``DepthwiseSeparableConv`` (conv_dw/bn1, se, conv_pw/bn2), the others ``InvertedResidual``
  (conv_pw/bn1, conv_dw/bn2, se, conv_pwl/bn3); MobileNetV3's last 1x1 conv is a block of its own and
  its ``conv_head`` (a 1x1 conv with bias after the pool) is our pre-logits linear layer.
- torchvision numbers units flat (``features.i``; EfficientNet: by row, ``features.r.b``), each a
  ``conv``/``block`` Sequential of [expand] dw [se] project. Its MobileNetV3 was trained with BN eps 1e-3.
"""

from __future__ import annotations

import math
import re
from itertools import accumulate

from .layers import Port
from .mbconv import B0_ROWS, PUBLISHED_SE, SCALES, V2_ROWS, Unit, units_of

TIMM_NAMES = {
    "mobilenetv2_100": "mobilenet_v2",
    "mobilenetv3_large_100": "mobilenet_v3_large",
    "mobilenetv3_small_100": "mobilenet_v3_small",
    **{f"efficientnet_{s}": f"efficientnet_{s}" for s in SCALES},
}
TORCHVISION_NAMES = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", *(f"efficientnet_{s}" for s in SCALES))
# timm's row sizes (blocks.G has this many units), where they are not the architecture table's rows
_TIMM_GROUPS = {"mobilenet_v3_large": (1, 2, 3, 4, 2, 3), "mobilenet_v3_small": (1, 2, 3, 2, 3)}
_TIMM_PARTS = {  # our part -> timm's layer names (conv, bn) in a DepthwiseSeparableConv / InvertedResidual
    "ds": {"dw": ("conv_dw", "bn1"), "project": ("conv_pw", "bn2")},
    "ir": {"expand": ("conv_pw", "bn1"), "dw": ("conv_dw", "bn2"), "project": ("conv_pwl", "bn3")},
}


def _units(name: str) -> list[tuple[str, Unit, list[str]]]:
    """(our unit prefix, the unit, its parts in order) with the published SE, unit by unit."""
    units = units_of(name)
    stage_pos = {sid: i for i, sid in enumerate(dict.fromkeys(u.stage for u in units))}
    se = PUBLISHED_SE[name]["stages"]
    out = []
    for u in units:
        has_se = se == "all" or (se == "published" and u.se)
        parts = (["expand"] if u.mid != u.cin else []) + ["dw"] + (["se"] if has_se else []) + ["project"]
        out.append((f"stages.{stage_pos[u.stage]}.{u.index - 1}.", u, parts))
    return out


def _group_sizes(name: str) -> tuple[int, ...]:
    if name in _TIMM_GROUPS:
        return _TIMM_GROUPS[name]
    if name == "mobilenet_v2":
        return tuple(n for _, _, n, _ in V2_ROWS)
    _, depth, _, _ = SCALES[name.removeprefix("efficientnet_")]
    return tuple(math.ceil(n * depth) for *_, n in B0_ROWS)


def _row_of(i: int, sizes) -> tuple[int, int]:
    starts = [0, *accumulate(sizes)]
    g = max(j for j, s in enumerate(starts[:-1]) if s <= i)
    return g, i - starts[g]


def _pairs_timm(name: str) -> list[tuple[str, str]]:
    units, sizes = _units(name), _group_sizes(name)
    pairs = [("conv_stem.", "stem.0."), ("bn1.", "stem.1."), ("classifier.", "fc.")]
    for i, (ours, _, parts) in enumerate(units):
        g, b = _row_of(i, sizes)
        theirs = f"blocks.{g}.{b}."
        for part, (conv, bn) in _TIMM_PARTS["ds" if g == 0 else "ir"].items():
            if part in parts:
                pairs += [(theirs + conv + ".", f"{ours}{part}.0."), (theirs + bn + ".", f"{ours}{part}.1.")]
        se = ours + "se.block."
        pairs += [(theirs + "se.conv_reduce.", se + "fc1."), (theirs + "se.conv_expand.", se + "fc2.")]
    if "v3" in name:
        last = f"blocks.{len(sizes)}.0."
        pairs += [(last + "conv.", "head.0."), (last + "bn1.", "head.1."), ("conv_head.", "pre_logits.0.")]
    else:
        pairs += [("conv_head.", "head.0."), ("bn2.", "head.1.")]
    return pairs


def _pairs_torchvision(name: str) -> list[tuple[str, str]]:
    units = _units(name)
    pairs = [("features.0.0.", "stem.0."), ("features.0.1.", "stem.1.")]
    rows = _group_sizes(name) if name.startswith("efficientnet") else None
    for i, (ours, _, parts) in enumerate(units):
        theirs = f"features.{i + 1}." + ("block." if "v3" in name else "conv.")
        if rows is not None:
            r, b = _row_of(i, rows)
            theirs = f"features.{r + 1}.{b}.block."
        for k, part in enumerate(parts):
            if part == "se":
                pairs += [(f"{theirs}{k}.fc1.", ours + "se.block.fc1."), (f"{theirs}{k}.fc2.", ours + "se.block.fc2.")]
            elif part == "project" and name == "mobilenet_v2":  # a bare conv and BN, not a Conv2dNormActivation
                pairs += [(f"{theirs}{k}.", f"{ours}project.0."), (f"{theirs}{k + 1}.", f"{ours}project.1.")]
            else:
                pairs += [(f"{theirs}{k}.0.", f"{ours}{part}.0."), (f"{theirs}{k}.1.", f"{ours}{part}.1.")]
    n = len(rows) if rows is not None else len(units)
    pairs += [(f"features.{n + 1}.0.", "head.0."), (f"features.{n + 1}.1.", "head.1.")]
    if "v3" in name:
        return pairs + [("classifier.0.", "pre_logits.0."), ("classifier.3.", "fc.")]
    return pairs + [("classifier.1.", "fc.")]


def _keys(pairs) -> tuple:
    return tuple((f"^{re.escape(theirs)}", ours) for theirs, ours in pairs)


def _port(name: str, pairs, needs=None) -> Port:
    se = PUBLISHED_SE[name]
    return Port(name, _keys(pairs), needs or {}, None if se["stages"] == [] else se)


def ports() -> dict[str, Port]:
    """``timm:<name>`` and ``torchvision:<name>`` -> :class:`Port`, for every MBConv net they publish."""
    out = {f"timm:{theirs}": _port(ours, _pairs_timm(ours)) for theirs, ours in TIMM_NAMES.items()}
    for name in TORCHVISION_NAMES:
        out[f"torchvision:{name}"] = _port(name, _pairs_torchvision(name), {"bn_eps": 1e-3} if "v3" in name else None)
    return out
