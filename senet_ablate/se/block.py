"""The frame every attention block of the study shares: squeeze -> excite -> gate -> fusion with the
input [-> spatial gate] (SE, Tables 10-16; ECA, CBAM, GC, GE, SRM). The kinds of excitation are its
subclasses, in ``excitation.py``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .spatial import SpatialGate
from .squeeze import GlobalStats

if TYPE_CHECKING:
    from .spec import SESpec


@dataclass(frozen=True)
class Frame:
    """What a block shares with every other around its excitation (``build.build_block`` fills it from
    the spec). ``squeeze`` (None: global average pooling) gives vectors, (N, C) or (N, D, C), or keeps a
    map (``keeps_map``: excited per position, then resized to the input). ``gate``: the gate's class
    (Table 12); ``fusion``: ``scale`` (x * gate) or ``add`` (x + gate: GC); ``spatial``: CBAM's spatial
    gate after the channel one. ``ops_per_element``: the paper-convention elementwise ops per input
    element (2: SE's pooling and rescale; complexity.py). ``name``, ``stage``, ``index``: where the
    block sits (``SE_<stage>_<index>``, a suffix for a unit's branches; run/activations.py reads them)."""

    squeeze: nn.Module | None = None
    gate: type[nn.Module] = nn.Sigmoid
    fusion: Literal["scale", "add"] = "scale"
    spatial: bool = False
    keeps_map: bool = False
    ops_per_element: int = 2
    name: str = "SE"
    stage: int = 0
    index: int = 0


SE_FRAME = Frame()  # SE's own: global average pooling, sigmoid, scale


class ChannelAttention(nn.Module):
    """A block of the SE family; ``isinstance(m, ChannelAttention)`` finds them all in a model.

    A subclass's ``__init__`` calls ``super().__init__(frame)`` (the squeeze), declares its excitation's
    layers as its own attributes (``self.fc1 = ...``), then calls :meth:`add_gates`, so that the state
    dict lists the squeeze, the layers, then the spatial gate, as timm's modules do. It implements
    :meth:`excite`, and :meth:`from_spec` where it reads spec keys.
    """

    def __init__(self, frame: Frame = SE_FRAME) -> None:
        super().__init__()
        self.name, self.stage, self.index = frame.name, frame.stage, frame.index
        self.fusion, self.keeps_map, self.ops_per_element = frame.fusion, frame.keeps_map, frame.ops_per_element
        self.squeeze: nn.Module = frame.squeeze if frame.squeeze is not None else GlobalStats("avg")

    def add_gates(self, frame: Frame) -> None:
        """The gate and, with ``frame.spatial``, CBAM's spatial gate: after the excitation's layers."""
        self.gate: nn.Module = frame.gate()
        self.spatial: SpatialGate | None = SpatialGate(frame.gate) if frame.spatial else None

    @classmethod
    def from_spec(
        cls, channels: int, spec: SESpec, frame: Frame, *, stats: int = 1, unit_input: int | None = None
    ) -> ChannelAttention:
        """This block for ``spec`` on a ``channels``-wide map. A subclass that takes spec keys
        (``spec.EXCITATIONS``) reads them here; this one takes none (GE). ``stats``: the squeeze's D
        statistics per channel; ``unit_input``: the unit's input channels (the C of C // r under
        ``se.hidden_from=input``)."""
        return cls(frame=frame)

    def excite(self, s: torch.Tensor) -> torch.Tensor:
        """The excitation (Sec. 3.2) before its gate: the squeeze's output to logits of the same layout."""
        raise NotImplementedError

    def gate_values(self, x: torch.Tensor) -> torch.Tensor:
        """The gate's output s (Eq. 3) for ``x``, broadcastable to it: per channel, or per position for
        map squeezes. Figs. 6/7 plot it (run/activations.py)."""
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
        e = self.gate_values(x)
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
