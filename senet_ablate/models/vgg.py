"""VGG-16 with batch normalisation (Simonyan & Zisserman, configuration D; paper Table 2).

Thirteen 3x3 convs (pad 1), each followed by BN (eps 1e-5) and ReLU, in five stages that each end
in a 2x2/2 max pool; then an adaptive 7x7 average pool and the three FC layers (4096, 4096,
classes) with ReLU and dropout 0.5 between them. The convs keep their bias, as torchvision's and
timm's ``vgg16_bn`` do (the paper does not say).

Stage ids follow the paper's conv1_x..conv5_x (map side at 224 input, width):

    1: 224², 64 (2 convs)   2: 112², 128 (2)   3: 56², 256 (3)   4: 28², 512 (3)   5: 14², 512 (3)

SE (§3.3): "after the non-linearity following each convolution", so every conv is a unit whose
only SE place is ``branch``, after its ReLU and (at a stage end) before the max pool: 13 SE blocks
named ``SE_{stage}_{k}``. Only the standard integration exists here; the others fail at build.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..se import SESite, SESpec
from .layers import Port, check_classes, conv_bn, he_init

STAGE_IDS = (1, 2, 3, 4, 5)
DEPTHS = (2, 2, 3, 3, 3)  # convs per stage, configuration D
WIDTHS = (64, 128, 256, 512, 512)
HIDDEN = 4096  # the two FC layers before the classifier


class ConvUnit(nn.Module):
    """One 3x3 conv + BN + ReLU of VGG-16 (Table 2); SE after the ReLU (site ``branch`` only)."""

    def __init__(self, cin: int, cout: int, se: SESpec | None, stage: int, index: int):
        super().__init__()
        self.conv = conv_bn(cin, cout, 3, bias=True)
        self.se = SESite(se, dict(branch=cout), stage=stage, index=index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(F.relu(self.conv(x), inplace=True), "branch")


class VGG(nn.Module):
    """stages of :class:`ConvUnit` + max pool -> adaptive 7x7 pool -> fc6 -> fc7 -> fc (Table 2)."""

    def __init__(self, se: SESpec | None, num_classes: int, dropout: float = 0.5):
        super().__init__()
        check_classes(num_classes)
        self.stage_ids = STAGE_IDS
        se_stages = se.resolve_stages(self.stage_ids) if se is not None else ()
        stages, cin = [], 3
        for sid, depth, width in zip(STAGE_IDS, DEPTHS, WIDTHS):
            units = []
            for k in range(depth):
                units.append(ConvUnit(cin, width, se if sid in se_stages else None, sid, k + 1))
                cin = width
            stages.append(nn.Sequential(*units, nn.MaxPool2d(2, 2)))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(7)
        self.fc6 = nn.Linear(cin * 7 * 7, HIDDEN)
        self.fc7 = nn.Linear(HIDDEN, HIDDEN)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(HIDDEN, num_classes)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.pool(self.stages(x)), 1)  # (C, H, W) order, as a 7x7 conv reads it
        x = self.dropout(F.relu(self.fc6(x), inplace=True))
        x = self.dropout(F.relu(self.fc7(x), inplace=True))
        return self.fc(x)


def vgg16_bn(*, se: SESpec | None = None, num_classes: int = 1000) -> VGG:
    """VGG-16 + BN of Table 2: 13 SE sites with the standard integration."""
    return VGG(se, num_classes)


# ---------------------------------------------------------------------------- weight ports
# torchvision and timm number VGG's layers in one ``features`` Sequential: each conv takes three
# slots (conv, BN, ReLU) and each max pool one. Map slot -> our unit's conv (.0) or BN (.1).
def _feature_slots() -> dict[int, str]:
    slots, i = {}, 0
    for s, depth in enumerate(DEPTHS):
        for k in range(depth):
            slots[i], slots[i + 1] = f"stages.{s}.{k}.conv.0.", f"stages.{s}.{k}.conv.1."
            i += 3
        i += 1  # the stage's max pool
    return slots


_SLOTS = _feature_slots()
_FEATURES = [(r"^features\.(\d+)\.", lambda m: _SLOTS[int(m[1])])]
# timm's head is a ConvMlp whose fc1 is a 7x7 conv (4096, 512, 7, 7): its flattening equals our
# fc6's (C, H, W) order, so weights.prepare reshapes it onto the Linear; fc2 is a 1x1 conv.
TIMM_KEYS = [*_FEATURES, (r"^pre_logits\.fc1\.", "fc6."), (r"^pre_logits\.fc2\.", "fc7."), (r"^head\.fc\.", "fc.")]
TORCHVISION_KEYS = [
    *_FEATURES,
    (r"^classifier\.0\.", "fc6."),
    (r"^classifier\.3\.", "fc7."),
    (r"^classifier\.6\.", "fc."),
]

PORTS = {
    "timm:vgg16_bn": Port("vgg16_bn", TIMM_KEYS),
    "torchvision:vgg16_bn": Port("vgg16_bn", TORCHVISION_KEYS),
}
