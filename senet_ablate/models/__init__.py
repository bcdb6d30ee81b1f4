"""Backbone registry: ``model.name`` -> its builder and native input. A new backbone is one module
plus one entry here.

A builder takes ``se`` (an :class:`SESpec` or None), ``num_classes`` and its own layout options
(the keys of its ``conf/model/*.yaml``, e.g. ``stride_style``); ``PORTS`` maps published weights
(``timm:<name>``, ``torchvision:<name>``) onto the backbones (``weights.py``).
"""

from __future__ import annotations

import inspect
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError
from ..se import SESpec, SiteMissing
from ..se.between import BETWEEN
from ..targets import import_object
from . import cifar, inception, inception_resnet, mbconv, mbconv_ports, mobilenet, resnet, shufflenet, vgg
from .layers import Backbone
from .resnet import BasicBlock, Bottleneck, cifar_resnet, imagenet_resnet


@dataclass(frozen=True)
class Entry:
    """One backbone: its builder and the input it is built for, read by the API (``native_size``)
    and by the configs (``model.native``: what task=profile counts at when no data is chosen)."""

    build: Callable[..., nn.Module]
    image_size: int = 224  # the native input side
    num_classes: int = 1000


def _cifar(build: Callable[..., nn.Module], num_classes: int = 10) -> Entry:
    return Entry(build, 32, num_classes)


MODELS: dict[str, Entry] = {
    "resnet18": Entry(partial(imagenet_resnet, BasicBlock, (2, 2, 2, 2))),
    "resnet34": Entry(partial(imagenet_resnet, BasicBlock, (3, 4, 6, 3))),
    "resnet50": Entry(partial(imagenet_resnet, Bottleneck, (3, 4, 6, 3))),
    "resnet101": Entry(partial(imagenet_resnet, Bottleneck, (3, 4, 23, 3))),
    "resnet152": Entry(partial(imagenet_resnet, Bottleneck, (3, 8, 36, 3))),
    "resnext50_32x4d": Entry(partial(imagenet_resnet, Bottleneck, (3, 4, 6, 3), groups=32, reduce=2, mid=2)),
    "resnext101_32x4d": Entry(partial(imagenet_resnet, Bottleneck, (3, 4, 23, 3), groups=32, reduce=2, mid=2)),
    "senet154": Entry(resnet.senet154),
    "bn_inception": Entry(inception.bn_inception),
    "shufflenet_v1_g3": Entry(shufflenet.shufflenet_v1_g3),
    "inception_resnet_v2": Entry(inception_resnet.inception_resnet_v2, 299),
    "vgg16_bn": Entry(vgg.vgg16_bn),
    "mobilenet_v1": Entry(mobilenet.mobilenet_v1),
    **{name: Entry(build, mbconv.NATIVE.get(name, 224)) for name, build in mbconv.MODELS.items()},
    **{f"cifar_resnet{d}": _cifar(partial(cifar_resnet, d)) for d in (20, 32, 44, 56, 110)},
    "preact_resnet110": _cifar(cifar.preact_resnet110),
    "preact_resnet164": _cifar(cifar.preact_resnet164),
    "wrn16_8": _cifar(cifar.wrn16_8),
    "shake_shake26_2x96d": _cifar(cifar.shake_shake26_2x96d),
    "shake_even29_2x4x64d": _cifar(cifar.shake_even29_2x4x64d, 100),  # CIFAR-100 (Table 5)
}

PORTS = {**resnet.PORTS, **vgg.PORTS, **mobilenet.PORTS, **inception_resnet.PORTS, **mbconv_ports.ports()}

# model config keys that are not layout options of the builder
# (se_stages: the se.stages a model's config starts from, conf/se/se.yaml)
NOT_OPTIONS = ("name", "_target_", "num_classes", "input_size", "native", "weights", "weights_file", "se_stages")


def builder_of(name: str) -> Callable[..., nn.Module]:
    """The builder of backbone ``name``: ours (``MODELS``), or yours by its dotted path
    (``model._target_: my_pkg.nets.tiny_net``), called as ``builder(se=..., num_classes=..., **options)``."""
    if name in MODELS:
        return MODELS[name].build
    if "." not in name:
        raise ConfigError(
            f"model.name={name!r} is not a known backbone; valid values: {', '.join(MODELS)} "
            "(or model._target_=<your builder's dotted path>)"
        )
    builder = import_object(name, "model._target_")
    if not callable(builder):
        raise ConfigError(f"model._target_={name!r} is {builder!r}, not a function or class that builds a model")
    return builder


def options_of(name: str) -> list[str]:
    """The layout options ``model.<key>`` that backbone ``name`` accepts (its keyword-only arguments)."""
    sig = inspect.signature(builder_of(name))
    return [k for k, p in sig.parameters.items() if p.kind == p.KEYWORD_ONLY and k not in ("se", "num_classes")]


def stage_widths(name: str, meta_net: nn.Module, input_size: int) -> list[int]:
    """The output channels of each stage of a backbone of the stage frame (``Backbone``), from a dry pass
    of a meta build: what ``se.between`` sizes its modules by."""
    if not isinstance(meta_net, Backbone):
        raise ConfigError(
            f"se.between places a module between the stages of our backbones (layers.Backbone); {name} has no "
            "such frame; valid here: se.between=none"
        )
    widths, x = [], torch.zeros(1, 3, input_size, input_size, device="meta")
    meta_net.eval()  # BN of a batch of one 1x1 map
    with torch.no_grad():
        x = meta_net.stem(x)
        for stage in meta_net.stages:
            x = stage(x)
            widths.append(x.shape[1])
    return widths


def build_model(
    name: str,
    se: SESpec | None,
    num_classes: int,
    device: str | torch.device | None = None,
    input_size: int | None = None,
    **options: object,
) -> nn.Module:
    """Build ``name`` with SE as ``se`` says (None or no stages = the plain backbone).

    ``device="meta"`` builds shapes only: free, and enough to validate a config or count complexity.
    A block whose weights take the shape of its site's map (GE-theta's global gather) gets it from
    one dry forward pass of a ``3 x input_size x input_size`` image.
    """
    builder = builder_of(name)
    valid = options_of(name)
    extra = sorted(set(options) - set(valid))
    if extra:
        raise ConfigError(f"model.{extra[0]} is not an option of {name}; its options: {', '.join(valid) or '(none)'}")
    try:
        with torch.device(device) if device is not None else nullcontext():
            model = builder(se=se, num_classes=num_classes, **options)
    except SiteMissing as e:
        raise ConfigError(
            f"se.integration={e.integration!r} is not available on {name} (its {e.unit} has no such "
            f"place); valid integrations for {name}: {', '.join(e.offered)}"
        ) from None
    if se is not None and se.between != "none":
        with torch.device("meta"):
            meta_net = builder(se=None, num_classes=num_classes, **options)
        widths = stage_widths(name, meta_net, input_size or 224)
        with torch.device(device) if device is not None else nullcontext():
            model.between = nn.ModuleDict({str(i): BETWEEN[se.between](w) for i, w in enumerate(widths[:-1])})
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        if input_size is None:
            raise ConfigError(
                f"se.squeeze={se.squeeze} with se.extent=0 sizes its weights by each site's map: "
                f"build {name} with its input size (model.input_size)"
            )
        param = next(p for p in model.parameters() if not isinstance(p, nn.parameter.UninitializedParameter))
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size, device=param.device))
        model.train()
    return model
