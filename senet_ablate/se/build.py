"""From a point of the ablation space (:class:`SESpec`) to its block: the squeeze's registry entry
builds the squeeze, the excitation's names the block class, which reads its own keys (``from_spec``)."""

from __future__ import annotations

from .block import ChannelAttention, Frame
from .plugin import PluggedAttention
from .spec import EXCITATIONS, GATES, SPATIALS, SQUEEZES, SESpec


def build_block(
    channels: int, spec: SESpec, name: str = "SE", stage: int = 0, index: int = 0, unit_input: int | None = None
) -> ChannelAttention | PluggedAttention:
    """The block ``spec`` describes, on a ``channels``-wide map. The spec was validated when it was
    made (``SESpec.__post_init__``), not here; what depends on the site (the hidden width) is.
    ``unit_input``: the channels of the unit's input, the C of C // r under ``se.hidden_from=input``."""
    if spec.module is not None:
        return PluggedAttention(channels, spec.module, name, stage, index)
    squeeze, excitation = SQUEEZES[spec.squeeze], EXCITATIONS[spec.excitation]
    frame = Frame(
        squeeze=squeeze.build(channels, spec),
        gate=GATES[spec.gate],
        fusion=spec.fusion,
        spatial=spec.spatial != "none",
        keeps_map=spec.keeps_map,
        # the pooling(s), the rescale, the spatial gate, the excitation's own
        ops_per_element=squeeze.ops_per_element + 1 + SPATIALS[spec.spatial] + excitation.ops_per_element,
        name=name,
        stage=stage,
        index=index,
    )
    return excitation.block.from_spec(channels, spec, frame, stats=squeeze.stats, unit_input=unit_input)
