"""The detector's training loop (``task=detect``): SGD over the recipe's schedule, a checkpoint after every
epoch and at a preemption signal or Ctrl-C (after the current step), exact resume from ``last.pt`` (the
batches depend on (seed, epoch), the RPN's and box head's sampling on the restored random state), then
COCO AP on the eval split. Under torchrun every rank takes its part of each global batch (DDP)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..distributed import Dist, PreemptionGuard
from ..train import CHECKPOINT, Diverged, Progress, Runtime, lr_at, make_optimizer
from ..train import checkpoint as ckpt_io
from .coco import Batches, CocoSplit, grouped_batches
from .evaluate import evaluate_ap

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger("senet_ablate")


class DetLoader:
    """The epoch's batches from step ``start`` on, read by DataLoader workers (``workers`` processes;
    0: in this process). ``batches`` is itself: shuffle, epoch, start and len as the test pause hook reads
    them (tests/pause_hook)."""

    shuffle = True

    def __init__(self, data: Batches, start: int, workers: int):
        self.data, self.start, self.workers, self.epoch = data, start, workers, data.epoch
        self.batches = self

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[tuple[list[torch.Tensor], list[dict]]]:
        rest = torch.utils.data.Subset(self.data, range(self.start, len(self.data)))
        # a generator of its own: a DataLoader draws its workers' base seed from the global one otherwise, which
        # would move the RPN's and box head's sampling when a resumed run starts its loader mid-epoch
        seeds = torch.Generator().manual_seed(self.epoch)
        yield from torch.utils.data.DataLoader(
            rest, batch_size=None, shuffle=False, num_workers=self.workers, generator=seeds
        )


def step(
    net: nn.Module, opt: torch.optim.Optimizer, images: list[torch.Tensor], targets: list[dict], rt: Runtime
) -> dict:
    """One optimiser step; returns the step's losses (torchvision's four) as floats."""
    images = [x.to(rt.device) for x in images]
    targets = [{k: (v.to(rt.device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets]
    losses = net(images, targets)
    total = sum(losses.values())
    opt.zero_grad(set_to_none=True)
    total.backward()
    opt.step()
    return {k: float(v.detach()) for k, v in losses.items()} | {"loss": float(total.detach())}


def run_epoch(
    cfg: DictConfig,
    net: nn.Module,
    opt: torch.optim.Optimizer,
    split: CocoSplit,
    rt: Runtime,
    dist: Dist,
    guard: PreemptionGuard,
    at: Progress,
    save: Callable[[Progress], None],
) -> dict:
    """One epoch from ``at.step``; the epoch's summed losses over its steps. A preemption signal saves and
    raises ``Preempted`` after the current step; a non-finite loss raises ``Diverged``."""
    r, epoch = cfg.recipe, at.epoch
    batches = grouped_batches(split, r.batch_size, cfg.seed, epoch)
    if dist.active:  # every rank needs an image of each batch: a last batch smaller than the world is left out
        batches = [b for b in batches if len(b) >= dist.world]
    data = Batches(split, batches, cfg.seed, epoch, cfg.data.flip, (dist.rank, dist.world))
    loss, images, t0 = at.partial[0] if at.step else 0.0, at.partial[2] if at.step else 0, time.perf_counter()
    elapsed0 = at.partial[3] if at.step else 0.0
    net.train()
    for i, (xs, ts) in enumerate(DetLoader(data, at.step, cfg.data.get("workers", 0)), start=at.step):
        for group in opt.param_groups:
            group["lr"] = lr_at(r, epoch + i / len(batches))
        losses = step(net, opt, xs, ts, rt)
        bad, stop = dist.host_sum(float(not math.isfinite(losses["loss"])), float(guard.signum is not None))
        if bad:  # every rank stops together
            raise Diverged(f"non-finite loss ({losses['loss']}) at epoch {epoch + 1}, step {i + 1}")
        loss, images = loss + losses["loss"], images + len(batches[i])
        if stop:
            save(
                Progress(
                    epoch, i + 1, (loss, 0.0, images, elapsed0 + time.perf_counter() - t0), at.history, at.train_time
                )
            )
            raise guard.preempted(f"at epoch {epoch + 1}, step {i + 1} of {len(batches)}")
    seconds = elapsed0 + time.perf_counter() - t0
    return {
        "epoch": epoch + 1,
        "lr": lr_at(r, epoch),
        "train_loss": loss / max(len(batches), 1),
        "images": images,
        "epoch_time_s": seconds,
        "images_per_s": images / seconds if seconds else None,
    }


def train_detector(
    cfg: DictConfig,
    model: nn.Module,
    train: CocoSplit,
    val: CocoSplit,
    out_dir: Path,
    on_epoch: Callable[[list[dict]], None],
    fingerprint: str,
    dist: Dist,
    rt: Runtime,
) -> dict:
    """Train per ``cfg.recipe`` (``detect.train=false``: not at all, the untrained baseline), then score COCO
    AP on ``val`` (rank 0's model; every rank computes it)."""
    model = model.to(rt.device)
    opt = make_optimizer(model, cfg.recipe, rt)
    net = DistributedDataParallel(model) if dist.active else model
    path, at = out_dir / CHECKPOINT, Progress()
    if path.exists() and cfg.train.resume:
        at = ckpt_io.resume(path, model, opt, fingerprint, rt, dist.main, cfg.recipe.epochs)

    def save(progress: Progress) -> None:
        if dist.main:
            ckpt_io.save(path, model, opt, progress, fingerprint, rt)

    with PreemptionGuard(cfg.train.preempt_signals) as guard:
        while cfg.detect.train and at.epoch < cfg.recipe.epochs:
            h = run_epoch(cfg, net, opt, train, rt, dist, guard, at, save)
            at = Progress(at.epoch + 1, 0, (0.0, 0.0, 0.0, 0.0), [*at.history, h], at.train_time + h["epoch_time_s"])
            save(at)
            log.info(
                "epoch %d/%d  loss %.4f  %.1f img/s",
                h["epoch"],
                cfg.recipe.epochs,
                h["train_loss"],
                h["images_per_s"] or 0,
            )
            on_epoch(at.history)
            if dist.any(guard.signum is not None) and at.epoch < cfg.recipe.epochs:
                raise guard.preempted(f"after epoch {at.epoch}")
    t0 = time.perf_counter()
    spread = {}
    if dist.active:
        spread["rank_param_spread"] = dist.spread(sum(float(p.detach().double().sum()) for p in model.parameters()))
    ap = evaluate_ap(model, val, rt.device, cfg.recipe.get("eval_batch_size", 8))
    log.info(
        "COCO AP %.2f  AP50 %.2f  AP75 %.2f on %d %s images",
        ap["ap"],
        ap["ap50"],
        ap["ap75"],
        len(val.images),
        cfg.data.eval_split,
    )
    return {
        **ap,
        **spread,
        "epochs_done": at.epoch,
        "train_time_s": at.train_time,
        "eval_time_s": time.perf_counter() - t0,
        "train_loss": at.history[-1]["train_loss"] if at.history else None,
    }
