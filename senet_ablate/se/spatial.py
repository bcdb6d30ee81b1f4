"""CBAM's spatial gate (Woo et al., ECCV 2018), applied after a block's channel gate."""

from __future__ import annotations

import torch
from torch import nn


class SpatialGate(nn.Module):
    """[channel mean, channel max] -> ``kernel_size`` conv -> BN -> gate, rescaling each position."""

    def __init__(self, gate: type[nn.Module] = nn.Sigmoid, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * self.gate(self.bn(self.conv(pooled)))
