"""The recipe (``recipe=``): its checks, the learning rate at any point of training (linear
batch scaling, warm-up, the schedule) and the optimiser: the paper's SGD, RMSprop, or yours.

``recipe.optimizer`` is ``sgd | rmsprop`` or a ``_target_`` node: the class (``torch.optim.AdamW``,
or one of your package) gets the model's parameters and the node's other keys; its ``lr``, when
given, replaces ``recipe.lr``. ``recipe.schedule`` is ``multistep | step | cosine | constant`` or a
``_target_`` node: a function ``(epoch) -> factor`` of the fractional epoch (the lr is
``base * factor``, after the warm-up), or an ``LRScheduler`` class, built on the optimiser with the
node's other keys and stepped once per epoch (its state goes into ``last.pt``). docs/bring-your-own.md.
"""

from __future__ import annotations

import inspect
import math
from functools import lru_cache
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from ..errors import ConfigError
from ..targets import import_object
from .runtime import Runtime

if TYPE_CHECKING:
    from omegaconf import DictConfig

SCHEDULES = ("multistep", "step", "cosine", "constant")
OPTIMIZERS = ("sgd", "rmsprop")
WARMUPS = ("linear", "constant")


def is_target(node: object) -> bool:
    """A ``{_target_: ...}`` node (the user's own class or function) rather than a built-in name."""
    return hasattr(node, "keys") and "_target_" in node


def _arguments(node) -> dict:
    """A ``_target_`` node's arguments: its keys less ``_target_`` (and lightning-hydra's ``_partial_``)."""
    return {str(k): _plain(v) for k, v in node.items() if k not in ("_target_", "_partial_")}


def _plain(v):
    if hasattr(v, "keys"):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)) or type(v).__name__ == "ListConfig":
        return [_plain(x) for x in v]
    return v


@lru_cache(maxsize=32)
def _resolve(path: str, key: str):
    return import_object(path, key)


def _bind(fn, key: str, *args, **kwargs) -> None:
    """Fail now, naming ``key``, when ``fn`` cannot take these arguments (an unknown key, a missing one)."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as e:
        raise ConfigError(f"{key}: {getattr(fn, '__name__', fn)} cannot take {sorted(kwargs)} ({e})") from None
    except ValueError:  # a builtin without a signature: called as it is
        pass


def is_scheduler(r: DictConfig) -> bool:
    """``recipe.schedule`` names an ``LRScheduler`` class (stepped per epoch, its state checkpointed)."""
    if not is_target(r.schedule):
        return False
    target = _resolve(str(r.schedule._target_), "recipe.schedule._target_")
    return inspect.isclass(target) and issubclass(target, torch.optim.lr_scheduler.LRScheduler)


def _check_optimizer(r) -> None:
    opt = r.get("optimizer", "sgd")
    if not is_target(opt):
        if opt not in OPTIMIZERS:
            raise ConfigError(
                f"recipe.optimizer={opt!r} is not valid; valid values: {', '.join(OPTIMIZERS)}, or a "
                "{_target_: ...} node (e.g. {_target_: torch.optim.AdamW, lr: 0.001, weight_decay: 0.05})"
            )
        return
    cls = _resolve(str(opt._target_), "recipe.optimizer._target_")
    if not callable(cls):
        raise ConfigError(f"recipe.optimizer._target_={opt._target_!r} is not a class or function that builds one")
    args = {**_arguments(opt), "lr": base_lr(r)}
    if not isinstance(args["lr"], (int, float)) or not args["lr"] > 0:
        raise ConfigError(f"recipe.optimizer.lr={args['lr']!r} must be > 0")
    _bind(cls, "recipe.optimizer", [nn.Parameter(torch.zeros(1))], **args)


def _check_schedule(r) -> None:
    s = r.schedule
    if not is_target(s):
        if s not in SCHEDULES:
            raise ConfigError(
                f"recipe.schedule={s!r} is not valid; valid values: {', '.join(SCHEDULES)}, or a {{_target_: ...}} "
                "node: an LRScheduler class or a function (epoch) -> factor"
            )
        return
    target = _resolve(str(s._target_), "recipe.schedule._target_")
    if is_scheduler(r):
        if r.warmup_epochs:
            raise ConfigError(
                f"recipe.warmup_epochs={r.warmup_epochs} with an LRScheduler ({s._target_}): the scheduler owns the "
                "lr; set recipe.warmup_epochs=0 (chain a warm-up with torch.optim.lr_scheduler.SequentialLR)"
            )
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        _bind(target, "recipe.schedule", opt, **_arguments(s))
        return
    if not callable(target):
        raise ConfigError(f"recipe.schedule._target_={s._target_!r} is neither an LRScheduler class nor a function")
    _bind(target, "recipe.schedule", 0.0, **_arguments(s))
    try:
        factor = target(0.0, **_arguments(s))
    except Exception as e:  # noqa: BLE001 - the user's function: its failure is a config error, named
        raise ConfigError(f"recipe.schedule: {s._target_}(0.0) raised {type(e).__name__}: {e}") from None
    if not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor < 0:
        raise ConfigError(f"recipe.schedule: {s._target_}(0.0) returned {factor!r}; it must return a factor >= 0")


def check_recipe(r: DictConfig) -> None:
    """Fail at config time, naming the key, on a recipe that could not train: epochs, batch, lr, schedule,
    milestones, optimiser, warm-up."""
    if not isinstance(r.epochs, int) or r.epochs <= 0:
        raise ConfigError(f"recipe.epochs={r.epochs!r} must be a positive integer")
    if not isinstance(r.batch_size, int) or r.batch_size <= 0:
        raise ConfigError(f"recipe.batch_size={r.batch_size!r} must be a positive integer")
    if not r.lr > 0:
        raise ConfigError(f"recipe.lr={r.lr!r} must be > 0")
    _check_schedule(r)
    if r.schedule == "step" and not (r.step_epochs or 0) > 0:
        raise ConfigError("recipe.schedule=step needs recipe.step_epochs > 0")
    if r.schedule == "multistep" and not all(
        isinstance(m, (int, float)) and not isinstance(m, bool) and 0 < m < 1 for m in r.milestones
    ):
        raise ConfigError(
            f"recipe.milestones={list(r.milestones)!r} must be fractions of recipe.epochs, each in "
            "(0, 1): e.g. [0.5, 0.75] drops the lr at 50% and 75% of the epochs"
        )
    _check_optimizer(r)
    if r.get("warmup", "linear") not in WARMUPS:
        raise ConfigError(f"recipe.warmup={r.warmup!r} is not valid; valid values: {', '.join(WARMUPS)}")


def base_lr(r: DictConfig) -> float:
    """The lr at ``recipe.base_batch_size``: a ``_target_`` optimiser's own ``lr``, else ``recipe.lr``."""
    opt = r.get("optimizer", "sgd")
    return opt.lr if is_target(opt) and "lr" in opt else r.lr


def lr_at(r: DictConfig, epoch: float) -> float:
    """The learning rate at (fractional) ``epoch``: linear batch scaling, warm-up, then the schedule
    (an LRScheduler's lr is its own: this gives the lr it starts from)."""
    base = base_lr(r) * r.batch_size / r.base_batch_size
    if r.warmup_epochs and epoch < r.warmup_epochs:
        return base * (0.1 if r.get("warmup", "linear") == "constant" else 0.1 + 0.9 * epoch / r.warmup_epochs)
    e = math.floor(epoch)
    if is_target(r.schedule):
        if is_scheduler(r):
            return base
        return base * float(
            _resolve(str(r.schedule._target_), "recipe.schedule._target_")(epoch, **_arguments(r.schedule))
        )
    if r.schedule == "multistep":
        return base * r.gamma ** sum(e >= round(m * r.epochs) for m in r.milestones)
    if r.schedule == "step":
        return base * r.gamma ** (e // r.step_epochs)
    if r.schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * epoch / r.epochs))
    return base


def make_optimizer(model: nn.Module, r: DictConfig, rt: Runtime) -> torch.optim.Optimizer:
    """SGD with momentum (the paper's optimiser; on CUDA the fused kernel where torch has it),
    ``recipe.optimizer=rmsprop``: RMSprop with momentum as the MobileNetV3 / EfficientNet references train
    (decay 0.9; eps 0.0316 outside the root, torchvision's stand-in for TensorFlow's 1e-3 inside it),
    or a ``_target_`` node: that class on the parameters with the node's keys."""
    opt = r.get("optimizer", "sgd")
    if is_target(opt):
        cls = _resolve(str(opt._target_), "recipe.optimizer._target_")
        return cls(model.parameters(), **{**_arguments(opt), "lr": lr_at(r, 0)})
    if opt == "rmsprop":
        return torch.optim.RMSprop(
            model.parameters(), lr=lr_at(r, 0), alpha=0.9, eps=0.0316, momentum=r.momentum, weight_decay=r.weight_decay
        )
    fused = rt.device.type == "cuda" and "fused" in inspect.signature(torch.optim.SGD).parameters
    return torch.optim.SGD(
        model.parameters(),
        lr=lr_at(r, 0),
        momentum=r.momentum,
        nesterov=r.nesterov,
        weight_decay=r.weight_decay,
        **({"fused": True} if fused else {}),
    )


def make_scheduler(opt: torch.optim.Optimizer, r: DictConfig) -> LRScheduler | None:
    """The ``LRScheduler`` of ``recipe.schedule`` on ``opt`` (None for the other schedules)."""
    if not is_scheduler(r):
        return None
    return _resolve(str(r.schedule._target_), "recipe.schedule._target_")(opt, **_arguments(r.schedule))
