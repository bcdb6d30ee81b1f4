"""From a point of the ablation space (:class:`SESpec`) to its block: the one place that turns
spec keys into the modules' plain constructor arguments."""

from __future__ import annotations

from typing import Callable

from torch import nn

from ..errors import ConfigError
from .block import ChannelAttention
from .excitation import ECABlock, GCBlock, GEBlock, SEBlock, SRMBlock
from .plugin import PluggedAttention
from .spec import GATES, HIDDEN_ACTS, SPATIALS, SQUEEZES, SESpec
from .squeeze import AttentionPool, DepthwiseGather, GlobalGather, GlobalStats, LocalAvg, NoSqueeze

# se.squeeze -> (channels, extent) -> its module (the names and their metadata: spec.SQUEEZES)
SQUEEZE_MODULES: dict[str, Callable[[int, int], nn.Module]] = {
    "avg": lambda c, extent: LocalAvg(extent) if extent else GlobalStats("avg"),
    "max": lambda c, extent: GlobalStats("max"),
    "none": lambda c, extent: NoSqueeze(),
    "avgmax": lambda c, extent: GlobalStats("avg", "max"),
    "avgstd": lambda c, extent: GlobalStats("avg", "std"),
    "attention": lambda c, extent: AttentionPool(c),
    "gather": lambda c, extent: DepthwiseGather(c, extent) if extent else GlobalGather(c),
}

# se.excitation -> its block class (the names and the keys each takes: spec.EXCITATIONS)
BLOCKS: dict[str, type[ChannelAttention]] = {
    "fc": SEBlock,
    "conv1d": ECABlock,
    "channelwise": SRMBlock,
    "context": GCBlock,
    "identity": GEBlock,
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
    parts = dict(
        squeeze=SQUEEZE_MODULES[spec.squeeze](channels, spec.extent),
        gate=GATES[spec.gate],
        fusion=spec.fusion,
        spatial=spec.spatial != "none",
        keeps_map=spec.keeps_map,
        ops_per_element=squeeze.ops_per_element + 1 + SPATIALS[spec.spatial],
        name=name,
        stage=stage,
        index=index,
    )
    kind = BLOCKS[spec.excitation]
    if kind in (SEBlock, GCBlock):
        hidden = _hidden(_hidden_base(channels, unit_input, spec, name), spec, name)
        return kind(channels, hidden, spec.bias, HIDDEN_ACTS[spec.hidden_act], **parts)
    if kind is ECABlock:
        k = None if spec.kernel_size == "adaptive" else spec.kernel_size
        return kind(channels, k, squeeze.descriptors, **parts)
    if kind is SRMBlock:
        return kind(channels, squeeze.descriptors, **parts)
    return kind(**parts)


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
