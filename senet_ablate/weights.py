"""Published weights onto our backbones: ``model.weights`` = a local state-dict file in our own
key layout, or ``timm:<name>`` / ``torchvision:<name>`` (downloaded by that library, or read from
``model.weights_file`` in that library's key layout), renamed by the backbone's explicit key map
(its ``PORTS`` entry) and checked key by key and shape by shape before any work starts.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from .errors import ConfigError
from .models import MODELS, PORTS
from .models.layers import Port

LIBRARIES = ("timm", "torchvision")


def library_of(source: str) -> tuple[str | None, str]:
    """("timm", "legacy_seresnet50") for "timm:legacy_seresnet50"; (None, path) for a file."""
    lib, sep, name = str(source).partition(":")
    return (lib, name) if sep and lib in LIBRARIES else (None, str(source))


def port_of(source: str) -> Port | None:
    lib, name = library_of(source)
    if lib is None:
        return None
    if source not in PORTS:
        known = sorted(k for k in PORTS if k.startswith(lib + ":"))
        raise ConfigError(f"model.weights={source!r} has no key map; valid {lib} sources: {', '.join(known)}")
    return PORTS[source]


def rename(state: dict, keys: Sequence[tuple[str, str | Callable[[re.Match], str]]]) -> dict:
    """Apply a port's (regex, replacement) renames, in order, to every key."""
    out = {}
    for k, v in state.items():
        for pattern, repl in keys:
            k = re.sub(pattern, repl, k)
        out[k] = v
    return out


def _read_file(path: str, key: str) -> dict:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{key}={path!r}: no such file")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input
        raise ConfigError(f"{key}={path!r} is not a readable torch state dict ({type(e).__name__}: {e})") from None
    for wrapper in ("model", "state_dict"):  # our last.pt, and the usual training checkpoints
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{key}={path!r} holds no state dict (a mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # DDP-saved dicts


def download(lib: str, name: str) -> dict:
    """The library's own pretrained weights (network on first use; the library caches them)."""
    try:
        module = __import__(lib)
    except ImportError:
        raise ConfigError(
            f"model.weights={lib}:{name} needs the {lib} package: pip install {lib} (or pass a local "
            f"copy of its state dict as model.weights_file=...)"
        ) from None
    try:
        if lib == "timm":
            return module.create_model(name, pretrained=True).state_dict()
        from torchvision.models import get_model

        return get_model(name, weights="DEFAULT").state_dict()
    except Exception as e:  # noqa: BLE001 - offline, hub errors, unknown names
        raise ConfigError(
            f"could not fetch the {lib}:{name} weights ({type(e).__name__}: {str(e)[:300]}). Check the network "
            f"connection, or save them where you have one, e.g. torch.save({_recipe(lib, name)}.state_dict(), "
            f"'{name}.pth'), and pass model.weights_file={name}.pth"
        ) from None


def _recipe(lib: str, name: str) -> str:
    return (
        f"timm.create_model('{name}', pretrained=True)"
        if lib == "timm"
        else f"torchvision.models.get_model('{name}', weights='DEFAULT')"
    )


def check_fit(model_cfg: dict, se: dict | None, source: str) -> None:
    """The port's backbone, layout options and SE settings against the job's config."""
    port = port_of(source)
    if port is None:
        return
    wrong = []
    if model_cfg["name"] != port.model:
        wrong.append(f"model={port.model}")
    default = _defaults(port.model)
    for key, value in port.needs.items():
        if model_cfg.get(key, default.get(key)) != value:
            wrong.append(f"model.{key}={value}")
    if port.se is None and se is not None:
        wrong.append("se.stages=[]")
    for key, value in (port.se or {}).items():
        if (se or {}).get(key) != value:
            wrong.append(f"se.{key}={value}")
    if wrong:
        raise ConfigError(f"model.weights={source} was trained with a different layout; add: {' '.join(wrong)}")


def fitted(
    meta_model: nn.Module,
    model_cfg: dict,
    se: dict | None,
    source: str,
    weights_file: str | None = None,
    keep: Callable[[str], bool] | None = None,
) -> dict:
    """:func:`check_fit`, then :func:`prepare`: our state dict for ``meta_model`` from ``source``, every
    mismatch named before any work (the app's ``model.weights`` and ``create_model(weights=...)``)."""
    check_fit(model_cfg, se, source)
    return prepare(meta_model, source, weights_file, keep=keep)


def _defaults(name: str) -> dict:
    sig = inspect.signature(MODELS[name].build) if name in MODELS else None
    return {k: p.default for k, p in sig.parameters.items()} if sig else {}


def source_state(source: str, weights_file: str | None = None) -> dict:
    """The source's state dict in its own key layout."""
    lib, name = library_of(source)
    if lib is None:
        return _read_file(name, "model.weights")
    return _read_file(weights_file, "model.weights_file") if weights_file else download(lib, name)


def prepare(
    model: nn.Module,
    source: str,
    weights_file: str | None = None,
    state: dict | None = None,
    keep: Callable[[str], bool] | None = None,
) -> dict:
    """Our state dict for ``model`` (a meta model is enough) from ``source``: renamed by the port and
    checked; every missing, unexpected and mis-shaped key is named. Reshapes only between equal
    sizes (a 1x1 conv's weight onto a linear layer's). ``keep(key)``: only those of the renamed keys
    (a detector's trunk takes a classifier's weights without its head)."""
    port = port_of(source)
    state = rename(state if state is not None else source_state(source, weights_file), port.keys if port else ())
    if keep is not None:
        state = {k: v for k, v in state.items() if keep(k)}
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    misshaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(ours[k].shape)}"
        for k in ours
        if k in state and state[k].numel() != ours[k].numel()
    ]
    if missing or unexpected or misshaped:

        def few(xs):
            return ", ".join(xs[:6]) + (f" (+{len(xs) - 6} more)" if len(xs) > 6 else "")

        parts = [
            f"{len(xs)} {what}: {few(xs)}"
            for what, xs in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("mis-shaped (theirs vs ours)", misshaped),
            )
            if xs
        ]
        raise ConfigError(
            f"model.weights={source} does not fit this model: "
            + "; ".join(parts)
            + ". Check model=, its options, se.* and num_classes against the weights."
        )
    return {k: state[k].reshape(v.shape).to(v.dtype) for k, v in ours.items()}


def preprocessing(source: str) -> dict | None:
    """The eval preprocessing the weights were trained with, from the library's own metadata
    (offline): image_size, resize (shorter side), mean, std, interpolation. None for a file."""
    lib, name = library_of(source)
    if lib == "timm":
        try:
            import timm
        except ImportError:
            return None
        c = timm.models.get_pretrained_cfg(name)
        if c is None:
            return None
        size = c.input_size[-1]
        return {
            "image_size": size,
            "resize": int(size / c.crop_pct),
            "mean": list(c.mean),
            "std": list(c.std),
            "interpolation": c.interpolation,
        }
    if lib == "torchvision":
        from torchvision.models import get_model_weights

        t = get_model_weights(name).DEFAULT.transforms()
        return {
            "image_size": t.crop_size[0],
            "resize": t.resize_size[0],
            "mean": list(t.mean),
            "std": list(t.std),
            "interpolation": t.interpolation.value,
        }
    return None
