"""Where a block sits in a backbone (Fig. 5, Tables 14 and 15). A backbone gives each unit (residual
unit, Inception module, VGG conv, depthwise-separable block, shuffle unit) an :class:`SESite` and
calls it at the places the unit offers; the integration strategy decides which place holds the
block, and a unit without that place fails at build time, naming the integrations it does offer.

    input     the unit's input, on its transform path only (SE-PRE)
    mid       after the unit's (first) 3x3 conv and its BN/ReLU (SE 3x3; MobileNet: the depthwise conv)
    branch    the output of the unit's transform F_tr: before the summation in a residual unit,
              the unit's output in a plain one (VGG conv, Inception module, MobileNet block)
    identity  the identity/shortcut path, parallel to the branch (residual units only)
    output    after the summation (and its ReLU)
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..errors import ConfigError
from .build import build_block
from .spec import INTEGRATIONS, SESpec

__all__ = ["INTEGRATIONS", "SESite", "SiteMissing", "block_name", "integrations_for"]


class SiteMissing(ConfigError):
    """The integration asks for a place the unit does not have; ``offered`` lists the integrations it has."""

    def __init__(self, integration: str, unit: str, offered: list[str]) -> None:
        self.integration, self.unit, self.offered = integration, unit, offered
        super().__init__(f"se.integration={integration!r} has no place in {unit}; valid values: {', '.join(offered)}")


def integrations_for(sites: Iterable[str]) -> list[str]:
    """The integration strategies a unit offering ``sites`` supports, in registry order."""
    return [k for k, v in INTEGRATIONS.items() if v in sites]


def block_name(stage: int, index: int, suffix: str = "") -> str:
    """``SE_<stage>_<index><suffix>``: the paper's stage id, the unit's index in its stage (from 1), and
    a suffix for one of a unit's parts (the Shake nets' branches ``a`` and ``b``)."""
    return f"SE_{stage}_{index}{suffix}"


class SESite(nn.Module):
    """The SE attachment of one unit: unit ``index`` (from 1) of stage ``stage`` (paper ids), or one of
    its parts (``suffix``); its block is named by :func:`block_name`.

    A unit calls ``self.se(x, site)`` at each place it offers; only the place chosen by the
    integration strategy transforms ``x``, every other call returns ``x`` unchanged.
    ``widths`` maps each site name the unit offers to the channel count it has there (``input``'s is
    also the C of C // r under ``se.hidden_from=input``). With
    ``required=False`` a unit of several parts lets another part hold the block.
    """

    def __init__(
        self,
        spec: SESpec | None,
        widths: dict[str, int],
        *,
        stage: int,
        index: int,
        suffix: str = "",
        required: bool = True,
    ) -> None:
        super().__init__()
        self.name = block_name(stage, index, suffix)
        self.site = INTEGRATIONS[spec.integration] if spec is not None else None
        if self.site is not None and self.site not in widths:
            if required:
                raise SiteMissing(spec.integration, self.name, integrations_for(widths))
            self.site = None  # a unit of several parts (the Shake nets' branches): another part holds it
        self.block = None
        if self.site is not None:
            self.block = build_block(widths[self.site], spec, self.name, stage, index, widths.get("input"))

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
