"""What every backbone shares: conv + BN (+ ReLU), the He initialisation, the stage loop, option
checks, and the :class:`Port` record that maps published weights onto a backbone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..se import SESpec


def conv_bn(
    cin: int,
    cout: int,
    k: int | tuple[int, int],
    stride: int = 1,
    padding: int | tuple[int, int] | None = None,
    groups: int = 1,
    relu: bool = False,
    bias: bool = False,
    eps: float = 1e-5,
    dilation: int = 1,
) -> nn.Sequential:
    """conv -> BN (-> ReLU); ``padding`` defaults to "same" for odd kernels at stride 1."""
    if padding is None:
        padding = (k // 2) if isinstance(k, int) else (k[0] // 2, k[1] // 2)
    conv = nn.Conv2d(cin, cout, k, stride, padding, dilation=dilation, groups=groups, bias=bias)
    layers = [conv, nn.BatchNorm2d(cout, eps=eps)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


def he_init(model: nn.Module) -> nn.Module:
    """He initialisation (the paper's [66]) for convs; BN to the identity. A meta model is left alone,
    and so is a conv marked ``zero_init`` (the last layer of an additive attention block)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and not m.weight.is_meta and not getattr(m, "zero_init", False):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.weight is not None and not m.weight.is_meta:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


class Backbone(nn.Module):
    """The frame the backbones share: stem -> stages (with ``se.between``'s modules between them, when
    ``build_model`` adds them) -> head (a last conv, if any) -> global average pool (adaptive: any input
    size) [-> pre-logits (MobileNetV3's linear layer)] -> dropout -> fc. A subclass builds ``stem`` and its
    stages, then calls :meth:`finish`."""

    def finish(
        self,
        stages: Sequence[nn.Module],
        width: int,
        num_classes: int,
        dropout: float = 0.0,
        head: nn.Module | None = None,
        pre_logits: nn.Module | None = None,
    ) -> None:
        self.stages = nn.Sequential(*stages)
        self.head = head if head is not None else nn.Identity()
        if pre_logits is not None:
            self.pre_logits = pre_logits
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(width, num_classes)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if hasattr(self, "between") and str(i) in self.between:  # se.between (se/between.py)
                x = self.between[str(i)](x)
        x = torch.flatten(F.adaptive_avg_pool2d(self.head(x), 1), 1)
        if hasattr(self, "pre_logits"):
            x = self.pre_logits(x)
        return self.fc(self.dropout(x))


def make_stages(
    stage_ids: Sequence[int],
    depths: Sequence[int],
    widths: Sequence[int],
    cin: int,
    se: SESpec | None,
    unit: Callable[..., nn.Module],
    expansion: int = 1,
) -> tuple[list[nn.Sequential], int]:
    """The stages of a residual net: for each stage id (the paper's; Table 13 picks among them),
    ``depth`` units ``unit(cin, width, stride, spec, stage, index)``, with stride 2 on the first unit
    of every stage but the first, ``spec`` = ``se`` in the stages it chooses (else None) and
    ``index`` counting units from 1. Returns the stages and their output width (``width * expansion``)."""
    chosen = se.resolve_stages(tuple(stage_ids)) if se is not None else ()
    stages = []
    for i, (sid, depth, width) in enumerate(zip(stage_ids, depths, widths, strict=True)):
        units = []
        for b in range(depth):
            units.append(unit(cin, width, 2 if (b == 0 and i > 0) else 1, se if sid in chosen else None, sid, b + 1))
            cin = width * expansion
        stages.append(nn.Sequential(*units))
    return stages, cin


def check_choice(key: str, value: object, valid: Sequence[object]) -> None:
    """A ``ConfigError`` naming ``key`` and its valid values when ``value`` is not one of them."""
    if value not in valid:
        raise ConfigError(f"{key}={value!r} is not valid; valid values: {', '.join(map(str, valid))}")


def check_classes(num_classes: object) -> None:
    """A ``ConfigError`` unless ``num_classes`` is a positive integer (a bool is not one)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"model.num_classes={num_classes!r} must be a positive integer")


@dataclass(frozen=True)
class Port:
    """How a published state dict maps onto one of our backbones (``weights.py``).

    ``keys``: (regex, replacement) renames applied in order to every source key; a replacement
    may be a function of the match. ``needs``: model options the weights were trained with
    (e.g. the Caffe stem pool); ``se``: the SE settings they carry, or None for a plain net.
    """

    model: str
    keys: tuple
    needs: dict = field(default_factory=dict)
    se: dict | None = None


# the released SE models: r = 16, FC biases, sigmoid gate, average squeeze, on the branch
PAPER_SE = {
    "squeeze": "avg",
    "gate": "sigmoid",
    "reduction": 16,
    "hidden_from": "site",
    "hidden_act": "relu",
    "bias": True,
    "integration": "standard",
    "stages": "all",
}
