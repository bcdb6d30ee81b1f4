"""The Squeeze-and-Excitation ablation space (Hu et al., TPAMI v4, Tables 10-16) and SE's successors.

Every axis of the study is one small registry below; a backbone asks for an :class:`SESite`
per unit (residual unit, Inception module, VGG conv, depthwise-separable block, shuffle unit) and
calls it at the places that unit offers. The integration strategy decides which place holds the
block; a unit without that place fails at build time, naming the integrations it does offer.

    input     the unit's input, on its transform path only (SE-PRE)
    mid       after the unit's (first) 3x3 conv and its BN/ReLU (SE 3x3; MobileNet: the depthwise conv)
    branch    the output of the unit's transform F_tr: before the summation in a residual unit,
              the unit's output in a plain one (VGG conv, Inception module, MobileNet block)
    identity  the identity/shortcut path, parallel to the branch (residual units only)
    output    after the summation (and its ReLU)

A block is squeeze -> excitation -> gate -> fusion with the input [-> spatial gate]:

    squeeze      avg | max (Table 11), none = NoSqueeze (Table 16); avgmax (CBAM: both pools through
                 one shared excitation, summed), avgstd (SRM's style pooling), attention (GC's softmax
                 pooling), gather (GE-theta: depthwise convs, strided or over the whole map); avg with
                 extent > 0 is GE-theta-'s local average. A squeeze gives per-channel vectors, or a map (none, gather, local avg).
    excitation   fc (two layers, hidden C // r), conv1d (ECA: one 1-D conv across channels, kernel
                 adaptive to C), channelwise (SRM: a weight per channel and statistic, then BN),
                 context (GC: fc with LayerNorm on the hidden layer), identity (GE: no parameters)
    gate         Table 12 (sigmoid | tanh | relu), plus hard_sigmoid and identity
    fusion       scale (x * gate) | add (x + gate: GC's fusion)
    spatial      none | cbam (CBAM's spatial gate after the channel one: 7x7 conv over [mean, max])
    reduction    Table 10 (r) for fc and context; hidden_divisor 1 keeps C // r (the paper), 8 rounds
                 like timm; min_hidden floors it (Table 10's r = 32 on CIFAR's 16-channel stage)
    kernel_size  conv1d's kernel: adaptive (ECA: the odd integer nearest (log2 C + 1) / 2, ties up) or an odd integer
    extent       0 = global; for avg and gather, the gather extent (GE)
    bias         the fc/context layers' biases: dropped in the paper's ablations, kept in its models
    integration  Table 14 (standard | pre | post | identity) and Table 15 (conv3x3)
    stages       Table 13 (paper stage ids; [] = the plain baseline, "all" = SE All)

A key that does not apply to the chosen squeeze/excitation must be null (extent: 0), so that
``attention=eca se.reduction=8`` fails instead of silently meaning nothing. Published modules are
the presets of ``conf/attention``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError


# ---------------------------------------------------------------------------- squeeze
class GlobalStats(nn.Module):
    """Per-channel statistics of the whole map: (N, C, H, W) -> (N, C), or (N, D, C) for D > 1."""

    def __init__(self, *stats: str):
        super().__init__()
        self.stats = stats

    @staticmethod
    def stat(x: torch.Tensor, name: str) -> torch.Tensor:
        if name == "avg":
            return x.mean((2, 3))
        if name == "max":
            return x.amax((2, 3))
        return (x.flatten(2).var(2) + 1e-5).sqrt()  # std: SRM's style statistic (unbiased variance)

    def forward(self, x):
        if len(self.stats) == 1:
            return self.stat(x, self.stats[0])
        return torch.stack([self.stat(x, s) for s in self.stats], 1)

    def extra_repr(self):
        return "+".join(self.stats)


class LocalAvg(nn.Module):
    """GE-theta-'s parameter-free gather: average over a (2e-1)^2 window at stride e (map out)."""

    def __init__(self, extent: int):
        super().__init__()
        self.extent = extent

    def forward(self, x):
        e = self.extent
        return F.avg_pool2d(x, 2 * e - 1, e, e - 1, count_include_pad=False)


class AttentionPool(nn.Module):
    """GC's context modelling: softmax over positions of a 1x1 conv, then the weighted channel sum."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, x):
        n, c = x.shape[:2]
        w = self.conv(x).flatten(1).softmax(1)  # (N, HW)
        return torch.bmm(x.flatten(2), w[:, :, None]).view(n, c)


class GlobalGather(nn.modules.lazy.LazyModuleMixin, nn.Module):
    """GE-theta's gather with a global extent: one depthwise conv whose kernel covers the whole map,
    then BN. The kernel is the site's map size, which only a forward pass tells: it is set by the
    dry forward ``build_model(..., input_size=...)`` runs, and stays fixed after."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.weight = nn.parameter.UninitializedParameter()
        self.bn = nn.BatchNorm2d(channels)

    def initialize_parameters(self, x) -> None:
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.weight.materialize((self.channels, 1, *x.shape[-2:]))
                nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default

    def forward(self, x):
        if x.shape[-2:] != self.weight.shape[-2:]:
            raise ValueError(f"a global GE gather built for {tuple(self.weight.shape[-2:])} maps got "
                             f"{tuple(x.shape[-2:])}: train and evaluate at model.input_size")
        return self.bn(F.conv2d(x, self.weight, groups=self.channels))


def depthwise_gather(channels: int, extent: int) -> nn.Module:
    """GE-theta's gather: log2(extent) depthwise 3x3 stride-2 convs, each with BN, ReLU between;
    extent 0: :class:`GlobalGather`."""
    if not extent:
        return GlobalGather(channels)
    layers: list[nn.Module] = []
    for i in range(int(math.log2(extent))):
        layers += [nn.ReLU(inplace=True)] if i else []
        layers += [nn.Conv2d(channels, channels, 3, 2, 1, groups=channels, bias=False), nn.BatchNorm2d(channels)]
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class Squeeze:
    """How a feature map is summarised before the excitation."""

    make: Callable[[int, "SESpec"], nn.Module]  # (channels, spec) -> (N,C,H,W) -> (N,C) / (N,D,C) vectors or a map
    descriptors: int  # D per channel for vectors; 0: the squeeze keeps a map (per-position excitation)
    ops_per_element: int  # paper-convention elementwise ops per input element (convs/matmuls count as MACs)
    extent: bool = False  # takes se.extent


SQUEEZES: dict[str, Squeeze] = {
    "avg": Squeeze(lambda c, s: LocalAvg(s.extent) if s.extent else GlobalStats("avg"), 1, 1, extent=True),
    "max": Squeeze(lambda c, s: GlobalStats("max"), 1, 1),
    "none": Squeeze(lambda c, s: nn.Identity(), 0, 0),
    "avgmax": Squeeze(lambda c, s: GlobalStats("avg", "max"), 2, 2),
    "avgstd": Squeeze(lambda c, s: GlobalStats("avg", "std"), 2, 2),
    "attention": Squeeze(lambda c, s: AttentionPool(c), 1, 0),
    "gather": Squeeze(lambda c, s: depthwise_gather(c, s.extent), 0, 0, extent=True),
}


def keeps_map(spec: "SESpec") -> bool:
    """The squeeze gives a map (excited per position, then resized to the input) rather than vectors."""
    return SQUEEZES[spec.squeeze].descriptors == 0 or (spec.squeeze == "avg" and bool(spec.extent))


# ---------------------------------------------------------------------------- excitation
def eca_kernel(channels: int) -> int:
    """ECA's adaptive kernel (Wang et al., CVPR 2020, gamma = 2, b = 1): t = |(log2 C + 1) / 2|, made odd.
    timm clamps it to >= 3; the two agree from C = 8 up."""
    t = int(abs((math.log2(channels) + 1) / 2))
    return t if t % 2 else t + 1


def hidden_width(channels: int, spec: "SESpec") -> int:
    """C // r (the paper); with hidden_divisor d > 1, timm's rounding: the nearest multiple of d, at least d."""
    d = spec.hidden_divisor
    h = channels // spec.reduction if d == 1 else max(d, int(channels / spec.reduction + d / 2) // d * d)
    return max(h, spec.min_hidden)


def _build_fc(b: nn.Module, c: int, h: int, spec: "SESpec", on_map: bool, norm: bool = False) -> None:
    layer = (lambda i, o: nn.Conv2d(i, o, 1, bias=spec.bias)) if on_map else (lambda i, o: nn.Linear(i, o, bias=spec.bias))
    b.fc1 = layer(c, h)
    if norm:
        b.norm = nn.LayerNorm(h)
    b.relu = nn.ReLU(inplace=True)
    b.fc2 = layer(h, c)


def _build_conv1d(b, c, h, spec, on_map):
    k = eca_kernel(c) if spec.kernel_size == "adaptive" else spec.kernel_size
    b.conv = nn.Conv1d(SQUEEZES[spec.squeeze].descriptors, 1, k, padding=k // 2, bias=False)


def _build_channelwise(b, c, h, spec, on_map):
    b.weight = nn.Parameter(torch.zeros(SQUEEZES[spec.squeeze].descriptors, c))  # SRM initialises the CFC at 0
    b.bn = nn.BatchNorm1d(c)


def _per_descriptor(s: torch.Tensor) -> torch.Tensor:
    return s if s.ndim == 3 else s[:, None]  # (N, C) -> (N, 1, C)


def _channelwise(b, s):
    return b.bn((_per_descriptor(s) * b.weight).sum(1))


@dataclass(frozen=True)
class Excitation:
    """From the squeeze's vectors, (N, C) or (N, D, C), to per-channel logits, (N, C) or (N, D, C) summed
    over D afterwards (CBAM's shared MLP); or, on a map, per-position logits (N, C, h, w)."""

    build: Callable  # (block, channels, hidden, spec, on_map) -> None: registers the layers on the block
    run: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    keys: tuple[str, ...] = ()  # the spec keys it uses
    on_maps: bool = False


_FC_KEYS = ("reduction", "min_hidden", "hidden_divisor", "bias")
EXCITATIONS: dict[str, Excitation] = {
    "fc": Excitation(_build_fc, lambda b, s: b.fc2(b.relu(b.fc1(s))), _FC_KEYS, on_maps=True),
    "conv1d": Excitation(_build_conv1d, lambda b, s: b.conv(_per_descriptor(s))[:, 0], ("kernel_size",)),
    "channelwise": Excitation(_build_channelwise, _channelwise),
    "context": Excitation(lambda b, c, h, spec, m: _build_fc(b, c, h, spec, m, norm=True),
                          lambda b, s: b.fc2(b.relu(b.norm(b.fc1(s)))), _FC_KEYS),
    "identity": Excitation(lambda *a: None, lambda b, s: s, on_maps=True),
}

GATES: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "hard_sigmoid": nn.Hardsigmoid,
    "identity": nn.Identity,
}
FUSIONS = ("scale", "add")


class SpatialGate(nn.Module):
    """CBAM's spatial attention: [channel mean, channel max] -> 7x7 conv -> BN -> gate, rescaling positions."""

    def __init__(self, gate: type[nn.Module], kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)
        self.gate = gate()

    def forward(self, x):
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * self.gate(self.bn(self.conv(pooled)))


SPATIALS: dict[str, Callable[["SESpec"], nn.Module] | None] = {
    "none": None,
    "cbam": lambda spec: SpatialGate(GATES[spec.gate]),
}
SPATIAL_OPS = {"none": 0, "cbam": 3}  # two channel poolings and the rescale, per element

# integration strategy -> the place in a residual unit that carries the block (Fig. 5).
INTEGRATIONS: dict[str, str] = {
    "standard": "branch",  # on the residual branch, before the summation (Fig. 5a)
    "pre": "input",  # before the residual unit, on its branch input only (Fig. 5b)
    "post": "output",  # after the summation and its ReLU (Fig. 5c)
    "identity": "identity",  # on the identity connection, parallel to the branch (Fig. 5d)
    "conv3x3": "mid",  # right after the (first) 3x3 conv and its BN/ReLU (Table 15)
}
SITES = tuple(INTEGRATIONS.values())


def _choice(key: str, value, valid) -> None:
    if value not in valid:
        raise ConfigError(f"{key}={value!r} is not a valid choice; valid values: {', '.join(map(str, valid))}")


def _int(key: str, value, least: int, what: str) -> None:
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
    bias: bool | None = True
    kernel_size: int | str | None = None
    extent: int = 0
    integration: str = "standard"
    stages: str | tuple[int, ...] = "all"

    @classmethod
    def from_config(cls, cfg) -> "SESpec":
        """Build and validate from the ``se:`` config node (a mapping)."""
        known = [f.name for f in fields(cls)]
        extra = sorted(set(cfg) - set(known))
        if extra:
            raise ConfigError(f"unknown key(s) under se: {', '.join(extra)}; valid keys: {', '.join(sorted(known))}")
        stages = cfg.get("stages", "all")
        if stages is None:
            stages = ()
        if not isinstance(stages, str):
            stages = tuple(stages)
        spec = cls(**{**dict(cfg), "stages": stages, "extent": cfg.get("extent") or 0})
        spec.validate()
        return spec

    def validate(self) -> None:
        _choice("se.squeeze", self.squeeze, SQUEEZES)
        _choice("se.excitation", self.excitation, EXCITATIONS)
        _choice("se.gate", self.gate, GATES)
        _choice("se.fusion", self.fusion, FUSIONS)
        _choice("se.spatial", self.spatial, SPATIALS)
        _choice("se.integration", self.integration, INTEGRATIONS)
        sq, ex = SQUEEZES[self.squeeze], EXCITATIONS[self.excitation]
        if self.extent:
            if not sq.extent:
                raise ConfigError(f"se.extent={self.extent} applies to squeeze avg or gather, not "
                                  f"se.squeeze={self.squeeze!r}; use se.extent=0 (global)")
            _int("se.extent", self.extent, 2, "0 = global, else the gather extent")
            if self.squeeze == "gather" and self.extent & (self.extent - 1):
                raise ConfigError(f"se.extent={self.extent}: the gather squeeze halves the map per depthwise conv, "
                                  "so its extent must be a power of two (2, 4, 8, ...)")
        if keeps_map(self) and not ex.on_maps:
            ok = [k for k, e in EXCITATIONS.items() if e.on_maps]
            raise ConfigError(f"se.excitation={self.excitation!r} needs per-channel vectors, but "
                              f"se.squeeze={self.squeeze!r}{' with se.extent=%d' % self.extent if self.extent else ''} "
                              f"keeps a map; valid excitations for it: {', '.join(ok)}")
        for key in ("reduction", "min_hidden", "hidden_divisor", "bias", "kernel_size"):
            value = getattr(self, key)
            if key not in ex.keys and value is not None:
                users = [k for k, e in EXCITATIONS.items() if key in e.keys]
                raise ConfigError(f"se.{key}={value!r} does not apply to se.excitation={self.excitation!r} "
                                  f"(it applies to: {', '.join(users)}); set se.{key}=null")
            if key in ex.keys and value is None:
                raise ConfigError(f"se.excitation={self.excitation!r} needs se.{key} (it is null)")
        if "reduction" in ex.keys:
            _int("se.reduction", self.reduction, 1, "the paper uses 2..32")
            _int("se.min_hidden", self.min_hidden, 0, "0: no floor on C // r")
            _int("se.hidden_divisor", self.hidden_divisor, 1, "1: C // r as in the paper; 8: timm's rounding")
            if not isinstance(self.bias, bool):
                raise ConfigError(f"se.bias={self.bias!r} must be true or false")
        if "kernel_size" in ex.keys and self.kernel_size != "adaptive":
            if isinstance(self.kernel_size, bool) or not isinstance(self.kernel_size, int) or self.kernel_size < 1 \
                    or self.kernel_size % 2 == 0:
                raise ConfigError(f"se.kernel_size={self.kernel_size!r} must be 'adaptive' (ECA's rule) or an odd "
                                  "integer >= 1")
        if isinstance(self.stages, str):
            if self.stages != "all":
                raise ConfigError(f"se.stages={self.stages!r} must be 'all' or a list of stage ids such as [2, 3]")
        elif not all(isinstance(s, int) and not isinstance(s, bool) for s in self.stages):
            raise ConfigError(f"se.stages={list(self.stages)!r} must be a list of integer stage ids")

    def resolve_stages(self, available: Sequence[int]) -> tuple[int, ...]:
        """The stage ids that get SE on a backbone offering ``available`` (errors name the valid ids)."""
        if self.stages == "all":
            return tuple(available)
        bad = [s for s in self.stages if s not in available]
        if bad:
            raise ConfigError(
                f"se.stages={list(self.stages)} names stage(s) {bad} that this backbone lacks; "
                f"its stage ids are {list(available)} (use [] for no SE, or 'all')"
            )
        return tuple(sorted(set(self.stages)))


class SEBlock(nn.Module):
    """squeeze -> excitation -> gate -> fusion with the input [-> spatial gate]; SE by default."""

    def __init__(self, channels: int, spec: SESpec, name: str = "SE"):
        super().__init__()
        spec.validate()
        self.name, self.fusion, self.map = name, spec.fusion, keeps_map(spec)
        self.squeeze = SQUEEZES[spec.squeeze].make(channels, spec)
        self.ops_per_element = SQUEEZES[spec.squeeze].ops_per_element + 1 + SPATIAL_OPS[spec.spatial]
        ex = EXCITATIONS[spec.excitation]
        hidden = 0
        if "reduction" in ex.keys:
            hidden = hidden_width(channels, spec)
            if hidden < 1:
                raise ConfigError(
                    f"se.reduction={spec.reduction} is too large for {name}: it has C={channels} channels, "
                    f"so C // r = {hidden}; use r <= {channels}, or se.min_hidden=1 to keep at least one hidden "
                    f"unit (integration={spec.integration!r})"
                )
        ex.build(self, channels, hidden, spec, self.map)
        self._run = ex.run
        if spec.fusion == "add" and hasattr(self, "fc2"):  # GCNet's init: the block starts as the identity
            self.fc2.zero_init = True  # he_init leaves it
            nn.init.zeros_(self.fc2.weight)
            if self.fc2.bias is not None:
                nn.init.zeros_(self.fc2.bias)
        self.gate = GATES[spec.gate]()
        make_spatial = SPATIALS[spec.spatial]
        self.spatial = make_spatial(spec) if make_spatial else None

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """The gate's output, broadcastable to ``x``: per channel, or per position for map squeezes."""
        e = self._run(self, self.squeeze(x))
        if not self.map:
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
        rescale (README: the table per module); convs and matmuls are counted as multiply-adds."""
        return self.ops_per_element * x[0].numel()


class SiteMissing(ConfigError):
    """The integration asks for a place the unit does not have; ``offered`` lists the integrations it has."""

    def __init__(self, integration: str, unit: str, offered: list[str]):
        self.integration, self.unit, self.offered = integration, unit, offered
        super().__init__(f"se.integration={integration!r} has no place in {unit}; valid values: {', '.join(offered)}")


def integrations_for(sites) -> list[str]:
    """The integration strategies a unit offering ``sites`` supports, in registry order."""
    return [k for k, v in INTEGRATIONS.items() if v in sites]


class SESite(nn.Module):
    """The SE attachment of one unit.

    A unit calls ``self.se(x, site)`` at each place it offers; only the place chosen by the
    integration strategy transforms ``x``, every other call returns ``x`` unchanged.
    ``widths`` maps each site name the unit offers to the channel count it has there.
    """

    def __init__(self, spec: SESpec | None, widths: dict[str, int], name: str, required: bool = True):
        super().__init__()
        self.site = INTEGRATIONS[spec.integration] if spec is not None else None
        if self.site is not None and self.site not in widths:
            if required:
                raise SiteMissing(spec.integration, name, integrations_for(widths))
            self.site = None  # a unit of several parts (the Shake nets' branches): another part holds it
        self.block = SEBlock(widths[self.site], spec, name) if self.site is not None else None

    def forward(self, x: torch.Tensor, site: str) -> torch.Tensor:
        if site != self.site:
            return x
        return self.block(x)

    def add(self, branch: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """A residual unit's summation, ``self(branch, "branch") + self(identity, "identity")``;
        with the block on the branch (the standard integration) its fusion is folded into the add."""
        if self.site == "branch":
            return self.block(branch, add=identity)
        return self(branch, "branch") + self(identity, "identity")

    def extra_repr(self) -> str:
        return f"site={self.site}"
