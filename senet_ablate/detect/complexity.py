"""Params and multiply-adds of a detector (Table 7's rows under ``task=profile``): the trunk, FPN and RPN
head over one ``size`` x ``size`` image, plus the box head over the RPN's test-time proposals (1,000 in
torchvision's and Detectron's defaults), so that the count does not depend on what an image yields.
RoIAlign, NMS and the anchors are not counted; the SE blocks' elementwise ops are, as for a classifier."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN

from ..complexity import Complexity, count, count_params


class _Dense(nn.Module):
    """The part of the detector that runs densely over the image: trunk, FPN, RPN head."""

    def __init__(self, model: FasterRCNN):
        super().__init__()
        self.backbone, self.head = model.backbone, model.rpn.head

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return self.head(list(self.backbone(x).values()))


def box_head_macs(model: FasterRCNN) -> int:
    """Multiply-adds of the box head and predictor for one proposal (their linear layers)."""
    layers = [m for m in (model.roi_heads.box_head, model.roi_heads.box_predictor) for m in m.modules()]
    return sum(m.in_features * m.out_features for m in layers if isinstance(m, nn.Linear))


def detector_complexity(model: FasterRCNN, size: int) -> tuple[Complexity, int]:
    """The detector's complexity at a ``size`` px square input, and the proposals its box head is counted on."""
    dense = count(_Dense(model), size)
    proposals = model.rpn._post_nms_top_n["testing"]
    macs = dense.macs + proposals * box_head_macs(model)
    return Complexity(count_params(model), macs, dense.elementwise_ops, size, dense.unreported_blocks), proposals
