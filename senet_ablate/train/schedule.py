"""The recipe (``recipe=``): its checks, the learning rate at any point of training (linear
batch scaling, warm-up, the schedule) and the paper's optimiser."""

from __future__ import annotations

import inspect
import math

import torch
from torch import nn

from ..errors import ConfigError

SCHEDULES = ("multistep", "step", "cosine", "constant")
OPTIMIZERS = ("sgd", "rmsprop")
WARMUPS = ("linear", "constant")


def check_recipe(r) -> None:
    if not isinstance(r.epochs, int) or r.epochs <= 0:
        raise ConfigError(f"recipe.epochs={r.epochs!r} must be a positive integer")
    if not isinstance(r.batch_size, int) or r.batch_size <= 0:
        raise ConfigError(f"recipe.batch_size={r.batch_size!r} must be a positive integer")
    if not r.lr > 0:
        raise ConfigError(f"recipe.lr={r.lr!r} must be > 0")
    if r.schedule not in SCHEDULES:
        raise ConfigError(f"recipe.schedule={r.schedule!r} is not valid; valid values: {', '.join(SCHEDULES)}")
    if r.schedule == "step" and not (r.step_epochs or 0) > 0:
        raise ConfigError("recipe.schedule=step needs recipe.step_epochs > 0")
    if r.schedule == "multistep" and not all(
        isinstance(m, (int, float)) and not isinstance(m, bool) and 0 < m < 1 for m in r.milestones
    ):
        raise ConfigError(
            f"recipe.milestones={list(r.milestones)!r} must be fractions of recipe.epochs, each in "
            "(0, 1): e.g. [0.5, 0.75] drops the lr at 50% and 75% of the epochs"
        )
    if r.get("optimizer", "sgd") not in OPTIMIZERS:
        raise ConfigError(f"recipe.optimizer={r.optimizer!r} is not valid; valid values: {', '.join(OPTIMIZERS)}")
    if r.get("warmup", "linear") not in WARMUPS:
        raise ConfigError(f"recipe.warmup={r.warmup!r} is not valid; valid values: {', '.join(WARMUPS)}")


def lr_at(r, epoch: float) -> float:
    """The learning rate at (fractional) ``epoch``: linear batch scaling, warm-up, then the schedule."""
    base = r.lr * r.batch_size / r.base_batch_size
    if r.warmup_epochs and epoch < r.warmup_epochs:
        return base * (0.1 if r.get("warmup", "linear") == "constant" else 0.1 + 0.9 * epoch / r.warmup_epochs)
    e = math.floor(epoch)
    if r.schedule == "multistep":
        return base * r.gamma ** sum(e >= round(m * r.epochs) for m in r.milestones)
    if r.schedule == "step":
        return base * r.gamma ** (e // r.step_epochs)
    if r.schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * epoch / r.epochs))
    return base


def make_optimizer(model: nn.Module, r, rt) -> torch.optim.Optimizer:
    """SGD with momentum (the paper's optimiser; on CUDA the fused kernel where torch has it), or
    ``recipe.optimizer=rmsprop``: RMSprop with momentum as the MobileNetV3 / EfficientNet references train
    (decay 0.9; eps 0.0316 outside the root, torchvision's stand-in for TensorFlow's 1e-3 inside it)."""
    if r.get("optimizer", "sgd") == "rmsprop":
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
