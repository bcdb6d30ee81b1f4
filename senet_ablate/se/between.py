"""Modules that sit between a backbone's stages, not inside its units: BAM (Park, Woo, Lee & Kweon, BMVC
2018), at the end of every stage but the last (``se.between=bam``). ``Backbone`` runs ``between[i]`` after
stage i; ``models.build_model`` sizes them by the stages' output widths (``models.stage_widths``)."""

from __future__ import annotations

import torch
from torch import nn

BAM_REDUCTION, BAM_DILATION = 16, 4  # the paper's r and d (Sec. 3)


class BAM(nn.Module):
    """F + F * sigmoid(Mc(F) + Ms(F)) (the paper's Eq. 1-2): Mc = global average pool -> fc to C/r -> BN ->
    ReLU -> fc to C; Ms = 1x1 conv to C/r -> BN -> ReLU -> two 3x3 convs at dilation d (each + BN + ReLU)
    -> 1x1 conv to one map. ``product``: sigmoid(Mc * Ms) instead (:class:`BAMProduct`)."""

    product = False

    def __init__(self, channels: int, reduction: int = BAM_REDUCTION, dilation: int = BAM_DILATION) -> None:
        super().__init__()
        h = max(channels // reduction, 1)
        self.channel = nn.Sequential(
            nn.Linear(channels, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True), nn.Linear(h, channels)
        )
        dilated = [
            layer
            for _ in range(2)
            for layer in (
                nn.Conv2d(h, h, 3, padding=dilation, dilation=dilation),
                nn.BatchNorm2d(h),
                nn.ReLU(inplace=True),
            )
        ]
        self.spatial = nn.Sequential(
            nn.Conv2d(channels, h, 1), nn.BatchNorm2d(h), nn.ReLU(inplace=True), *dilated, nn.Conv2d(h, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mc = self.channel(x.mean((2, 3)))[:, :, None, None]
        ms = self.spatial(x)
        return torch.addcmul(x, x, torch.sigmoid(mc * ms if self.product else mc + ms))

    def elementwise_ops(self, x: torch.Tensor) -> int:
        """Paper-convention ops per sample: the pooling, the sum of the two maps, the rescale and the add."""
        return 4 * x[0].numel()


class BAMProduct(BAM):
    """BAM as its authors' code (Jongchan/attention-module, MODELS/bam.py) and PytorchInsight's copy of it
    compute it: F + F * sigmoid(Mc * Ms), the product the paper's Table 2b ablates against its sum.
    Same parameters as :class:`BAM`; PytorchInsight's BAM-ResNet-50 figures were trained with this one."""

    product = True


BETWEEN: dict[str, type[nn.Module] | None] = {"none": None, "bam": BAM, "bam_product": BAMProduct}
