"""Backbone registry: ``model.name`` -> builder. Add a backbone with one entry here."""
from __future__ import annotations

from contextlib import nullcontext
from functools import partial

import torch
from torch import nn

from ..errors import ConfigError
from ..se import SESpec
from .resnet import BasicBlock, Bottleneck, cifar_resnet, imagenet_resnet

MODELS = {
    "resnet18": partial(imagenet_resnet, BasicBlock, (2, 2, 2, 2)),
    "resnet34": partial(imagenet_resnet, BasicBlock, (3, 4, 6, 3)),
    "resnet50": partial(imagenet_resnet, Bottleneck, (3, 4, 6, 3)),
    "resnet101": partial(imagenet_resnet, Bottleneck, (3, 4, 23, 3)),
    "resnet152": partial(imagenet_resnet, Bottleneck, (3, 8, 36, 3)),
    **{f"cifar_resnet{d}": partial(cifar_resnet, d) for d in (20, 32, 44, 56, 110)},
}


def build_model(name: str, se: SESpec | None, num_classes: int, stride_style: str = "caffe",
                device: str | torch.device | None = None) -> nn.Module:
    """Build ``name`` with SE as ``se`` says (None or no stages = the plain backbone).

    ``device="meta"`` builds shapes only: free, and enough to validate a config or count complexity.
    """
    if name not in MODELS:
        raise ConfigError(f"model.name={name!r} is not a known backbone; valid values: {', '.join(MODELS)}")
    with torch.device(device) if device is not None else nullcontext():
        return MODELS[name](se=se, num_classes=num_classes, stride_style=stride_style)

