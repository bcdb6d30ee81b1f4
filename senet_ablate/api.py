"""The Python API, in the style of timm's: ``create_model``, ``list_models``, ``profile``.

The same core as the command line (``models``, ``se``, ``weights``, ``complexity``) with the
config nodes replaced by keyword arguments: torch alone, no Hydra. Bad input raises the CLI's
:class:`~senet_ablate.errors.ConfigError`, with the same message.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import asdict

import torch
from torch import nn

from . import weights as _weights
from .complexity import count
from .errors import ConfigError
from .models import MODELS, build_model
from .models.mbconv import PUBLISHED_SE
from .se import SESpec

# create_model's ``se``: None/False (plain), True (the paper's block), "published", se.* keys, or an SESpec
SEArgument = bool | str | Mapping[str, object] | SESpec | None


def native_size(name: str) -> int:
    """The input side ``name`` is built for (its ``models.MODELS`` entry: 32 for the CIFAR backbones,
    299 for Inception-ResNet-v2, EfficientNet's per scale, else 224); 224 for a backbone of yours."""
    return MODELS[name].image_size if name in MODELS else 224


def list_models(pattern: str = "*") -> list[str]:
    """The backbone names (``model=`` on the command line) that match an fnmatch ``pattern``, sorted."""
    return sorted(fnmatch.filter(MODELS, pattern))


def se_spec(se: SEArgument, name: str | None = None) -> SESpec | None:
    """An :class:`SESpec` from ``create_model``'s ``se``, or None for the plain backbone.

    None/False: no SE. True: the paper's SE block (Sec. 3; ``conf/se/se.yaml``: average squeeze,
    FC excitation with r = 16 and biases, sigmoid gate, on the residual branch of every stage).
    "published": backbone ``name``'s published SE (EfficientNet's, MobileNetV3's: ``models/mbconv.py``;
    the paper's block for the others). A mapping: keys of the ``se:`` config node over those defaults
    (the paper's). ``stages=[]``: no SE.
    """
    if se is None or se is False:
        return None
    if se is True:
        spec = SESpec()
    elif se == "published":
        spec = SESpec.from_config({**asdict(SESpec()), **PUBLISHED_SE.get(name, {})})
    elif isinstance(se, SESpec):
        spec = se
    elif isinstance(se, Mapping):
        spec = SESpec.from_config({**asdict(SESpec()), **se})
    else:
        raise ConfigError(f"se={se!r} must be None, True, 'published', a dict of se.* keys or an SESpec")
    return None if spec.plain else spec


def create_model(
    name: str,
    se: SEArgument = None,
    num_classes: int = 1000,
    *,
    weights: str | None = None,
    weights_file: str | None = None,
    input_size: int | None = None,
    device: str | torch.device | None = None,
    **layout_options: object,
) -> nn.Module:
    """Build backbone ``name`` (see :func:`list_models`), with SE as ``se`` says (:func:`se_spec`;
    ``se="published"``: the SE of the published net, e.g. EfficientNet-B0's).

    ``layout_options``: the backbone's ``model.<key>`` options (e.g. ``stride_style``).
    ``weights``: what ``model.weights`` takes (``timm:<name>``, ``torchvision:<name>`` or a state-dict
    file; ``weights_file``: a local copy of a library's state dict), checked against the model before
    it is loaded. ``input_size``: only for blocks sized by their map (GE-theta's global gather);
    default :func:`native_size`. ``device="meta"``: shapes only.
    """
    spec = se_spec(se, name)
    size = input_size if input_size is not None else native_size(name)
    if not weights:
        return build_model(name, spec, num_classes, device=device, input_size=size, **layout_options)
    meta = build_model(name, spec, num_classes, device="meta", input_size=size, **layout_options)
    se_cfg = None if spec is None else asdict(spec)
    state = _weights.fitted(meta, {"name": name, **layout_options}, se_cfg, str(weights), weights_file)
    model = build_model(name, spec, num_classes, device=device, input_size=size, **layout_options)
    model.load_state_dict(state)
    return model


def profile(model_or_name: nn.Module | str, input_size: int | None = None, **create_kwargs: object) -> dict:
    """Params, multiply-adds, SE elementwise ops and GFLOPs (the paper's convention: MACs plus SE
    elementwise ops; Tables 2, 13, 15, 16) of one ``3 x input_size x input_size`` image, as ``task=profile``
    records them.

    A name is built on the meta device by :func:`create_model` (``create_kwargs``), at its
    :func:`native_size` unless ``input_size`` is given; a module is counted at 224 unless given.
    """
    if isinstance(model_or_name, str):
        size = input_size or native_size(model_or_name)
        model = create_model(model_or_name, input_size=size, **{"device": "meta", **create_kwargs})
    elif create_kwargs:
        raise TypeError(f"profile() of a module takes no create_model arguments: {', '.join(create_kwargs)}")
    else:
        model, size = model_or_name, input_size or 224
    return count(model, size).as_dict()
