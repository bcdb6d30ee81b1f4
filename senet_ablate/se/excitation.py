"""The kinds of excitation (Sec. 3.2: the gating function over the squeezed descriptor), one
:class:`ChannelAttention` subclass each, declaring its layers (any squeeze, gate, fusion and spatial
gate composes with any of them that accepts the squeeze's output):

    SEBlock         fc           SE (Sec. 3.2; Table 10's reduction r)
    GCBlock         context      GC (Cao et al., ICCV-W 2019): fc with LayerNorm on the hidden layer
    ECABlock        conv1d       ECA (Wang et al., CVPR 2020): one 1-D conv across channels
    SRMBlock        channelwise  SRM (Lee et al., ICCV 2019): a weight per channel and statistic, then BN
    GEBlock         identity     GE (Hu et al., NeurIPS 2018): no parameters, the gathered values gated
    CoordBlock      coord        CA (Hou et al., CVPR 2021): a shared 1x1 conv, then a 1x1 conv per axis
    GroupwiseBlock  groupwise    SGE (Li et al., 2019): a weight and a bias per group
    TripletBlock    triplet      Triplet attention (Misra et al., WACV 2021): three Z-pool gates

Each takes its own layers' plain arguments, then ``frame`` (:class:`Frame`: squeeze, gate, fusion,
spatial gate, where it sits), and reads the spec keys it takes in ``from_spec``: the blocks with a
hidden layer of C // r units share :class:`HiddenLayerBlock`'s. A new excitation is one class here
and one entry in ``spec.EXCITATIONS`` that names it.
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import ConfigError
from .block import SE_FRAME, ChannelAttention, Frame

if TYPE_CHECKING:
    from .spec import SESpec

HIDDEN_ACTS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU, "hard_swish": nn.Hardswish}


def eca_kernel(channels: int) -> int:
    """ECA's adaptive kernel (Wang et al., CVPR 2020, gamma = 2, b = 1): t = |(log2 C + 1) / 2|, made odd.
    timm clamps it to >= 3; the two agree from C = 8 up."""
    t = int(abs((math.log2(channels) + 1) / 2))
    return t if t % 2 else t + 1


def per_stat(s: torch.Tensor) -> torch.Tensor:
    """(N, C) -> (N, 1, C); (N, D, C) unchanged."""
    return s if s.ndim == 3 else s[:, None]


def start_as_identity(fc: nn.Module) -> None:
    """GCNet's init for a block that adds: its last layer at 0, so the block starts as the identity
    (``zero_init``: the backbones' he_init leaves it)."""
    fc.zero_init = True
    nn.init.zeros_(fc.weight)
    if fc.bias is not None:
        nn.init.zeros_(fc.bias)


def hidden_units(channels: int, unit_input: int | None, spec: SESpec, name: str) -> int:
    """The hidden width of an fc-like excitation at one site: C // r with the spec's rounding, where C
    is the site's channels (the paper) or the unit's input (``se.hidden_from=input``, EfficientNet)."""
    if spec.hidden_from == "input" and unit_input is None:
        raise ConfigError(
            f"se.hidden_from=input needs the unit's input width, which {name} does not give "
            "(its unit has no input site); valid here: se.hidden_from=site"
        )
    base = channels if spec.hidden_from == "site" else unit_input
    hidden = spec.hidden_width(base)
    if hidden < 1:
        raise ConfigError(
            f"se.reduction={spec.reduction} is too large for {name}: it has C={base} channels"
            f"{' at its unit input (se.hidden_from=input)' if spec.hidden_from == 'input' else ''}, "
            f"so C // r = {hidden}; use r <= {base}, or se.min_hidden=1 to keep at least one hidden "
            f"unit (integration={spec.integration!r})"
        )
    return hidden


class HiddenLayerBlock(ChannelAttention):
    """An excitation through a hidden layer of C // r units (Table 10's reduction r): SE, GC and CA.
    Built as ``cls(channels, hidden, bias, act, frame)``."""

    @classmethod
    def from_spec(
        cls, channels: int, spec: SESpec, frame: Frame, *, stats: int = 1, unit_input: int | None = None
    ) -> ChannelAttention:
        """The hidden width at this site (``hidden_units``), the layers' biases and hidden activation."""
        hidden = hidden_units(channels, unit_input, spec, frame.name)
        return cls(channels, hidden, spec.bias, HIDDEN_ACTS[spec.hidden_act], frame)


class SEBlock(HiddenLayerBlock):
    """SE's excitation: ``fc1`` to ``hidden`` units (Table 10: C // r), ``act`` (ReLU; EfficientNet's
    SiLU), ``fc2`` back to C. On a squeeze that keeps a map (NoSqueeze, Table 16; GE-theta+'s gather)
    the two layers are 1x1 convs, applied per position."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        bias: bool = True,
        act: type[nn.Module] = nn.ReLU,
        frame: Frame = SE_FRAME,
    ) -> None:
        super().__init__(frame)
        layer = partial(nn.Conv2d, kernel_size=1) if frame.keeps_map else nn.Linear
        self.fc1: nn.Linear | nn.Conv2d = layer(channels, hidden, bias=bias)
        self.act: nn.Module = act(inplace=True)
        self.fc2: nn.Linear | nn.Conv2d = layer(hidden, channels, bias=bias)
        self.add_gates(frame)
        if self.fusion == "add":
            start_as_identity(self.fc2)

    def excite(self, s: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(s)))


class GCBlock(HiddenLayerBlock):
    """GC's transform on the context vector: ``fc1`` to ``hidden`` units, LayerNorm, ``act`` (ReLU),
    ``fc2`` (GC itself: squeeze AttentionPool, fusion add)."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        bias: bool = True,
        act: type[nn.Module] = nn.ReLU,
        frame: Frame = SE_FRAME,
    ) -> None:
        super().__init__(frame)
        self.fc1: nn.Linear = nn.Linear(channels, hidden, bias=bias)
        self.norm: nn.LayerNorm = nn.LayerNorm(hidden)
        self.act: nn.Module = act(inplace=True)
        self.fc2: nn.Linear = nn.Linear(hidden, channels, bias=bias)
        self.add_gates(frame)
        if self.fusion == "add":
            start_as_identity(self.fc2)

    def excite(self, s: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.norm(self.fc1(s))))


class ECABlock(ChannelAttention):
    """ECA's excitation: one 1-D conv across the channels, no bias, from each of the ``stats``
    statistics to one logit per channel; ``kernel_size`` None: ECA's adaptive kernel."""

    def __init__(self, channels: int, kernel_size: int | None = None, stats: int = 1, frame: Frame = SE_FRAME) -> None:
        super().__init__(frame)
        k = eca_kernel(channels) if kernel_size is None else kernel_size
        self.conv: nn.Conv1d = nn.Conv1d(stats, 1, k, padding=k // 2, bias=False)
        self.add_gates(frame)

    @classmethod
    def from_spec(
        cls, channels: int, spec: SESpec, frame: Frame, *, stats: int = 1, unit_input: int | None = None
    ) -> ChannelAttention:
        """``se.kernel_size``: ``adaptive`` (ECA's rule from C) or an odd integer."""
        k = None if spec.kernel_size == "adaptive" else spec.kernel_size
        return cls(channels, k, stats, frame)

    def excite(self, s: torch.Tensor) -> torch.Tensor:
        return self.conv(per_stat(s))[:, 0]


class SRMBlock(ChannelAttention):
    """SRM's style integration: a weight per channel and statistic (``weight``, D x C, zero at start
    as in SRM), summed over the statistics, then BN."""

    def __init__(self, channels: int, stats: int = 2, frame: Frame = SE_FRAME) -> None:
        super().__init__(frame)
        self.weight = nn.Parameter(torch.zeros(stats, channels))
        self.bn: nn.BatchNorm1d = nn.BatchNorm1d(channels)
        self.add_gates(frame)

    @classmethod
    def from_spec(
        cls, channels: int, spec: SESpec, frame: Frame, *, stats: int = 1, unit_input: int | None = None
    ) -> ChannelAttention:
        """No spec keys: one weight per channel and statistic of the squeeze."""
        return cls(channels, stats, frame)

    def excite(self, s: torch.Tensor) -> torch.Tensor:
        return self.bn((per_stat(s) * self.weight).sum(1))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, weight={tuple(self.weight.shape)}"


class GEBlock(ChannelAttention):
    """GE's parameter-free excite: the squeeze's values are gated as they are, resized to the map
    (GE-theta-: an average gather; GE-theta: a depthwise one)."""

    def __init__(self, frame: Frame = SE_FRAME) -> None:
        super().__init__(frame)
        self.add_gates(frame)

    def excite(self, s: torch.Tensor) -> torch.Tensor:
        return s


class CoordBlock(HiddenLayerBlock):
    """CA's excitation (Hou et al., CVPR 2021) on CoordPool's strip: ``conv1`` to ``hidden`` channels
    (max(C // r, min_hidden): r = 32, at least 8) + BN + ``act`` (hard-swish), then ``conv_h`` and
    ``conv_w`` back to C, each gated; the gate map is the product of the row and column gates."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        bias: bool = True,
        act: type[nn.Module] = nn.Hardswish,
        frame: Frame = SE_FRAME,
    ) -> None:
        super().__init__(frame)
        self.conv1: nn.Conv2d = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.bn1: nn.BatchNorm2d = nn.BatchNorm2d(hidden)
        self.act: nn.Module = act(inplace=True)
        self.conv_h: nn.Conv2d = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.conv_w: nn.Conv2d = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.add_gates(frame)

    def gate_values(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y_h, y_w = self.act(self.bn1(self.conv1(self.squeeze(x)))).split([h, w], 2)
        return self.gate(self.conv_h(y_h)) * self.gate(self.conv_w(y_w.transpose(-1, -2)))


class GroupwiseBlock(ChannelAttention):
    """SGE's excitation (Li et al., 2019): the group similarity map times a ``weight`` plus a ``bias`` per
    group (0 and 1 at start, as SGE's code), the same for every channel of a group."""

    def __init__(self, channels: int, groups: int, frame: Frame = SE_FRAME) -> None:
        super().__init__(frame)
        self.weight = nn.Parameter(torch.zeros(groups))
        self.bias = nn.Parameter(torch.ones(groups))
        self.add_gates(frame)
        self.per_group = channels // groups

    @classmethod
    def from_spec(
        cls, channels: int, spec: SESpec, frame: Frame, *, stats: int = 1, unit_input: int | None = None
    ) -> ChannelAttention:
        """``se.groups``, which must divide the site's channels."""
        if channels % spec.groups:
            raise ConfigError(
                f"se.groups={spec.groups} does not divide the {channels} channels of {frame.name}; "
                f"use a divisor of every site's width (SGE's 64 suits ResNets, integration={spec.integration!r})"
            )
        return cls(channels, spec.groups, frame)

    def excite(self, s: torch.Tensor) -> torch.Tensor:
        return (s * self.weight[:, None, None] + self.bias[:, None, None]).repeat_interleave(self.per_group, 1)


def z_pool_gate(kernel_size: int) -> nn.Sequential:
    """Triplet's gate body: a kxk conv from [max, mean] (2 maps) to 1, no bias, then BN."""
    return nn.Sequential(nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False), nn.BatchNorm2d(1))


def z_pool(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Triplet's Z-pool: the max and the mean across ``dim``, stacked as 2 maps."""
    return torch.stack([x.amax(dim), x.mean(dim)], 1)


class TripletBlock(ChannelAttention):
    """Triplet attention (Misra et al., WACV 2021): three gates from Z-pools (max and mean) across H (a
    C x W map: ``cw``), across W (H x C: ``hc``) and across C (H x W: ``hw``), each a kxk conv + BN + gate;
    the gate map is their mean, so the output is the mean of the three gated branches."""

    def __init__(self, kernel_size: int = 7, frame: Frame = SE_FRAME) -> None:
        super().__init__(frame)
        self.cw: nn.Sequential = z_pool_gate(kernel_size)
        self.hc: nn.Sequential = z_pool_gate(kernel_size)
        self.hw: nn.Sequential = z_pool_gate(kernel_size)
        self.add_gates(frame)

    @classmethod
    def from_spec(
        cls, channels: int, spec: SESpec, frame: Frame, *, stats: int = 1, unit_input: int | None = None
    ) -> ChannelAttention:
        """``se.kernel_size``: the three gates' kernel (an odd integer; 7 in its paper)."""
        return cls(spec.kernel_size, frame)

    def gate_values(self, x: torch.Tensor) -> torch.Tensor:
        g_cw = self.gate(self.cw(z_pool(x, 2))).permute(0, 2, 1, 3)  # (N, 1, C, W) -> (N, C, 1, W)
        g_hc = self.gate(self.hc(z_pool(x, 3).transpose(-1, -2))).permute(0, 3, 2, 1)  # (N, 1, H, C) -> (N, C, H, 1)
        g_hw = self.gate(self.hw(z_pool(x, 1)))  # (N, 1, H, W)
        return (g_cw + g_hc + g_hw) / 3
