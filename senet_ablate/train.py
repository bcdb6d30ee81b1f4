"""The training loop (``task=train``): optimise, evaluate top-1/top-5 each epoch, checkpoint,
resume. Produces the error columns of the paper's tables (2, 4, 10-16).

Resume is exact on the CPU: the data order depends only on (seed, epoch), the schedule only on
the epoch, and ``last.pt`` (written whole after every epoch, and after the current step when a
preemption signal arrives) holds model, optimiser, history and the position in the epoch.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .launch import Dist, PreemptionGuard

log = logging.getLogger("senet_ablate")
CHECKPOINT = "last.pt"
SCHEDULES = ("multistep", "step", "cosine", "constant")


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


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


def lr_at(r, epoch: float) -> float:
    """The learning rate at (fractional) ``epoch``: linear batch scaling, warm-up, then the schedule."""
    base = r.lr * r.batch_size / r.base_batch_size
    if r.warmup_epochs and epoch < r.warmup_epochs:
        return base * (0.1 + 0.9 * epoch / r.warmup_epochs)
    e = math.floor(epoch)
    if r.schedule == "multistep":
        return base * r.gamma ** sum(e >= round(m * r.epochs) for m in r.milestones)
    if r.schedule == "step":
        return base * r.gamma ** (e // r.step_epochs)
    if r.schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * epoch / r.epochs))
    return base


@dataclass
class Runtime:
    device: torch.device
    amp: bool
    channels_last: bool


def runtime(cfg) -> Runtime:
    import os

    want = cfg.get("device", "auto")
    local = int(os.environ.get("LOCAL_RANK", 0))  # torchrun: one GPU per process
    dev = torch.device(("cuda", local) if want == "auto" and torch.cuda.is_available() else
                       ("cpu" if want == "auto" else want))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available; use device=auto or device=cpu")
    gpu = dev.type == "cuda"
    auto = lambda v: gpu if v == "auto" else bool(v)  # noqa: E731
    return Runtime(dev, auto(cfg.train.amp), auto(cfg.train.channels_last))


def seed_everything(seed: int, deterministic: bool) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def _topk_errors(logits: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hit5 = (top == y[:, None]).any(1)
    return int((top[:, 0] != y).sum()), int((~hit5).sum())


def evaluate(model: nn.Module, loader, rt: Runtime, dist: Dist = Dist()) -> tuple[float, float]:
    """Top-1 and top-5 error (%) over the eval split (each rank scores its part; counts are summed)."""
    model.eval()
    wrong1 = wrong5 = n = 0
    with torch.inference_mode(), torch.autocast(rt.device.type, torch.bfloat16, enabled=rt.amp):
        for x, y in loader:
            if len(y) == 0:
                continue
            x, y = _to(x, y, rt)
            e1, e5 = _topk_errors(model(x).float(), y)
            wrong1, wrong5, n = wrong1 + e1, wrong5 + e5, n + len(y)
    wrong1, wrong5, n = dist.all_sum(wrong1, wrong5, n)
    return 100 * wrong1 / n, 100 * wrong5 / n


def _to(x, y, rt: Runtime):
    x = x.to(rt.device, non_blocking=True)
    if rt.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(rt.device, non_blocking=True)


def _progress(total: int, desc: str, enabled):
    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty()) if enabled == "auto" else not enabled
    return tqdm(total=total, desc=desc, leave=False, disable=disable, dynamic_ncols=True)


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def train(cfg, model: nn.Module, data, out_dir: Path, on_epoch: Callable[[dict, list[dict]], None],
          fingerprint: str, dist: Dist = Dist()) -> dict:
    """Train ``model`` per ``cfg.recipe``; ``on_epoch(summary, history)`` runs after every epoch.

    Under torchrun the model is wrapped in DDP and every rank trains on its part of each global
    batch; the loss is scaled so that the averaged gradient is the global batch's mean gradient.
    A preemption signal checkpoints after the current step and raises ``Preempted``.
    """
    r, rt = cfg.recipe, runtime(cfg)
    model = model.to(rt.device, memory_format=torch.channels_last if rt.channels_last else torch.preserve_format)
    if dist.active and cfg.train.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr_at(r, 0), momentum=r.momentum, nesterov=r.nesterov,
                          weight_decay=r.weight_decay)
    net = model
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    step_model = torch.compile(net) if cfg.train.compile else net
    eval_model = step_model if not dist.active else (torch.compile(model) if cfg.train.compile else model)
    history, start, first, train_time, partial = [], 0, 0, 0.0, (0.0, 0.0, 0.0, 0.0)
    ckpt = out_dir / CHECKPOINT
    if ckpt.exists() and cfg.train.resume:
        state = torch.load(ckpt, map_location=rt.device, weights_only=True)
        if state.get("fingerprint") != fingerprint:
            raise ConfigError(f"{ckpt} belongs to a different config; delete it (or the run dir) to start afresh")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history, start, train_time = state["history"], state["epoch"], state["train_time_s"]
        first = state.get("step", 0)
        if first and dist.main:  # the interrupted epoch's running sums live on rank 0
            partial = tuple(state["partial"])
        where = f"step {first} of epoch {start + 1}" if first else f"epoch {start}"
        log.info("resuming from %s after %s of %d", ckpt, where, r.epochs)

    def checkpoint(epoch: int, step: int = 0, sums=(0.0, 0.0, 0.0, 0.0)) -> None:
        if dist.main:
            save_checkpoint(ckpt, {"epoch": epoch, "step": step, "partial": list(sums), "model": model.state_dict(),
                                   "optimizer": opt.state_dict(), "history": history, "train_time_s": train_time,
                                   "fingerprint": fingerprint})

    steps = len(data.train)
    with PreemptionGuard(cfg.train.preempt_signals) as guard:
        for epoch in range(start, r.epochs):
            model.train()
            skip = first if epoch == start else 0
            data.train.set_epoch(epoch, skip)
            loss_sum, wrong, seen, elapsed = partial if skip else (0.0, 0.0, 0.0, 0.0)
            t0 = time.perf_counter() - elapsed
            bar = _progress(steps, f"epoch {epoch + 1}/{r.epochs}", cfg.train.progress if dist.main else False)
            bar.update(skip)
            for i, (x, y) in enumerate(data.train, start=skip):
                for group in opt.param_groups:
                    group["lr"] = lr_at(r, epoch + i / steps)
                x, y = _to(x, y, rt)
                with torch.autocast(rt.device.type, torch.bfloat16, enabled=rt.amp):
                    logits = step_model(x)
                    batch_loss = F.cross_entropy(logits.float(), y, label_smoothing=r.label_smoothing,
                                                 reduction="sum")
                # mean over the global batch; DDP divides the summed gradients by the world size
                loss = batch_loss * (dist.world / data.train.batches.size(i))
                diverged, stop = dist.all_sum(float(not torch.isfinite(loss)), float(guard.signum is not None))
                if diverged:
                    bar.close()
                    raise Diverged(f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, step {i + 1}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += batch_loss.item()
                wrong += int((logits.argmax(1) != y).sum())
                seen += len(y)
                bar.update()
                bar.set_postfix(loss=f"{loss_sum / max(seen, 1):.3f}", err=f"{100 * wrong / max(seen, 1):.1f}%",
                                ips=f"{seen * dist.world / (time.perf_counter() - t0):.0f}")
                if stop:
                    bar.close()
                    sums = dist.all_sum(loss_sum, wrong, seen)
                    checkpoint(epoch, i + 1, (*sums, time.perf_counter() - t0))  # time so far in this epoch
                    raise guard.preempted(f"at epoch {epoch + 1}, step {i + 1} of {steps}")
            bar.close()
            if rt.device.type == "cuda":
                torch.cuda.synchronize()
            epoch_time = time.perf_counter() - t0
            train_time += epoch_time
            loss_sum, wrong, seen = dist.all_sum(loss_sum, wrong, seen)
            if dist.active:  # every rank scores with rank 0's BatchNorm statistics
                for b in model.buffers():
                    torch.distributed.broadcast(b, 0)
            top1, top5 = evaluate(eval_model, data.eval, rt, dist)
            history.append({"epoch": epoch + 1, "lr": lr_at(r, epoch), "train_loss": loss_sum / seen,
                            "train_err": 100 * wrong / seen, "top1_err": top1, "top5_err": top5,
                            "epoch_time_s": epoch_time, "images_per_s": seen / epoch_time, "images": int(seen)})
            checkpoint(epoch + 1)
            log.info("epoch %d/%d  loss %.4f  train err %.2f%%  top-1 err %.2f%%  top-5 err %.2f%%  %.0f img/s",
                     epoch + 1, r.epochs, loss_sum / seen, 100 * wrong / seen, top1, top5, seen / epoch_time)
            on_epoch(summarise(history, train_time), history)
            if dist.any(guard.signum is not None) and epoch + 1 < r.epochs:
                raise guard.preempted(f"after epoch {epoch + 1}")
    result = summarise(history, train_time)
    if dist.active:
        result["rank_param_spread"] = dist.spread(sum(float(p.double().sum()) for p in model.parameters()))
    return result


def summarise(history: list[dict], train_time: float) -> dict:
    last = history[-1]
    best = min(history, key=lambda h: h["top1_err"])
    n_img = sum(h["images_per_s"] * h["epoch_time_s"] for h in history)
    return {"top1_err": last["top1_err"], "top5_err": last["top5_err"], "best_top1_err": best["top1_err"],
            "best_top5_err": min(h["top5_err"] for h in history), "best_epoch": best["epoch"],
            "epochs_done": last["epoch"], "train_time_s": train_time,
            "images_per_s": n_img / train_time if train_time else None}
