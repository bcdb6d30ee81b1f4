"""Squeeze-and-Excitation and its successors as points of one ablation space (Hu et al., TPAMI v4,
Tables 10-16; ECA, CBAM, GC, GE, SRM, CA, SimAM, SGE, Triplet attention; BAM between the stages).

    spec.py        SESpec and the registries of the axes' names (the whole space, and its validation)
    squeeze.py     the squeeze modules          excitation.py  one block class per kind of excitation
    spatial.py     CBAM's spatial gate          block.py       ChannelAttention and Frame: what they share
    build.py       spec -> block (from_spec)    site.py        SESite: where a block sits in a unit
    plugin.py      se.module: your own module (a _target_ node), placed and counted like ours
    between.py     BAM: modules between a backbone's stages (se.between)

``isinstance(m, ChannelAttention)`` finds every block of a model; ``build_block(C, spec)`` makes one.
"""

from __future__ import annotations

from .block import ChannelAttention, Frame
from .build import build_block
from .excitation import (
    HIDDEN_ACTS,
    CoordBlock,
    ECABlock,
    GCBlock,
    GEBlock,
    GroupwiseBlock,
    HiddenLayerBlock,
    SEBlock,
    SRMBlock,
    TripletBlock,
    eca_kernel,
)
from .plugin import PluggedAttention, import_target
from .site import SESite, SiteMissing, block_name, integrations_for
from .spatial import SpatialGate
from .spec import (
    EXCITATIONS,
    FUSIONS,
    GATES,
    HIDDEN_FROM,
    INTEGRATIONS,
    SPATIALS,
    SQUEEZES,
    Excitation,
    SESpec,
    Squeeze,
)
from .squeeze import AttentionPool, DepthwiseGather, GlobalGather, GlobalStats, LocalAvg, NoSqueeze

__all__ = [
    "AttentionPool",
    "ChannelAttention",
    "CoordBlock",
    "DepthwiseGather",
    "ECABlock",
    "EXCITATIONS",
    "Excitation",
    "FUSIONS",
    "Frame",
    "GATES",
    "GCBlock",
    "GEBlock",
    "GlobalGather",
    "GlobalStats",
    "GroupwiseBlock",
    "HIDDEN_ACTS",
    "HIDDEN_FROM",
    "HiddenLayerBlock",
    "INTEGRATIONS",
    "LocalAvg",
    "NoSqueeze",
    "PluggedAttention",
    "SEBlock",
    "SESite",
    "SESpec",
    "SPATIALS",
    "SQUEEZES",
    "SRMBlock",
    "SiteMissing",
    "SpatialGate",
    "TripletBlock",
    "Squeeze",
    "block_name",
    "build_block",
    "eca_kernel",
    "import_target",
    "integrations_for",
]
