"""Squeeze modules: how a block summarises its input map before the excitation (paper Sec. 3.1,
Table 11's avg/max, Table 16's NoSqueeze; CBAM's avg+max, SRM's avg+std, GC's attention pooling,
GE's gathers). Each maps (N, C, H, W) to vectors, (N, C) or (N, D, C), or keeps a map."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


class GlobalStats(nn.Module):
    """Per-channel statistics of the whole map (avg, max: Table 11; avg+max: CBAM; avg+std: SRM):
    (N, C, H, W) -> (N, C) for one statistic, (N, D, C) for D of them."""

    def __init__(self, *stats: str) -> None:
        super().__init__()
        self.stats = stats

    @staticmethod
    def stat(x: torch.Tensor, name: str) -> torch.Tensor:
        if name == "avg":
            return x.mean((2, 3))
        if name == "max":
            return x.amax((2, 3))
        return (x.flatten(2).var(2) + 1e-5).sqrt()  # std: SRM's style statistic (unbiased variance)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.stats) == 1:
            return self.stat(x, self.stats[0])
        return torch.stack([self.stat(x, s) for s in self.stats], 1)

    def extra_repr(self) -> str:
        return "+".join(self.stats)


class NoSqueeze(nn.Identity):
    """Table 16's NoSqueeze: no pooling; the excitation runs on the full map, per position."""


class LocalAvg(nn.Module):
    """GE-theta-'s parameter-free gather: average over a (2e-1)^2 window at stride e (a map out)."""

    def __init__(self, extent: int) -> None:
        super().__init__()
        self.extent = extent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.extent
        return F.avg_pool2d(x, 2 * e - 1, e, e - 1, count_include_pad=False)

    def extra_repr(self) -> str:
        return f"extent={self.extent}"


class AttentionPool(nn.Module):
    """GC's context modelling (Cao et al.): softmax over positions of a 1x1 conv, then the weighted
    channel sum: (N, C, H, W) -> (N, C)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        w = self.conv(x).flatten(1).softmax(1)  # (N, HW)
        return torch.bmm(x.flatten(2), w[:, :, None]).view(n, c)


class DepthwiseGather(nn.Sequential):
    """GE-theta's gather with extent e (Hu et al., NeurIPS 2018): log2(e) depthwise 3x3 stride-2 convs,
    each with BN, ReLU between (a map out)."""

    def __init__(self, channels: int, extent: int) -> None:
        layers: list[nn.Module] = []
        for i in range(int(math.log2(extent))):
            layers += [nn.ReLU(inplace=True)] if i else []
            layers += [nn.Conv2d(channels, channels, 3, 2, 1, groups=channels, bias=False), nn.BatchNorm2d(channels)]
        super().__init__(*layers)


class GlobalGather(nn.modules.lazy.LazyModuleMixin, nn.Module):
    """GE-theta's gather with a global extent: one depthwise conv whose kernel covers the whole map,
    then BN. The kernel is the site's map size, which only a forward pass tells: it is set by the
    dry forward ``build_model(..., input_size=...)`` runs, and stays fixed after."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.weight = nn.parameter.UninitializedParameter()
        self.bn = nn.BatchNorm2d(channels)

    def initialize_parameters(self, x: torch.Tensor) -> None:
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.weight.materialize((self.channels, 1, *x.shape[-2:]))
                nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != self.weight.shape[-2:]:
            raise ConfigError(
                f"a global GE gather built for {tuple(self.weight.shape[-2:])} maps got "
                f"{tuple(x.shape[-2:])}: train and evaluate at model.input_size"
            )
        return self.bn(F.conv2d(x, self.weight, groups=self.channels))


class CoordPool(nn.Module):
    """CA's coordinate pooling (Hou et al., CVPR 2021): the map averaged along W (one value per row) and
    along H (one per column), stacked as one strip: (N, C, H, W) -> (N, C, H + W, 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(3, keepdim=True), x.mean(2, keepdim=True).transpose(-1, -2)], 2)


class Energy(nn.Module):
    """SimAM's inverse energy of each position (Yang et al., ICML 2021, Eq. 5): (x - mu)² / (4 (var + lambda))
    + 1/2, mu and var (over n - 1) per channel over the map; parameter-free, a map of x's shape out."""

    def __init__(self, lam: float) -> None:
        super().__init__()
        self.lam = lam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[2] * x.shape[3] - 1
        d = (x - x.mean((2, 3), keepdim=True)).pow(2)
        return d / (4 * (d.sum((2, 3), keepdim=True) / max(n, 1) + self.lam)) + 0.5

    def extra_repr(self) -> str:
        return f"lambda={self.lam}"


class GroupSimilarity(nn.Module):
    """SGE's similarity (Li et al., 2019): channels in ``groups`` groups; each position's dot product with
    its group's mean channel vector, normalised over the map: (N, C, H, W) -> (N, groups, H, W)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = x.reshape(n * self.groups, c // self.groups, h, w)
        t = (g * g.mean((2, 3), keepdim=True)).sum(1).reshape(n * self.groups, h * w)
        std = t.std(1, keepdim=True, correction=1 if h * w > 1 else 0)  # a 1x1 map: 0, not NaN
        return ((t - t.mean(1, keepdim=True)) / (std + 1e-5)).reshape(n, self.groups, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
