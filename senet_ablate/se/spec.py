"""The ablation space (Hu et al., TPAMI v4, Tables 10-16) and SE's successors, in one place: each
axis is a registry of names with what the builders and the checks need to know of them, and
:class:`SESpec` is one point of the space, validated once, when it is made (``__post_init__``).

    squeeze      avg | max (Table 11), none = NoSqueeze (Table 16); avgmax (CBAM: both pools through
                 one shared excitation, summed), avgstd (SRM's style pooling), attention (GC's softmax
                 pooling), gather (GE-theta: depthwise convs, strided or over the whole map); avg with
                 extent > 0 is GE-theta-'s local average; coord (CA: strips along W and H), energy (SimAM's
                 per-position energy, lambda = energy_lambda), group (SGE: each position's similarity to its
                 group's mean, groups = groups). A squeeze gives per-channel vectors, or a map.
    excitation   fc (two layers, hidden C // r), conv1d (ECA: one 1-D conv across channels, kernel
                 adaptive to C), channelwise (SRM: a weight per channel and statistic, then BN),
                 context (GC: fc with LayerNorm on the hidden layer), identity (GE, SimAM: no parameters),
                 coord (CA: shared 1x1 conv + BN + act, a 1x1 conv and gate per axis), groupwise (SGE: a
                 weight and bias per group), triplet (Triplet: three Z-pool + kxk conv + BN gates, averaged)
    gate         Table 12 (sigmoid | tanh | relu), plus hard_sigmoid and identity
    fusion       scale (x * gate) | add (x + gate: GC's fusion)
    spatial      none | cbam (CBAM's spatial gate after the channel one: 7x7 conv over [mean, max])
    reduction    Table 10 (r) for fc and context; hidden_divisor 1 keeps C // r (the paper), 8 rounds
                 like timm (round_limit 0.9: never more than 10% down, as MobileNetV3's make_divisible);
                 min_hidden floors it (Table 10's r = 32 on CIFAR's 16-channel stage)
    hidden_from  the C of C // r: site (the channels the block recalibrates: the paper) or input (the
                 unit's input: EfficientNet's 0.25 x block input, although SE acts on the expanded map)
    hidden_act   the hidden layer's activation: relu (the paper), silu (EfficientNet), hard_swish
    kernel_size  conv1d's kernel: adaptive (ECA: the odd integer nearest (log2 C + 1) / 2, ties up) or an
                 odd integer; triplet's (7)
    extent       0 = global; for avg and gather, the gather extent (GE)
    bias         the fc/context layers' biases: dropped in the paper's ablations, kept in its models
    integration  Table 14 (standard | pre | post | identity) and Table 15 (conv3x3)
    between      none | bam | bam_product: a module between stages, after each but the last (BAM; between.py)
    stages       Table 13 (paper stage ids; [] = the plain baseline, "all" = SE All); "published" = the
                 blocks the backbone's published SE net has (MobileNetV3's; every unit of the others)

A key that does not apply to the chosen squeeze/excitation must be null (extent: 0), so that
``attention=eca se.reduction=8`` fails instead of silently meaning nothing. Published modules are
the presets of ``conf/attention``; the modules themselves are in ``squeeze.py``, ``excitation.py``
and ``spatial.py``; each registry entry names its module, ``build.py`` puts a block together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from torch import nn

from ..errors import ConfigError
from .between import BETWEEN
from .block import ChannelAttention
from .excitation import (
    HIDDEN_ACTS,
    CoordBlock,
    ECABlock,
    GCBlock,
    GEBlock,
    GroupwiseBlock,
    SEBlock,
    SRMBlock,
    TripletBlock,
)
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


@dataclass(frozen=True)
class Squeeze:
    """How a feature map is summarised before the excitation (Sec. 3.1)."""

    build: Callable[[int, SESpec], nn.Module]  # (channels, spec) -> its module (squeeze.py)
    stats: int  # statistics per channel, D: vectors (N, C) for one, (N, D, C) for more; 0: it keeps a map
    ops_per_element: int  # paper-convention elementwise ops per input element (convs/matmuls count as MACs)
    takes_extent: bool = False  # it reads se.extent
    takes: tuple[str, ...] = ()  # the other spec keys it reads (of SQUEEZE_KEYS)
    pairs_only_with: tuple[str, ...] = ()  # the excitation(s) it works with, if not every one the rules allow


SQUEEZES: dict[str, Squeeze] = {
    # Table 11; extent > 0: GE-theta-'s local average (a map)
    "avg": Squeeze(
        build=lambda c, s: LocalAvg(s.extent) if s.extent else GlobalStats("avg"),
        stats=1,
        ops_per_element=1,
        takes_extent=True,
    ),
    "max": Squeeze(build=lambda c, s: GlobalStats("max"), stats=1, ops_per_element=1),  # Table 11
    "none": Squeeze(build=lambda c, s: NoSqueeze(), stats=0, ops_per_element=0),  # NoSqueeze (Table 16)
    "avgmax": Squeeze(build=lambda c, s: GlobalStats("avg", "max"), stats=2, ops_per_element=2),  # CBAM
    "avgstd": Squeeze(build=lambda c, s: GlobalStats("avg", "std"), stats=2, ops_per_element=2),  # SRM
    # GC (its 1x1 conv and weighted sum count as MACs)
    "attention": Squeeze(build=lambda c, s: AttentionPool(c), stats=1, ops_per_element=0),
    # GE-theta (depthwise convs: MACs)
    "gather": Squeeze(
        build=lambda c, s: DepthwiseGather(c, s.extent) if s.extent else GlobalGather(c),
        stats=0,
        ops_per_element=0,
        takes_extent=True,
    ),
    # CA: strips pooled along W and along H
    "coord": Squeeze(build=lambda c, s: CoordPool(), stats=0, ops_per_element=2, pairs_only_with=("coord",)),
    # SimAM: mean, d², variance, energy
    "energy": Squeeze(
        build=lambda c, s: Energy(s.energy_lambda),
        stats=0,
        ops_per_element=4,
        takes=("energy_lambda",),
        pairs_only_with=("identity",),
    ),
    # SGE: channel means, product, group sum
    "group": Squeeze(
        build=lambda c, s: GroupSimilarity(s.groups),
        stats=0,
        ops_per_element=3,
        takes=("groups",),
        pairs_only_with=("groupwise",),
    ),
}
SQUEEZE_KEYS = ("groups", "energy_lambda")


@dataclass(frozen=True)
class Excitation:
    """The excitation (Sec. 3.2): from the squeeze's vectors, (N, C) or (N, D, C), to per-channel logits,
    (N, C) or (N, D, C) summed over D afterwards (CBAM's shared MLP); or, on a map, per-position logits
    (N, C, h, w). Its gate follows (the spec's ``gate``)."""

    block: type[ChannelAttention]  # its class (excitation.py), which reads the keys it takes in from_spec
    takes: tuple[str, ...] = ()  # the spec keys it reads (of EXCITATION_KEYS)
    runs_on_maps: bool = False  # it can run per position, on a squeeze that keeps a map
    pairs_only_with: tuple[str, ...] = ()  # the squeeze(s) it works with, if not every one the rules allow
    ops_per_element: int = 0  # its own paper-convention elementwise ops per input element (Triplet's Z-pools)


_FC_KEYS = ("reduction", "min_hidden", "hidden_divisor", "round_limit", "hidden_from", "hidden_act", "bias")
EXCITATIONS: dict[str, Excitation] = {
    "fc": Excitation(block=SEBlock, takes=_FC_KEYS, runs_on_maps=True),  # SE (Sec. 3.2, Table 10)
    "conv1d": Excitation(block=ECABlock, takes=("kernel_size",)),  # ECA
    "channelwise": Excitation(block=SRMBlock),  # SRM
    "context": Excitation(block=GCBlock, takes=_FC_KEYS),  # GC
    "identity": Excitation(block=GEBlock, runs_on_maps=True),  # GE
    # CA: shared 1x1 conv + BN + act, a gate per axis
    "coord": Excitation(block=CoordBlock, takes=_FC_KEYS, runs_on_maps=True, pairs_only_with=("coord",)),
    # SGE: a weight and a bias per group
    "groupwise": Excitation(block=GroupwiseBlock, runs_on_maps=True, pairs_only_with=("group",)),
    # Triplet: three Z-pool gates
    "triplet": Excitation(
        block=TripletBlock, takes=("kernel_size",), runs_on_maps=True, pairs_only_with=("none",), ops_per_element=6
    ),
}
MODULE_KEYS = ("module", "integration", "stages")  # the keys that apply to a user's own module (se.module)
EXCITATION_KEYS = (*_FC_KEYS, "kernel_size")
HIDDEN_FROM = ("site", "input")  # the C of C // r: the site's channels (the paper) | the unit's input (EfficientNet)

GATES: dict[str, type[nn.Module]] = {  # Table 12, plus hard_sigmoid and identity
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "hard_sigmoid": nn.Hardsigmoid,
    "identity": nn.Identity,
}
FUSIONS = ("scale", "add")

# spatial gate -> its paper-convention ops per input element (CBAM: two channel poolings and the rescale)
SPATIALS: dict[str, int] = {"none": 0, "cbam": 3}

# integration strategy -> the place in a residual unit that carries the block (Fig. 5; site.py)
INTEGRATIONS: dict[str, str] = {
    "standard": "branch",  # on the residual branch, before the summation (Fig. 5a)
    "pre": "input",  # before the residual unit, on its branch input only (Fig. 5b)
    "post": "output",  # after the summation and its ReLU (Fig. 5c)
    "identity": "identity",  # on the identity connection, parallel to the branch (Fig. 5d)
    "conv3x3": "mid",  # right after the (first) 3x3 conv and its BN/ReLU (Table 15)
}


def make_divisible(v: float, divisor: int, round_limit: float = 0.0) -> int:
    """The nearest multiple of ``divisor`` to ``v`` (at least ``divisor``), one more where that lost more than
    1 - ``round_limit`` of ``v``: timm's and torchvision's channel rounding (0.9 in the MBConv nets)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < round_limit * v else new


def _choice(key: str, value: object, valid: Iterable) -> None:
    if value not in valid:
        raise ConfigError(f"{key}={value!r} is not a valid choice; valid values: {', '.join(map(str, valid))}")


def _int(key: str, value: object, least: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{key}={value!r} must be an integer >= {least} ({what})")


@dataclass(frozen=True)
class SESpec:
    """One point of the ablation space. ``stages`` is "all" or a tuple of paper stage ids; a key that
    does not apply to the chosen squeeze/excitation is None (extent: 0)."""

    squeeze: str = "avg"
    excitation: str = "fc"
    gate: str = "sigmoid"
    fusion: str = "scale"
    spatial: str = "none"
    reduction: int | None = 16
    min_hidden: int | None = 0
    hidden_divisor: int | None = 1
    round_limit: float | None = 0.0
    hidden_from: str | None = "site"
    hidden_act: str | None = "relu"
    bias: bool | None = True
    kernel_size: int | str | None = None
    extent: int = 0
    groups: int | None = None
    energy_lambda: float | None = None
    integration: str = "standard"
    stages: str | tuple[int, ...] = "all"
    between: str = "none"
    module: dict | None = None  # your own module, a _target_ node (plugin.py); then only integration and stages apply

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SESpec:
        """From the ``se:`` config node (a mapping); validated on construction."""
        known = [f.name for f in fields(cls)]
        extra = sorted(set(cfg) - set(known))
        if extra:
            raise ConfigError(f"unknown key(s) under se: {', '.join(extra)}; valid keys: {', '.join(sorted(known))}")
        stages = cfg.get("stages", "all")
        if stages is None:
            stages = ()
        if not isinstance(stages, str):
            stages = tuple(stages)
        return cls(**{**dict(cfg), "stages": stages, "extent": cfg.get("extent") or 0})

    @property
    def keeps_map(self) -> bool:
        """The squeeze gives a map (excited per position, then resized to the input) rather than vectors."""
        return SQUEEZES[self.squeeze].stats == 0 or (self.squeeze == "avg" and bool(self.extent))

    def hidden_width(self, channels: int) -> int:
        """Table 10's C // r; with hidden_divisor d > 1, timm's rounding: the nearest multiple of d, at
        least d, and one d more where that lost more than 1 - round_limit of C / r (timm's and
        torchvision's make_divisible: 0.9); at least min_hidden. ``channels``: the C that hidden_from names."""
        d = self.hidden_divisor
        h = channels // self.reduction if d == 1 else make_divisible(channels / self.reduction, d, self.round_limit)
        return max(h, self.min_hidden)

    def __post_init__(self) -> None:
        self.validate()  # the one check: a spec that exists is a point of the space

    def validate(self) -> None:
        """Raise ConfigError naming the key and what is valid, for any point outside the space."""
        if self.module is not None:
            self._check_module()
            return
        _choice("se.squeeze", self.squeeze, SQUEEZES)
        _choice("se.excitation", self.excitation, EXCITATIONS)
        _choice("se.gate", self.gate, GATES)
        _choice("se.fusion", self.fusion, FUSIONS)
        _choice("se.spatial", self.spatial, SPATIALS)
        _choice("se.integration", self.integration, INTEGRATIONS)
        _choice("se.between", self.between, BETWEEN)  # between.py
        self._check_extent()
        self._check_pairing()
        self._check_squeeze_keys()
        ex = EXCITATIONS[self.excitation]
        if self.keeps_map and not ex.runs_on_maps:
            ok = [
                k
                for k, e in EXCITATIONS.items()
                if e.runs_on_maps and (not e.pairs_only_with or self.squeeze in e.pairs_only_with)
            ]
            raise ConfigError(
                f"se.excitation={self.excitation!r} needs per-channel vectors, but "
                f"se.squeeze={self.squeeze!r}{' with se.extent=%d' % self.extent if self.extent else ''} "
                f"keeps a map; valid excitations for it: {', '.join(ok)}"
            )
        self._check_excitation_keys(ex)
        self._check_stages()

    def _check_pairing(self) -> None:
        sq, ex = SQUEEZES[self.squeeze], EXCITATIONS[self.excitation]
        if sq.pairs_only_with and self.excitation not in sq.pairs_only_with:
            raise ConfigError(
                f"se.squeeze={self.squeeze!r} works only with se.excitation={' or '.join(sq.pairs_only_with)} "
                f"(not {self.excitation!r}); attention=<name> sets both (conf/attention)"
            )
        if ex.pairs_only_with and self.squeeze not in ex.pairs_only_with:
            raise ConfigError(
                f"se.excitation={self.excitation!r} works only with se.squeeze={' or '.join(ex.pairs_only_with)} "
                f"(not {self.squeeze!r}); attention=<name> sets both (conf/attention)"
            )

    def _check_squeeze_keys(self) -> None:
        for key in SQUEEZE_KEYS:
            value, takes = getattr(self, key), key in SQUEEZES[self.squeeze].takes
            if not takes and value is not None:
                users = [k for k, q in SQUEEZES.items() if key in q.takes]
                raise ConfigError(
                    f"se.{key}={value!r} does not apply to se.squeeze={self.squeeze!r} "
                    f"(it applies to: {', '.join(users)}); set se.{key}=null"
                )
            if takes and value is None:
                raise ConfigError(f"se.squeeze={self.squeeze!r} needs se.{key} (it is null)")
        if self.groups is not None:
            _int("se.groups", self.groups, 1, "SGE's groups: 64 in its paper")
        lam = self.energy_lambda
        if lam is not None and (isinstance(lam, bool) or not isinstance(lam, (int, float)) or lam <= 0):
            raise ConfigError(f"se.energy_lambda={lam!r} must be a number > 0 (SimAM's lambda: 1e-4)")

    def _check_extent(self) -> None:
        if not self.extent:
            return
        if not SQUEEZES[self.squeeze].takes_extent:
            raise ConfigError(
                f"se.extent={self.extent} applies to squeeze avg or gather, not "
                f"se.squeeze={self.squeeze!r}; use se.extent=0 (global)"
            )
        _int("se.extent", self.extent, 2, "0 = global, else the gather extent")
        if self.squeeze == "gather" and self.extent & (self.extent - 1):
            raise ConfigError(
                f"se.extent={self.extent}: the gather squeeze halves the map per depthwise conv, "
                "so its extent must be a power of two (2, 4, 8, ...)"
            )

    def _check_excitation_keys(self, ex: Excitation) -> None:
        for key in EXCITATION_KEYS:
            value = getattr(self, key)
            if key not in ex.takes and value is not None:
                users = [k for k, e in EXCITATIONS.items() if key in e.takes]
                raise ConfigError(
                    f"se.{key}={value!r} does not apply to se.excitation={self.excitation!r} "
                    f"(it applies to: {', '.join(users)}); set se.{key}=null"
                )
            if key in ex.takes and value is None:
                raise ConfigError(f"se.excitation={self.excitation!r} needs se.{key} (it is null)")
        if "reduction" in ex.takes:
            _int("se.reduction", self.reduction, 1, "the paper uses 2..32")
            _int("se.min_hidden", self.min_hidden, 0, "0: no floor on C // r")
            _int("se.hidden_divisor", self.hidden_divisor, 1, "1: C // r as in the paper; 8: timm's rounding")
            self._check_rounding()
            _choice("se.hidden_from", self.hidden_from, HIDDEN_FROM)
            _choice("se.hidden_act", self.hidden_act, HIDDEN_ACTS)
            if not isinstance(self.bias, bool):
                raise ConfigError(f"se.bias={self.bias!r} must be true or false")
        if "kernel_size" in ex.takes and self.kernel_size == "adaptive" and self.excitation != "conv1d":
            raise ConfigError(f"se.kernel_size=adaptive is ECA's rule (conv1d); {self.excitation} takes an odd integer")
        if "kernel_size" in ex.takes and self.kernel_size != "adaptive":
            if (
                isinstance(self.kernel_size, bool)
                or not isinstance(self.kernel_size, int)
                or self.kernel_size < 1
                or self.kernel_size % 2 == 0
            ):
                raise ConfigError(
                    f"se.kernel_size={self.kernel_size!r} must be 'adaptive' (ECA's rule) or an odd integer >= 1"
                )

    def _check_rounding(self) -> None:
        r = self.round_limit
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1:
            raise ConfigError(f"se.round_limit={r!r} must be a number in [0, 1): 0 = none, 0.9 = MobileNetV3's")
        if r and self.hidden_divisor == 1:
            raise ConfigError(
                f"se.round_limit={r} applies only to rounding to a multiple (se.hidden_divisor > 1, e.g. 8); "
                "with se.hidden_divisor=1 set se.round_limit=0"
            )

    def _check_module(self) -> None:
        """With ``se.module`` only integration and stages apply: every other key must be null or stay at
        the paper's default (what ``se: se`` sets), so that a key set for it fails instead of meaning nothing."""
        if not isinstance(self.module, dict) or not isinstance(self.module.get("_target_"), str):
            raise ConfigError(
                f"se.module={self.module!r} must be a node with a _target_, e.g. {{_target_: my_pkg.MyGate, k: 3}}"
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in MODULE_KEYS and value is not None and value != f.default:
                raise ConfigError(
                    f"se.{f.name}={value!r} does not apply to se.module ({self.module['_target_']}): only "
                    f"se.integration and se.stages do; set se.{f.name}=null or leave it at its default ({f.default!r})"
                )
        _choice("se.integration", self.integration, INTEGRATIONS)
        self._check_stages()

    def _check_stages(self) -> None:
        if isinstance(self.stages, str):
            if self.stages not in ("all", "published"):
                raise ConfigError(
                    f"se.stages={self.stages!r} must be 'all', 'published' or a list of stage ids such as [2, 3]"
                )
        elif not all(isinstance(s, int) and not isinstance(s, bool) for s in self.stages):
            raise ConfigError(f"se.stages={list(self.stages)!r} must be a list of integer stage ids")

    @property
    def plain(self) -> bool:
        """No block anywhere: no stage chosen and nothing between the stages."""
        return self.stages == () and self.between == "none"

    @property
    def published(self) -> bool:
        """``se.stages=published``: the backbone's published per-block placement, not a uniform one."""
        return self.stages == "published"

    def resolve_stages(self, available: Sequence[int]) -> tuple[int, ...]:
        """The stage ids that get SE on a backbone offering ``available`` (errors name the valid ids);
        "published" names them all here, and a backbone with a published per-block placement (MobileNetV3)
        keeps only its published blocks (:meth:`published`)."""
        if self.stages in ("all", "published"):
            return tuple(available)
        bad = [s for s in self.stages if s not in available]
        if bad:
            raise ConfigError(
                f"se.stages={list(self.stages)} names stage(s) {bad} that this backbone lacks; "
                f"its stage ids are {list(available)} (use [] for no SE, or 'all')"
            )
        return tuple(sorted(set(self.stages)))
