"""Your own attention module as a point of the space (``se.module``).

``se.module`` is a ``_target_`` node: ``{_target_: my_pkg.MyGate, k: 3}``. The class is imported
from the user's own package and built as ``MyGate(channels, k=3)`` at every site that
``se.integration`` and ``se.stages`` choose (the first positional argument is the channel count:
timm's and mmcv's convention). It must return a map of its input's shape. Its convs and linears
are counted as multiply-adds like ours; its paper-convention elementwise ops (poolings, rescales)
come from an optional method ``elementwise_ops(x) -> int`` (ops per sample for input ``x``), and
a table marks a module without it. Plain Python: the import is ``importlib``, not Hydra.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import ConfigError
from ..targets import import_object


def import_target(path: str) -> type[nn.Module]:
    """The nn.Module class ``path`` names (``package.module.Class``), or a ConfigError that says why not."""
    found = import_object(path, "se.module._target_")
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        raise ConfigError(f"se.module._target_={path!r} is {found!r}, not an nn.Module class")
    return found


def split_node(node: object) -> tuple[str, dict]:
    """(target, keyword arguments) of a ``_target_`` node."""
    if not isinstance(node, dict) or "_target_" not in node:
        raise ConfigError(f"se.module={node!r} must be a node with a _target_, e.g. {{_target_: my_pkg.MyGate, k: 3}}")
    kwargs = {k: v for k, v in node.items() if k != "_target_"}
    bad = [k for k in kwargs if k.startswith("_")]
    if bad:
        raise ConfigError(f"se.module: {bad} are Hydra instantiate keys; only _target_ and the module's arguments")
    return node["_target_"], kwargs


def _check_shape(module: nn.Module, channels: int, where: str, target: str) -> None:
    """Run a copy on the meta device (shapes only, free): the output must have the input's shape."""
    x = torch.zeros(2, channels, 7, 7, device="meta")
    try:
        with torch.no_grad():
            y = copy.deepcopy(module).to("meta")(x)
    except Exception as e:  # noqa: BLE001 - any failure of the user's forward is reported as a config error
        raise ConfigError(f"se.module {target} at {where} fails on a (2, {channels}, 7, 7) map: {e}") from None
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ConfigError(
            f"se.module {target} at {where} turns a (2, {channels}, 7, 7) map into {shape}: an attention "
            "module must return its input's shape"
        )


class PluggedAttention(nn.Module):
    """A user's module at one site, named and placed like the built-in blocks (``name``, ``stage``,
    ``index``). Its parameters live under ``module``."""

    def __init__(self, channels: int, node: dict, name: str = "SE", stage: int = 0, index: int = 0) -> None:
        super().__init__()
        target, kwargs = split_node(node)
        cls = import_target(target)
        try:
            self.module = cls(channels, **kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"se.module: {target}({channels}, **{kwargs}) failed at {name}: {e}. The first positional "
                "argument of an attention module is its channel count; the node's other keys are its arguments"
            ) from None
        _check_shape(self.module, channels, name, target)
        self.name, self.stage, self.index, self.target = name, stage, index, target

    def forward(self, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        y = self.module(x)
        return y if add is None else add + y

    def elementwise_ops(self, x: torch.Tensor) -> int | None:
        """The module's own count (``elementwise_ops(x)``), or None where it gives none."""
        count = getattr(self.module, "elementwise_ops", None)
        return int(count(x)) if callable(count) else None

    def extra_repr(self) -> str:
        return f"name={self.name}, stage={self.stage}, index={self.index}"
