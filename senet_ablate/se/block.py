"""The frame every attention block of the study shares: squeeze -> excite -> gate -> fusion with the
input [-> spatial gate] (SE, Tables 10-16; ECA, CBAM, GC, GE, SRM). The kinds of excitation are its
subclasses, in ``excitation.py``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .spatial import SpatialGate
from .squeeze import GlobalStats


class ChannelAttention(nn.Module):
    """A block of the SE family; ``isinstance(m, ChannelAttention)`` finds them all in a model.

    A subclass creates its excitation's layers and passes them as ``layers``: they become direct
    children (state-dict keys ``fc1.weight``, ``conv.weight``, ...), registered after ``squeeze`` and
    before the gate and the spatial gate, in that order. It implements :meth:`excite`.

    ``squeeze`` (default: global average pooling) gives vectors, (N, C) or (N, D, C), or keeps a map
    (``keeps_map``: excited per position, then resized to the input). ``gate``: the gate's class
    (Table 12); ``fusion``: ``scale`` (x * gate) or ``add`` (x + gate: GC); ``spatial``: CBAM's spatial
    gate after the channel one. ``ops_per_element``: the paper-convention elementwise ops per input
    element (2: SE's pooling and rescale; complexity.py). ``name``, ``stage``, ``index``: where the
    block sits (``SE_<stage>_<index>``, a suffix for a unit's branches; excitation.py reads them).
    """

    @classmethod
    def from_spec(cls, channels: int, spec, *, descriptors: int = 1, unit_input: int | None = None, **parts):
        """This block for ``spec`` (an ``SESpec``) on a ``channels``-wide map: a subclass reads the spec
        keys it takes (``spec.EXCITATIONS``). ``descriptors``: the squeeze's D statistics per channel;
        ``unit_input``: the unit's input channels; ``parts``: the frame's keywords (``build.build_block``)."""
        return cls(**parts)

    def __init__(
        self,
        layers: dict,
        *,
        squeeze: nn.Module | None = None,
        gate: type[nn.Module] = nn.Sigmoid,
        fusion: str = "scale",
        spatial: bool = False,
        keeps_map: bool = False,
        ops_per_element: int = 2,
        name: str = "SE",
        stage: int = 0,
        index: int = 0,
    ):
        super().__init__()
        self.name, self.stage, self.index = name, stage, index
        self.fusion, self.keeps_map, self.ops_per_element = fusion, keeps_map, ops_per_element
        self.squeeze = squeeze if squeeze is not None else GlobalStats("avg")
        for key, layer in layers.items():
            setattr(self, key, layer)
        self.gate = gate()
        self.spatial = SpatialGate(gate) if spatial else None

    def excite(self, s: torch.Tensor) -> torch.Tensor:
        """The squeeze's output to logits of the same layout (a subclass's layers)."""
        raise NotImplementedError

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """The gate's output, broadcastable to ``x``: per channel, or per position for map squeezes."""
        e = self.excite(self.squeeze(x))
        if not self.keeps_map:
            return self.gate(e.sum(1) if e.ndim == 3 else e)[:, :, None, None]
        e = self.gate(e)
        if e.shape[-2:] in (x.shape[-2:], (1, 1)):  # per position, or one value per channel (global gather)
            return e
        return F.interpolate(e, size=x.shape[-2:])  # GE's excite: nearest neighbour

    def forward(self, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` recalibrated; with ``add`` (a residual unit's other path), ``add + x * scale`` in one
        pass: no full-size intermediate, so SE costs its pooling and its FCs, not an extra copy."""
        e = self.excitation(x)
        if self.spatial is None and self.fusion == "scale":
            return x * e if add is None else torch.addcmul(add, x, e)
        y = x * e if self.fusion == "scale" else x + e
        if self.spatial is not None:
            y = self.spatial(y)
        return y if add is None else add + y

    def elementwise_ops(self, x: torch.Tensor) -> int:
        """Paper-convention extra ops per sample: one per input element for each pooling and for each
        rescale (docs/complexity.md: the table per module); convs and matmuls are counted as multiply-adds."""
        return self.ops_per_element * x[0].numel()

    def extra_repr(self) -> str:
        return f"name={self.name}, stage={self.stage}, index={self.index}, fusion={self.fusion}"
