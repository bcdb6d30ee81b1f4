"""The Squeeze-and-Excitation ablation space (Hu et al., TPAMI v4, Tables 10-16).

Every axis of the study is one small registry below; a backbone asks for an :class:`SESite`
per unit (residual unit, Inception module, VGG conv, depthwise-separable block, shuffle unit) and
calls it at the places that unit offers. The integration strategy decides which place holds the
SE block; a unit without that place fails at build time, naming the integrations it does offer.

    input     the unit's input, on its transform path only (SE-PRE)
    mid       after the unit's (first) 3x3 conv and its BN/ReLU (SE 3x3; MobileNet: the depthwise conv)
    branch    the output of the unit's transform F_tr: before the summation in a residual unit,
              the unit's output in a plain one (VGG conv, Inception module, MobileNet block)
    identity  the identity/shortcut path, parallel to the branch (residual units only)
    output    after the summation (and its ReLU)

    squeeze      Table 11 (avg | max) and Table 16 (none = NoSqueeze)
    gate         Table 12 (sigmoid | tanh | relu), plus hard_sigmoid
    reduction    Table 10 (r; hidden width C // r, never rounded to a multiple of 8)
    min_hidden   a floor on C // r (0: none); lets Table 10's r = 32 run on CIFAR's 16-channel stage
    bias         FC biases: dropped in the paper's ablations, kept in its released models
    integration  Table 14 (standard | pre | post | identity) and Table 15 (conv3x3)
    stages       Table 13 (paper stage ids; [] = the plain baseline, "all" = SE All)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from .errors import ConfigError


@dataclass(frozen=True)
class Squeeze:
    """How a feature map is summarised before the excitation."""

    pool: Callable[[torch.Tensor], torch.Tensor]  # (N, C, H, W) -> (N, C) or (N, C, H, W)
    spatial: bool  # True: excitation acts per position with 1x1 convs (NoSqueeze)
    ops_per_element: int  # elementwise ops the pooling costs per input element


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    return x.mean((2, 3))


def global_max_pool(x: torch.Tensor) -> torch.Tensor:
    return x.amax((2, 3))


def no_pool(x: torch.Tensor) -> torch.Tensor:
    return x


SQUEEZES: dict[str, Squeeze] = {
    "avg": Squeeze(global_avg_pool, spatial=False, ops_per_element=1),
    "max": Squeeze(global_max_pool, spatial=False, ops_per_element=1),
    "none": Squeeze(no_pool, spatial=True, ops_per_element=0),
}

GATES: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "hard_sigmoid": nn.Hardsigmoid,
}

# integration strategy -> the place in a residual unit that carries the SE block (Fig. 5).
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


@dataclass(frozen=True)
class SESpec:
    """One point of the ablation space. ``stages`` is "all" or a tuple of paper stage ids."""

    squeeze: str = "avg"
    gate: str = "sigmoid"
    reduction: int = 16
    min_hidden: int = 0
    bias: bool = True
    integration: str = "standard"
    stages: str | tuple[int, ...] = "all"

    @classmethod
    def from_config(cls, cfg) -> "SESpec":
        """Build and validate from the ``se:`` config node (a mapping)."""
        known = {f for f in cls.__dataclass_fields__}
        extra = sorted(set(cfg) - known)
        if extra:
            raise ConfigError(f"unknown key(s) under se: {', '.join(extra)}; valid keys: {', '.join(sorted(known))}")
        stages = cfg.get("stages", "all")
        if stages is None:
            stages = ()
        if not isinstance(stages, str):
            stages = tuple(stages)
        spec = cls(**{**dict(cfg), "stages": stages})
        spec.validate()
        return spec

    def validate(self) -> None:
        _choice("se.squeeze", self.squeeze, SQUEEZES)
        _choice("se.gate", self.gate, GATES)
        _choice("se.integration", self.integration, INTEGRATIONS)
        if isinstance(self.reduction, bool) or not isinstance(self.reduction, int) or self.reduction < 1:
            raise ConfigError(f"se.reduction={self.reduction!r} must be an integer >= 1 (the paper uses 2..32)")
        if isinstance(self.min_hidden, bool) or not isinstance(self.min_hidden, int) or self.min_hidden < 0:
            raise ConfigError(f"se.min_hidden={self.min_hidden!r} must be an integer >= 0 (0: no floor on C // r)")
        if not isinstance(self.bias, bool):
            raise ConfigError(f"se.bias={self.bias!r} must be true or false")
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
    """Squeeze -> FC (C -> C//r, at least ``min_hidden``) -> ReLU -> FC -> gate -> rescale the input."""

    def __init__(self, channels: int, spec: SESpec, name: str = "SE"):
        super().__init__()
        hidden = max(channels // spec.reduction, spec.min_hidden)
        if hidden < 1:
            raise ConfigError(
                f"se.reduction={spec.reduction} is too large for {name}: it has C={channels} channels, "
                f"so C // r = {hidden}; use r <= {channels}, or se.min_hidden=1 to keep at least one hidden "
                f"unit (integration={spec.integration!r})"
            )
        self.name = name
        self.squeeze = SQUEEZES[spec.squeeze]
        layer = (lambda i, o: nn.Conv2d(i, o, 1, bias=spec.bias)) if self.squeeze.spatial else (
            lambda i, o: nn.Linear(i, o, bias=spec.bias)
        )
        self.fc1 = layer(channels, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = layer(hidden, channels)
        self.gate = GATES[spec.gate]()

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel (or, for NoSqueeze, per-position) scales, broadcastable to ``x``."""
        e = self.gate(self.fc2(self.relu(self.fc1(self.squeeze.pool(x)))))
        return e if self.squeeze.spatial else e[:, :, None, None]

    def forward(self, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` rescaled; with ``add`` (a residual unit's other path), ``add + x * scale`` in one
        pass: no full-size intermediate, so SE costs its pooling and its FCs, not an extra copy."""
        scale = self.excitation(x)
        return x * scale if add is None else torch.addcmul(add, x, scale)

    def elementwise_ops(self, x: torch.Tensor) -> int:
        """Paper-convention extra ops per sample: the squeeze pooling and the rescale, one per element."""
        return (self.squeeze.ops_per_element + 1) * x[0].numel()


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
        with SE on the branch (the standard integration) the rescale is fused into the add."""
        if self.site == "branch":
            return self.block(branch, add=identity)
        return self(branch, "branch") + self(identity, "identity")

    def extra_repr(self) -> str:
        return f"site={self.site}"
