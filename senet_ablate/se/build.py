"""From a point of the ablation space (:class:`SESpec`) to its block: the one place that turns
spec keys into the modules' plain constructor arguments."""

from __future__ import annotations

from typing import Callable

from torch import nn

from ..errors import ConfigError
from .block import ChannelAttention
from .excitation import (
    CoordBlock,
    ECABlock,
    GCBlock,
    GEBlock,
    GroupwiseBlock,
    SEBlock,
    SRMBlock,
    TripletBlock,
)
from .plugin import PluggedAttention
from .spec import EXCITATIONS, GATES, HIDDEN_ACTS, SPATIALS, SQUEEZES, SESpec
from .squeeze import (
    AttentionPool,
    CoordPool,
    DepthwiseGather,
    Energy,
    GlobalGather,
    GlobalStats,
    GroupSimilarity,
    LocalAvg,
    NoSqueeze,
)

# se.squeeze -> (channels, spec) -> its module (the names and their metadata: spec.SQUEEZES)
SQUEEZE_MODULES: dict[str, Callable[[int, SESpec], nn.Module]] = {
    "avg": lambda c, s: LocalAvg(s.extent) if s.extent else GlobalStats("avg"),
    "max": lambda c, s: GlobalStats("max"),
    "none": lambda c, s: NoSqueeze(),
    "avgmax": lambda c, s: GlobalStats("avg", "max"),
    "avgstd": lambda c, s: GlobalStats("avg", "std"),
    "attention": lambda c, s: AttentionPool(c),
    "gather": lambda c, s: DepthwiseGather(c, s.extent) if s.extent else GlobalGather(c),
    "coord": lambda c, s: CoordPool(),
    "energy": lambda c, s: Energy(s.energy_lambda),
    "group": lambda c, s: GroupSimilarity(s.groups),
}

# se.excitation -> its block class (the names and the keys each takes: spec.EXCITATIONS)
BLOCKS: dict[str, type[ChannelAttention]] = {
    "fc": SEBlock,
    "conv1d": ECABlock,
    "channelwise": SRMBlock,
    "context": GCBlock,
    "identity": GEBlock,
    "coord": CoordBlock,
    "groupwise": GroupwiseBlock,
    "triplet": TripletBlock,
}


def build_block(
    channels: int, spec: SESpec, name: str = "SE", stage: int = 0, index: int = 0, unit_input: int | None = None
) -> ChannelAttention | PluggedAttention:
    """The block ``spec`` describes, on a ``channels``-wide map. The spec is validated once per model
    (``SESpec.from_config``, ``build_model``), not here; what depends on the site (the hidden width) is.
    ``unit_input``: the channels of the unit's input, the C of C // r under ``se.hidden_from=input``."""
    if spec.module is not None:
        return PluggedAttention(channels, spec.module, name, stage, index)
    squeeze = SQUEEZES[spec.squeeze]
    ops = squeeze.ops_per_element + 1 + SPATIALS[spec.spatial] + EXCITATIONS[spec.excitation].ops_per_element
    parts = dict(
        squeeze=SQUEEZE_MODULES[spec.squeeze](channels, spec),
        gate=GATES[spec.gate],
        fusion=spec.fusion,
        spatial=spec.spatial != "none",
        keeps_map=spec.keeps_map,
        ops_per_element=ops,  # the pooling(s), the rescale, the spatial gate, the excitation's own
        name=name,
        stage=stage,
        index=index,
    )
    kind = BLOCKS[spec.excitation]
    if kind in (SEBlock, GCBlock, CoordBlock):
        hidden = _hidden(_hidden_base(channels, unit_input, spec, name), spec, name)
        return kind(channels, hidden, spec.bias, HIDDEN_ACTS[spec.hidden_act], **parts)
    if kind is ECABlock:
        k = None if spec.kernel_size == "adaptive" else spec.kernel_size
        return kind(channels, k, squeeze.descriptors, **parts)
    if kind is SRMBlock:
        return kind(channels, squeeze.descriptors, **parts)
    if kind is GroupwiseBlock:
        return kind(channels, _groups(channels, spec, name), **parts)
    if kind is TripletBlock:
        return kind(spec.kernel_size, **parts)
    return kind(**parts)


def _groups(channels: int, spec: SESpec, name: str) -> int:
    if channels % spec.groups:
        raise ConfigError(
            f"se.groups={spec.groups} does not divide the {channels} channels of {name}; "
            f"use a divisor of every site's width (SGE's 64 suits ResNets, integration={spec.integration!r})"
        )
    return spec.groups


def _hidden_base(channels: int, unit_input: int | None, spec: SESpec, name: str) -> int:
    if spec.hidden_from == "site":
        return channels
    if unit_input is None:
        raise ConfigError(
            f"se.hidden_from=input needs the unit's input width, which {name} does not give "
            "(its unit has no input site); valid here: se.hidden_from=site"
        )
    return unit_input


def _hidden(channels: int, spec: SESpec, name: str) -> int:
    hidden = spec.hidden_width(channels)
    if hidden < 1:
        raise ConfigError(
            f"se.reduction={spec.reduction} is too large for {name}: it has C={channels} channels"
            f"{' at its unit input (se.hidden_from=input)' if spec.hidden_from == 'input' else ''}, "
            f"so C // r = {hidden}; use r <= {channels}, or se.min_hidden=1 to keep at least one hidden "
            f"unit (integration={spec.integration!r})"
        )
    return hidden
