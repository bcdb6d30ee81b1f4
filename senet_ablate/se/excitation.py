"""The kinds of excitation, one :class:`ChannelAttention` subclass each, owning its layers (any
squeeze, gate, fusion and spatial gate composes with any of them that accepts the squeeze's output):

    SEBlock    fc           SE (Sec. 3.2; Table 10's reduction r)
    GCBlock    context      GC (Cao et al., ICCV-W 2019): fc with LayerNorm on the hidden layer
    ECABlock   conv1d       ECA (Wang et al., CVPR 2020): one 1-D conv across channels
    SRMBlock   channelwise  SRM (Lee et al., ICCV 2019): a weight per channel and statistic, then BN
    GEBlock    identity     GE (Hu et al., NeurIPS 2018): no parameters, the gathered values gated

Each takes its own layers' plain arguments, then ``**parts``: the frame's keywords (squeeze, gate,
fusion, spatial, keeps_map, ops_per_element, name, stage, index; :class:`ChannelAttention`), and
reads the spec keys it takes in ``from_spec``. A new excitation is one class here and one entry in
``spec.EXCITATIONS`` that names it.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from ..errors import ConfigError
from .block import ChannelAttention

HIDDEN_ACTS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU, "hard_swish": nn.Hardswish}


def eca_kernel(channels: int) -> int:
    """ECA's adaptive kernel (Wang et al., CVPR 2020, gamma = 2, b = 1): t = |(log2 C + 1) / 2|, made odd.
    timm clamps it to >= 3; the two agree from C = 8 up."""
    t = int(abs((math.log2(channels) + 1) / 2))
    return t if t % 2 else t + 1


def per_descriptor(s: torch.Tensor) -> torch.Tensor:
    """(N, C) -> (N, 1, C); (N, D, C) unchanged."""
    return s if s.ndim == 3 else s[:, None]


def start_as_identity(fc: nn.Module) -> None:
    """GCNet's init for a block that adds: its last layer at 0, so the block starts as the identity
    (``zero_init``: the backbones' he_init leaves it)."""
    fc.zero_init = True
    nn.init.zeros_(fc.weight)
    if fc.bias is not None:
        nn.init.zeros_(fc.bias)


class SEBlock(ChannelAttention):
    """SE's excitation: ``fc1`` to ``hidden`` units (Table 10: C // r), ``act`` (ReLU; EfficientNet's
    SiLU), ``fc2`` back to C. On a squeeze that keeps a map (NoSqueeze, Table 16; GE-theta+'s gather)
    the two layers are 1x1 convs, applied per position."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        bias: bool = True,
        act: type[nn.Module] = nn.ReLU,
        *,
        keeps_map: bool = False,
        **parts,
    ):
        layer = partial(nn.Conv2d, kernel_size=1) if keeps_map else nn.Linear
        super().__init__(
            dict(
                fc1=layer(channels, hidden, bias=bias),
                act=act(inplace=True),
                fc2=layer(hidden, channels, bias=bias),
            ),
            keeps_map=keeps_map,
            **parts,
        )
        if self.fusion == "add":
            start_as_identity(self.fc2)

    @classmethod
    def from_spec(cls, channels: int, spec, *, descriptors: int = 1, unit_input: int | None = None, **parts):
        """The hidden width C // r (Table 10) from the site's channels or the unit's input, then the layers."""
        hidden = hidden_units(channels, unit_input, spec, parts.get("name", "SE"))
        return cls(channels, hidden, spec.bias, HIDDEN_ACTS[spec.hidden_act], **parts)

    def excite(self, s):
        return self.fc2(self.act(self.fc1(s)))


class GCBlock(ChannelAttention):
    """GC's transform on the context vector: ``fc1`` to ``hidden`` units, LayerNorm, ``act`` (ReLU),
    ``fc2`` (GC itself: squeeze AttentionPool, fusion add)."""

    def __init__(self, channels: int, hidden: int, bias: bool = True, act: type[nn.Module] = nn.ReLU, **parts):
        super().__init__(
            dict(
                fc1=nn.Linear(channels, hidden, bias=bias),
                norm=nn.LayerNorm(hidden),
                act=act(inplace=True),
                fc2=nn.Linear(hidden, channels, bias=bias),
            ),
            **parts,
        )
        if self.fusion == "add":
            start_as_identity(self.fc2)

    from_spec = classmethod(SEBlock.from_spec.__func__)  # the same keys: reduction and the hidden layer's

    def excite(self, s):
        return self.fc2(self.act(self.norm(self.fc1(s))))


class ECABlock(ChannelAttention):
    """ECA's excitation: one 1-D conv across the channels, no bias, from each of the ``descriptors``
    statistics to one logit per channel; ``kernel_size`` None: ECA's adaptive kernel."""

    def __init__(self, channels: int, kernel_size: int | None = None, descriptors: int = 1, **parts):
        k = eca_kernel(channels) if kernel_size is None else kernel_size
        super().__init__(dict(conv=nn.Conv1d(descriptors, 1, k, padding=k // 2, bias=False)), **parts)

    @classmethod
    def from_spec(cls, channels: int, spec, *, descriptors: int = 1, unit_input: int | None = None, **parts):
        k = None if spec.kernel_size == "adaptive" else spec.kernel_size
        return cls(channels, k, descriptors, **parts)

    def excite(self, s):
        return self.conv(per_descriptor(s))[:, 0]


class SRMBlock(ChannelAttention):
    """SRM's style integration: a weight per channel and statistic (``weight``, D x C, zero at start
    as in SRM), summed over the statistics, then BN."""

    def __init__(self, channels: int, descriptors: int = 2, **parts):
        super().__init__(
            dict(weight=nn.Parameter(torch.zeros(descriptors, channels)), bn=nn.BatchNorm1d(channels)), **parts
        )

    @classmethod
    def from_spec(cls, channels: int, spec, *, descriptors: int = 1, unit_input: int | None = None, **parts):
        return cls(channels, descriptors, **parts)

    def excite(self, s):
        return self.bn((per_descriptor(s) * self.weight).sum(1))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, weight={tuple(self.weight.shape)}"


class GEBlock(ChannelAttention):
    """GE's parameter-free excite: the squeeze's values are gated as they are, resized to the map
    (GE-theta-: an average gather; GE-theta: a depthwise one)."""

    def __init__(self, **parts):
        super().__init__({}, **parts)

    def excite(self, s):
        return s


class CoordBlock(ChannelAttention):
    """CA's excitation (Hou et al., CVPR 2021) on CoordPool's strip: ``conv1`` to ``hidden`` channels
    (max(C // r, min_hidden): r = 32, at least 8) + BN + ``act`` (hard-swish), then ``conv_h`` and
    ``conv_w`` back to C, each gated; the gate map is the product of the row and column gates."""

    def __init__(self, channels: int, hidden: int, bias: bool = True, act: type[nn.Module] = nn.Hardswish, **parts):
        super().__init__(
            dict(
                conv1=nn.Conv2d(channels, hidden, 1, bias=bias),
                bn1=nn.BatchNorm2d(hidden),
                act=act(inplace=True),
                conv_h=nn.Conv2d(hidden, channels, 1, bias=bias),
                conv_w=nn.Conv2d(hidden, channels, 1, bias=bias),
            ),
            **parts,
        )

    from_spec = classmethod(SEBlock.from_spec.__func__)  # SE's keys (the CA preset: r = 32, min_hidden 8)

    def excitation(self, x):
        h, w = x.shape[-2:]
        y_h, y_w = self.act(self.bn1(self.conv1(self.squeeze(x)))).split([h, w], 2)
        return self.gate(self.conv_h(y_h)) * self.gate(self.conv_w(y_w.transpose(-1, -2)))


class GroupwiseBlock(ChannelAttention):
    """SGE's excitation (Li et al., 2019): the group similarity map times a ``weight`` plus a ``bias`` per
    group (0 and 1 at start, as SGE's code), the same for every channel of a group."""

    def __init__(self, channels: int, groups: int, **parts):
        layers = dict(weight=nn.Parameter(torch.zeros(groups)), bias=nn.Parameter(torch.ones(groups)))
        super().__init__(layers, **parts)
        self.per_group = channels // groups

    @classmethod
    def from_spec(cls, channels: int, spec, *, descriptors: int = 1, unit_input: int | None = None, **parts):
        if channels % spec.groups:
            raise ConfigError(
                f"se.groups={spec.groups} does not divide the {channels} channels of {parts.get('name', 'SE')}; "
                f"use a divisor of every site's width (SGE's 64 suits ResNets, integration={spec.integration!r})"
            )
        return cls(channels, spec.groups, **parts)

    def excite(self, s):
        return (s * self.weight[:, None, None] + self.bias[:, None, None]).repeat_interleave(self.per_group, 1)


def z_pool_gate(kernel_size: int) -> nn.Sequential:
    """Triplet's gate body: a kxk conv from [max, mean] (2 maps) to 1, no bias, then BN."""
    return nn.Sequential(nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False), nn.BatchNorm2d(1))


def z_pool(x: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.stack([x.amax(dim), x.mean(dim)], 1)


class TripletBlock(ChannelAttention):
    """Triplet attention (Misra et al., WACV 2021): three gates from Z-pools (max and mean) across H (a
    C x W map: ``cw``), across W (H x C: ``hc``) and across C (H x W: ``hw``), each a kxk conv + BN + gate;
    the gate map is their mean, so the output is the mean of the three gated branches."""

    def __init__(self, kernel_size: int = 7, **parts):
        super().__init__({n: z_pool_gate(kernel_size) for n in ("cw", "hc", "hw")}, **parts)

    @classmethod
    def from_spec(cls, channels: int, spec, *, descriptors: int = 1, unit_input: int | None = None, **parts):
        return cls(spec.kernel_size, **parts)

    def excitation(self, x):
        g_cw = self.gate(self.cw(z_pool(x, 2))).permute(0, 2, 1, 3)  # (N, 1, C, W) -> (N, C, 1, W)
        g_hc = self.gate(self.hc(z_pool(x, 3).transpose(-1, -2))).permute(0, 3, 2, 1)  # (N, 1, H, C) -> (N, C, H, 1)
        g_hw = self.gate(self.hw(z_pool(x, 1)))  # (N, 1, H, W)
        return (g_cw + g_hc + g_hw) / 3


def hidden_units(channels: int, unit_input: int | None, spec, name: str) -> int:
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
