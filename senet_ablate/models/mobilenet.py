"""MobileNet v1 1.0-224 (Howard et al. 2017, Table 1; SE paper Table 3).

Stem conv 3x3/2 to 32 channels + BN + activation, 13 depthwise-separable blocks (depthwise 3x3
at stride s + BN + act, pointwise 1x1 + BN + act), global average pool, FC. The last depthwise
conv runs at stride 1 (Howard et al.'s table prints 2, a typo: only stride 1 gives 7x7 and the
569M multiply-adds). ``activation``: relu (the paper) or relu6 (TF-slim and timm's weights).

Stage ids by output stride (map side at 224 input, block output width):

    1: block 1, 112², 64        2: blocks 2-3, 56², 128      3: blocks 4-5, 28², 256
    4: blocks 6-11, 14², 512    5: blocks 12-13, 7², 1024

SE sites of a block: ``input`` (its input, SE-PRE), ``mid`` (after the depthwise conv + BN + act:
this backbone's analogue of Table 15's SE 3x3) and ``branch`` (after the pointwise conv + BN +
act: the paper's placement, from the authors' SE-MobileNet prototxt; 13 sites). The blocks have
no shortcut, so the identity and post integrations fail at build.
"""

from __future__ import annotations

import torch
from torch import nn

from ..se import SESite, SESpec
from .layers import Backbone, Port, check_choice, check_classes, conv_bn

ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6}
STEM_WIDTH = 32
# per stage id: the (output width, depthwise stride) of each block
STAGES = {
    1: [(64, 1)],
    2: [(128, 2), (128, 1)],
    3: [(256, 2), (256, 1)],
    4: [(512, 2)] + [(512, 1)] * 5,
    5: [(1024, 2), (1024, 1)],
}


class DepthwiseSeparable(nn.Module):
    """dw 3x3 (stride s) + BN + act -> pw 1x1 + BN + act, one row pair of Howard et al.'s Table 1."""

    def __init__(
        self, cin: int, cout: int, stride: int, act: type[nn.Module], se: SESpec | None, stage: int, index: int
    ):
        super().__init__()
        self.dw = conv_bn(cin, cin, 3, stride, padding=1, groups=cin)
        self.pw = conv_bn(cin, cout, 1)
        self.act = act(inplace=True)
        self.se = SESite(se, dict(input=cin, mid=cin, branch=cout), stage=stage, index=index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.dw(self.se(x, "input")))
        x = self.act(self.pw(self.se(x, "mid")))
        return self.se(x, "branch")


class MobileNetV1(Backbone):
    """stem -> stages of :class:`DepthwiseSeparable` (ids 1..5) -> global average pool -> fc (Table 3)."""

    def __init__(self, se: SESpec | None, num_classes: int, activation: str = "relu"):
        super().__init__()
        check_choice("model.activation", activation, ACTIVATIONS)
        check_classes(num_classes)
        act = ACTIVATIONS[activation]
        self.stage_ids = tuple(STAGES)
        se_stages = se.resolve_stages(self.stage_ids) if se is not None else ()
        self.stem = nn.Sequential(*conv_bn(3, STEM_WIDTH, 3, 2, padding=1), act(inplace=True))
        stages, cin = [], STEM_WIDTH
        for sid, blocks in STAGES.items():
            units = []
            for b, (cout, stride) in enumerate(blocks):
                units.append(DepthwiseSeparable(cin, cout, stride, act, se if sid in se_stages else None, sid, b + 1))
                cin = cout
            stages.append(nn.Sequential(*units))
        self.finish(stages, cin, num_classes)


def mobilenet_v1(*, se: SESpec | None = None, num_classes: int = 1000, activation: str = "relu") -> MobileNetV1:
    """MobileNet v1 1.0 of Table 3 at any input size (global pooling)."""
    return MobileNetV1(se, num_classes, activation)


# ---------------------------------------------------------------------------- weight ports
# timm's mobilenetv1_100 groups its 13 blocks like our stages (1, 2, 2, 6, 2): blocks.S.B is
# stages.S.B; conv_dw/bn1 are our dw conv/BN, conv_pw/bn2 our pw conv/BN. Trained with ReLU6.
TIMM_KEYS = [
    (r"^conv_stem\.", "stem.0."),
    (r"^bn1\.", "stem.1."),
    (r"^blocks\.", "stages."),
    (r"\.conv_dw\.", ".dw.0."),
    (r"\.bn1\.", ".dw.1."),
    (r"\.conv_pw\.", ".pw.0."),
    (r"\.bn2\.", ".pw.1."),
    (r"^classifier\.", "fc."),
]

PORTS = {
    "timm:mobilenetv1_100": Port("mobilenet_v1", TIMM_KEYS, {"activation": "relu6"}),
}
