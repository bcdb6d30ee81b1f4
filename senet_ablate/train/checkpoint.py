"""``last.pt``: where a run stands (model, optimiser, history, the step within an epoch, the
global random state), written whole after every epoch and at a preemption, read on resume.
Resume is exact on the CPU: the data order depends only on (seed, epoch), the schedule only on
the epoch, and the rest is here."""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from ..errors import ConfigError
from ..records.atomic import write_atomic
from .runtime import Runtime

log = logging.getLogger("senet_ablate")
CHECKPOINT = "last.pt"


@dataclass
class Progress:
    """How far a run has come: epochs done, steps done in the next one (a preempted epoch) and
    that epoch's running sums (loss, wrong, images, seconds), the history and the training time."""

    epoch: int = 0
    step: int = 0
    partial: tuple = (0.0, 0.0, 0.0, 0.0)
    history: list = field(default_factory=list)
    train_time: float = 0.0


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python's, numpy's and torch's generators; ``deterministic``: torch's deterministic kernels too."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def rng_state(device: torch.device) -> dict:
    """The global generators a training step draws from (dropout, stochastic depth), for ``last.pt``."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Put back the generators :func:`rng_state` saved."""
    torch.set_rng_state(state["cpu"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save`` of ``state``, written atomically: a reader never sees half a file."""
    write_atomic(path, lambda f: torch.save(state, f))


def save(
    path: Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    progress: Progress,
    fingerprint: str,
    rt: Runtime,
    sched: LRScheduler | None = None,
) -> None:
    """``last.pt`` for ``progress`` (the caller writes on rank 0 only); ``sched``: recipe.schedule's
    LRScheduler, whose state goes in too."""
    save_checkpoint(
        path,
        {
            "epoch": progress.epoch,
            "step": progress.step,
            "partial": list(progress.partial),
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            **({"scheduler": sched.state_dict()} if sched is not None else {}),
            "history": progress.history,
            "train_time_s": progress.train_time,
            "fingerprint": fingerprint,
            "rng": rng_state(rt.device),
            "amp": rt.precision,
        },
    )


def resume(
    path: Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    fingerprint: str,
    rt: Runtime,
    main: bool,
    epochs: int,
    sched: LRScheduler | None = None,
) -> Progress:
    """Load ``last.pt`` into ``model``, ``opt`` (and ``sched``); refuse one of another config or precision."""
    state = torch.load(path, map_location=rt.device, weights_only=True)
    if state.get("fingerprint") != fingerprint:
        raise ConfigError(f"{path} belongs to a different config; delete it (or the run dir) to start afresh")
    was = state.get("amp", rt.precision)  # last.pt before it said: as the machine says now
    if was != rt.precision:
        raise ConfigError(
            f"{path} was trained in {was}, this relaunch would go on in {rt.precision}: relaunch "
            f"with train.amp={str(was == 'bf16').lower()} to resume it as it was"
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if sched is not None:
        sched.load_state_dict(state["scheduler"])
    step = state.get("step", 0)
    if "rng" in state:  # dropout and other draws of the global generator go on as if never stopped
        set_rng_state(state["rng"], rt.device)
    partial = tuple(state["partial"]) if step and main else (0.0, 0.0, 0.0, 0.0)  # the sums live on rank 0
    where = f"step {step} of epoch {state['epoch'] + 1}" if step else f"epoch {state['epoch']}"
    log.info("resuming from %s after %s of %d", path, where, epochs)
    return Progress(state["epoch"], step, partial, state["history"], state["train_time_s"])
