"""The training loop (``task=train``) as named steps: :func:`set_up` (device, DDP, optimiser,
compile), :func:`run_epoch` (optimise over one epoch), :func:`end_epoch` (evaluate, history,
checkpoint) and :func:`train`, which strings them together. Produces the error columns of the
paper's tables (2, 4, 10-16).

The hot loop never waits for the device: loss, errors and the first non-finite step are summed
on the device (:class:`EpochMeter`) and read every ``CHECK_EVERY`` steps and at the end of the
epoch (a NaN fails the run there, naming its step); ranks agree on a preemption stop through a
CPU group. A preemption signal or Ctrl-C checkpoints after the current step.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
import torch.distributed
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LRScheduler
from tqdm.auto import tqdm

from ..distributed import Dist, PreemptionGuard
from ..records import predictions
from . import checkpoint
from .checkpoint import CHECKPOINT, Progress
from .compiled import compile_warm_up, compiled_graphs, share_compile_cache
from .evaluate import evaluate
from .runtime import Runtime, runtime
from .schedule import lr_at, make_optimizer, make_scheduler

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ..data import Data

log = logging.getLogger("senet_ablate")
CHECK_EVERY = 50  # steps between reads of the on-device sums (the NaN check, the progress bar): no per-step sync
SLOW_EVAL_S = 10  # an evaluation expected to take longer is announced before it starts
# an image scored costs about this share of an image trained: in memory, a forward pass in large batches
# (ResNet-20, 32 px, on this project's 2-core CPU: 1/9); streamed, decoding from disk bounds both (a guess)
EVAL_SHARE = {"memory": 1 / 8, "streamed": 1 / 2}


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class Nets:
    """The model as each step calls it: ``model`` (its state), ``step_model`` (DDP and/or compiled,
    for training steps), ``eval_model`` (compiled, never DDP) and the optimiser."""

    model: nn.Module
    step_model: nn.Module
    eval_model: nn.Module
    opt: torch.optim.Optimizer
    sched: LRScheduler | None = (
        None  # recipe.schedule's LRScheduler, stepped per epoch (None: lr_at sets the lr each step)
    )


def set_up(cfg: DictConfig, model: nn.Module, rt: Runtime, dist: Dist) -> Nets:
    """The model on the device in its memory format, SyncBN and DDP under torchrun, SGD, compile."""
    model = model.to(rt.device, memory_format=torch.channels_last if rt.channels_last else torch.preserve_format)
    if dist.active and cfg.train.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    opt = make_optimizer(model, cfg.recipe, rt)
    sched = make_scheduler(opt, cfg.recipe)
    net = model
    if dist.active:
        net = DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    if rt.compile:
        share_compile_cache(cfg.get("cache_dir"))
    step_model = torch.compile(net, mode=rt.compile) if rt.compile else net
    eval_model = step_model if not dist.active else (torch.compile(model, mode=rt.compile) if rt.compile else model)
    return Nets(model, step_model, eval_model, opt, sched)


def _progress_bar(total: int, desc: str, enabled: bool | str) -> tqdm:
    disable = (not sys.stderr.isatty()) if enabled == "auto" else not enabled
    return tqdm(total=total, desc=desc, leave=False, disable=disable, dynamic_ncols=True)


class EpochMeter:
    """One epoch's running sums on the device (loss, wrong, first non-finite step) and its bar."""

    def __init__(self, epoch: int, steps: int, start: Progress, rt: Runtime, bar: tqdm):
        loss0, wrong0, self.seen, elapsed = start.partial if start.step else (0.0, 0.0, 0.0, 0.0)
        dev = rt.device
        self.loss = torch.tensor(loss0, dtype=torch.float64, device=dev)
        self.wrong = torch.tensor(int(wrong0), dtype=torch.int64, device=dev)
        self.bad = torch.tensor([0.0, 0.0], dtype=torch.float64, device=dev)  # first non-finite (step, loss)
        self.epoch, self.steps, self.bar = epoch, steps, bar
        self.t0 = time.perf_counter() - elapsed
        self.time = 0.0  # the epoch's seconds, set when it ends
        bar.update(start.step)

    def add(self, i: int, batch_loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        with torch.no_grad():
            b = batch_loss.detach()
            self.loss += b
            self.wrong += (logits.argmax(1) != y).sum()
            first_bad = (self.bad[0] == 0) & ~torch.isfinite(b)
            self.bad.copy_(
                torch.where(first_bad, torch.stack([torch.full_like(self.bad[0], i + 1), b.double()]), self.bad)
            )
        self.seen += len(y)
        self.bar.update()

    def check(self, i: int, dist: Dist) -> None:
        """Read the device sums: fail on a non-finite loss (every rank together), update the bar."""
        step, value = self.bad.tolist()
        if dist.any(step > 0):
            self.bar.close()
            where = f"at epoch {self.epoch + 1}, step {int(step)}" if step else f"on another rank by step {i + 1}"
            raise Diverged(f"non-finite loss ({value}) {where}" if step else f"non-finite loss {where}")
        if not self.bar.disable:
            seen = max(self.seen, 1)
            self.bar.set_postfix(
                loss=f"{self.loss.item() / seen:.3f}",
                err=f"{100 * self.wrong.item() / seen:.1f}%",
                ips=f"{self.seen * dist.world / self.elapsed():.0f}",
            )

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def totals(self, dist: Dist) -> list[float]:
        """(loss sum, wrong, images) over every rank."""
        return dist.all_sum(self.loss.item(), self.wrong.item(), self.seen)


def train_step(
    nets: Nets,
    images: torch.Tensor,
    labels: torch.Tensor,
    step: int,
    recipe: DictConfig,
    runtime: Runtime,
    data: Data,
    dist: Dist,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimiser step on global batch ``step`` of the epoch; returns (this rank's summed loss, the logits,
    the labels on the device)."""
    images, labels = runtime.to(images, labels)
    with runtime.autocast(runtime.amp):
        logits = nets.step_model(images)
        batch_loss = F.cross_entropy(logits.float(), labels, label_smoothing=recipe.label_smoothing, reduction="sum")
    # mean over the global batch; DDP divides the summed gradients by the world size
    loss = batch_loss * (dist.world / data.train.global_size(step))
    nets.opt.zero_grad(set_to_none=True)
    loss.backward()
    nets.opt.step()
    return batch_loss, logits, labels


def run_epoch(
    cfg: DictConfig,
    nets: Nets,
    data: Data,
    rt: Runtime,
    dist: Dist,
    guard: PreemptionGuard,
    at: Progress,
    save: Callable[[Progress], None],
) -> EpochMeter:
    """Train one epoch from ``at`` (a mid-epoch resume starts at ``at.step``). A preemption
    signal checkpoints after the current step and raises ``Preempted``."""
    recipe, epoch, steps = cfg.recipe, at.epoch, len(data.train)
    nets.model.train()
    data.train.set_epoch(epoch, at.step)
    bar = _progress_bar(steps, f"epoch {epoch + 1}/{recipe.epochs}", cfg.train.progress if dist.main else False)
    meter = EpochMeter(epoch, steps, at, rt, bar)
    for step, (images, labels) in enumerate(data.train, start=at.step):
        for group in nets.opt.param_groups if nets.sched is None else ():
            group["lr"] = lr_at(recipe, epoch + step / steps)
        meter.add(step, *train_step(nets, images, labels, step, recipe, rt, data, dist))
        stop = dist.host_sum(float(guard.signum is not None))[0] > 0 if dist.active else guard.signum is not None
        if stop or step + 1 == steps or (step + 1 - at.step) % CHECK_EVERY == 0:
            meter.check(step, dist)
        if stop:
            bar.close()
            save(Progress(epoch, step + 1, (*meter.totals(dist), meter.elapsed()), at.history, at.train_time))
            raise guard.preempted(f"at epoch {epoch + 1}, step {step + 1} of {steps}")
    bar.close()
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)
    meter.time = meter.elapsed()
    return meter


def end_epoch(
    cfg: DictConfig,
    nets: Nets,
    data: Data,
    rt: Runtime,
    dist: Dist,
    meter: EpochMeter,
    at: Progress,
    out_dir: Path | None = None,
) -> Progress:
    """Evaluate, append the epoch to the history; returns the progress after this epoch. After the last
    epoch, the predictions of every eval image go to ``out_dir``/predictions.npz (before the checkpoint that
    says the run is done, so a run resumed after it still writes them)."""
    epoch_time = meter.time
    loss_total, wrong_total, seen = meter.totals(dist)
    if dist.active:  # every rank scores with rank 0's BatchNorm statistics
        for b in nets.model.buffers():
            torch.distributed.broadcast(b, 0)
    epoch = at.epoch
    if out_dir is not None and epoch + 1 == cfg.recipe.epochs:
        top1, top5, (labels, top) = evaluate(nets.eval_model, data.eval, rt, dist, keep=True)
        if dist.main:
            predictions.write(out_dir, labels, top, data.eval_order())
    else:
        top1, top5 = evaluate(nets.eval_model, data.eval, rt, dist)
    history = [
        *at.history,
        {
            "epoch": epoch + 1,
            "lr": lr_at(cfg.recipe, epoch) if nets.sched is None else nets.opt.param_groups[0]["lr"],
            "train_loss": loss_total / seen,
            "train_err": 100 * wrong_total / seen,
            "top1_err": top1,
            "top5_err": top5,
            "epoch_time_s": epoch_time,
            "images_per_s": seen / epoch_time,
            "images": int(seen),
        },
    ]
    return Progress(epoch + 1, 0, (0.0, 0.0, 0.0, 0.0), history, at.train_time + epoch_time)


def _log_epoch(h: dict, epochs: int) -> None:
    log.info(
        "epoch %d/%d  loss %.4f  train err %.2f%%  top-1 err %.2f%%  top-5 err %.2f%%  %.0f img/s",
        h["epoch"],
        epochs,
        h["train_loss"],
        h["train_err"],
        h["top1_err"],
        h["top5_err"],
        h["images_per_s"],
    )


def _warm_up(nets: Nets, data: Data, rt: Runtime) -> dict:
    """Compile before the clock starts (``compile_s``), so that ``images_per_s`` counts training alone."""
    if not rt.compile:
        return {}
    compile_s = compile_warm_up(nets.model, nets.step_model, nets.eval_model, data, rt, data.image_size)
    log.info("torch.compile (mode %s): %.1f s, not counted in images/s", rt.compile, compile_s)
    return {"compile_s": compile_s, "graphs_compiled_while_timed": 0}


def announce_eval(meter: EpochMeter, data: Data, dist: Dist) -> None:
    """Before the first evaluation, if it looks slow: its expected length, from this epoch's training speed."""
    share = EVAL_SHARE["memory" if hasattr(data.eval, "images") else "streamed"]
    expected = meter.time / max(meter.seen, 1) * data.eval.num_samples / dist.world * share
    if expected >= SLOW_EVAL_S:
        log.info("evaluating on the %d %s images (about %.0f s)", data.eval.num_samples, data.eval_split, expected)


def _count_recompiles(compiled: dict, graphs: int, epoch: int) -> None:
    recompiled = compiled_graphs() - graphs if compiled else 0  # eager: torch._dynamo (~1 s to import) never loads
    if recompiled:
        compiled["graphs_compiled_while_timed"] += recompiled
        log.warning(
            "torch.compile compiled %d graph(s) during the timed steps of epoch %d: its images/s "
            "includes that compile time",
            recompiled,
            epoch,
        )


def train(
    cfg: DictConfig,
    model: nn.Module,
    data: Data,
    out_dir: Path,
    on_epoch: Callable[[dict, list[dict]], None],
    fingerprint: str,
    dist: Dist = Dist(),
    rt: Runtime | None = None,
) -> dict:
    """Train ``model`` per ``cfg.recipe``; ``on_epoch(summary, history)`` runs after every epoch.

    Under torchrun the model is wrapped in DDP and every rank trains on its part of each global
    batch; the loss is scaled so that the averaged gradient is the global batch's mean gradient.
    ``rt``: the job's runtime (built from ``cfg`` when not given).
    """
    rt = rt or runtime(cfg)
    nets = set_up(cfg, model, rt, dist)
    ckpt = out_dir / CHECKPOINT
    at = Progress()
    if ckpt.exists() and cfg.train.resume:
        at = checkpoint.resume(ckpt, nets.model, nets.opt, fingerprint, rt, dist.main, cfg.recipe.epochs, nets.sched)
    compiled = _warm_up(nets, data, rt)
    first_epoch = at.epoch

    def save(progress: Progress) -> None:
        if dist.main:
            checkpoint.save(ckpt, nets.model, nets.opt, progress, fingerprint, rt, nets.sched)

    with PreemptionGuard(cfg.train.preempt_signals) as guard:
        while at.epoch < cfg.recipe.epochs:
            graphs = compiled_graphs() if compiled else 0
            meter = run_epoch(cfg, nets, data, rt, dist, guard, at, save)
            _count_recompiles(compiled, graphs, at.epoch + 1)
            if at.epoch == first_epoch:
                announce_eval(meter, data, dist)
            at = end_epoch(cfg, nets, data, rt, dist, meter, at, out_dir)
            if nets.sched is not None:
                nets.sched.step()  # an LRScheduler moves on once per epoch
            save(at)
            _log_epoch(at.history[-1], cfg.recipe.epochs)
            on_epoch({**summarise(at.history, at.train_time), **compiled}, at.history)
            if dist.any(guard.signum is not None) and at.epoch < cfg.recipe.epochs:
                raise guard.preempted(f"after epoch {at.epoch}")
    result = {**summarise(at.history, at.train_time), **compiled}
    if dist.active:
        result["rank_param_spread"] = dist.spread(
            sum(float(p.detach().double().sum()) for p in nets.model.parameters())
        )
    return result


def summarise(history: list[dict], train_time: float) -> dict:
    """A run's metrics from its history: the last epoch's errors, the best ones, epochs done, time and speed."""
    last = history[-1]
    best = min(history, key=lambda h: h["top1_err"])
    n_img = sum(h["images_per_s"] * h["epoch_time_s"] for h in history)
    return {
        "top1_err": last["top1_err"],
        "top5_err": last["top5_err"],
        "best_top1_err": best["top1_err"],
        "best_top5_err": min(h["top5_err"] for h in history),
        "best_epoch": best["epoch"],
        "epochs_done": last["epoch"],
        "train_time_s": train_time,
        "images_per_s": n_img / train_time if train_time else None,
    }
