"""The training loop (``task=train``): optimise, evaluate top-1/top-5 each epoch, checkpoint,
resume. Produces the error columns of the paper's tables (2, 4, 10-16).

Resume is exact on the CPU: the data order depends only on (seed, epoch), the schedule only on
the epoch, and ``last.pt`` (written whole after every epoch, and after the current step when a
preemption signal arrives) holds model, optimiser, history and the position in the epoch.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed
import torch.nn.functional as F
from torch import nn

from .data import shard
from .errors import ConfigError
from .launch import Dist, PreemptionGuard

log = logging.getLogger("senet_ablate")
CHECKPOINT = "last.pt"
SCHEDULES = ("multistep", "step", "cosine", "constant")
WARMUPS = ("linear", "constant")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
CHECK_EVERY = 50  # steps between reads of the on-device sums (the NaN check, the progress bar): no per-step sync


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
    if r.schedule == "multistep" and not all(isinstance(m, (int, float)) and not isinstance(m, bool) and 0 < m < 1
                                             for m in r.milestones):
        raise ConfigError(f"recipe.milestones={list(r.milestones)!r} must be fractions of recipe.epochs, each in "
                          "(0, 1): e.g. [0.5, 0.75] drops the lr at 50% and 75% of the epochs")
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


@dataclass
class Runtime:
    device: torch.device
    amp: bool
    channels_last: bool
    compile: str | None = None  # torch.compile mode, None: eager
    eval_amp: bool | None = None  # evaluation in bf16; None: as training

    @property
    def eval_bf16(self) -> bool:
        return self.amp if self.eval_amp is None else self.eval_amp

    def setup(self) -> dict:
        """What a timing depends on, for every training record: tables never mix setups silently."""
        return {"device_name": device_name(self.device), "amp": "bf16" if self.amp else "fp32",
                "eval_amp": "bf16" if self.eval_bf16 else "fp32",
                "channels_last": self.channels_last, "compile": self.compile or False}


def native_bf16(dev: torch.device) -> bool:
    """Whether ``dev`` computes bf16 natively, so that autocast pays: a GPU, Apple's GPU (``mps``),
    or a CPU with AVX-512 BF16 or AMX, as torch reports it (an emulated bf16 is slower than fp32)."""
    if dev.type in ("cuda", "mps"):
        return True
    cpu = getattr(torch, "cpu", None)
    return any(bool(getattr(cpu, probe, lambda: False)()) for probe in ("_is_avx512_bf16_supported",
                                                                          "_is_amx_tile_supported"))


def pick_device(want: str) -> torch.device:
    """``device``: auto = CUDA (this process's GPU under torchrun), else Apple's GPU, else the CPU."""
    if want != "auto":
        return torch.device(want)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    mps = getattr(torch.backends, "mps", None)
    return torch.device("mps" if mps is not None and mps.is_available() else "cpu")


def _switch(key: str, value, auto: bool) -> bool:
    if value == "auto":
        return auto
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not valid; valid values: auto, true, false")
    return value


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        model = ""
    import platform

    return f"cpu: {model or platform.processor() or platform.machine()}"


def runtime(cfg) -> Runtime:
    """Device and precision of a job. ``train.amp: auto`` = bf16 autocast where the device computes
    bf16 natively (``native_bf16``), fp32 elsewhere; ``false`` is exact fp32. ``train.channels_last:
    auto`` = on a GPU or a CPU (faster on this CPU in fp32 and in bf16: benchmarks/cpu_precision.py),
    not on Apple's GPU. ``eval.amp: auto`` evaluates in the training precision."""
    dev = pick_device(cfg.get("device", "auto"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available; use device=auto or device=cpu")
    amp = _switch("train.amp", cfg.train.amp, native_bf16(dev))
    channels_last = _switch("train.channels_last", cfg.train.channels_last, dev.type in ("cuda", "cpu"))
    ev = (cfg.get("eval") or {}).get("amp", "auto")
    eval_amp = None if ev == "auto" else _switch("eval.amp", ev, amp)
    mode = cfg.train.get("compile_mode", "default")
    if mode not in COMPILE_MODES:
        raise ConfigError(f"train.compile_mode={mode!r} is not valid; valid values: {', '.join(COMPILE_MODES)}")
    return Runtime(dev, amp, channels_last, mode if cfg.train.compile else None, eval_amp)


def seed_everything(seed: int, deterministic: bool) -> None:
    import random

    import numpy as np

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
    torch.set_rng_state(state["cpu"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def _topk_errors(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(top-1 errors, top-5 errors) of a batch, on its device (no host sync)."""
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hit5 = (top == y[:, None]).any(1)
    return torch.stack([(top[:, 0] != y).sum(), (~hit5).sum()])


def evaluate(model: nn.Module, loader, rt: Runtime, dist: Dist = Dist()) -> tuple[float, float]:
    """Top-1 and top-5 error (%) over the eval split (each rank scores its part; counts are summed)."""
    model.eval()
    wrong, n = torch.zeros(2, dtype=torch.int64, device=rt.device), 0
    with torch.inference_mode(), torch.autocast(rt.device.type, torch.bfloat16, enabled=rt.eval_bf16):
        for x, y in loader:
            if len(y) == 0:
                continue
            x, y = _to(x, y, rt)
            wrong += _topk_errors(model(x).float(), y)
            n += len(y)
    wrong1, wrong5 = wrong.tolist()
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


def make_optimizer(model: nn.Module, r, rt: Runtime) -> torch.optim.Optimizer:
    """SGD with momentum (the paper's optimiser); on CUDA the fused kernel where torch has it."""
    import inspect

    fused = {"fused": True} if rt.device.type == "cuda" and "fused" in inspect.signature(torch.optim.SGD).parameters \
        else {}
    return torch.optim.SGD(model.parameters(), lr=lr_at(r, 0), momentum=r.momentum, nesterov=r.nesterov,
                           weight_decay=r.weight_decay, **fused)


# the compile caches a user chose in the shell, read at import (torch writes its default into the environment later)
_USER_COMPILE_CACHE = [k for k in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR") if k in os.environ]


def share_compile_cache(cache_dir) -> None:
    """Point torch.compile's caches (inductor, triton) at ``cache_dir`` unless the user set them:
    the jobs of a sweep, on one machine or on every node of a cluster, then compile each graph once."""
    if not cache_dir:
        return
    base = Path(str(cache_dir)).expanduser()
    for key, sub in (("TORCHINDUCTOR_CACHE_DIR", "inductor"), ("TRITON_CACHE_DIR", "triton")):
        if key not in _USER_COMPILE_CACHE:
            os.environ[key] = str(base / sub)


def _part_sizes(batches) -> list[int]:
    """This rank's images in the first and the last batch of an epoch: the shapes a compiled model meets."""
    sizes = []
    for b in (0, len(batches) - 1):
        part = shard(batches.size(b), batches.rank, batches.world)
        sizes.append(part.stop - part.start)
    return sizes


def compiled_graphs() -> int:
    """Graphs torch.compile has compiled in this process so far (0 where torch does not say)."""
    try:
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])
    except Exception:  # noqa: BLE001 - a private counter; its absence only disables a warning
        return 0


def compile_warm_up(model: nn.Module, step_model, eval_model, data, rt: Runtime, image_size: int) -> float:
    """Compile before the clock starts: one forward + backward of zeros per training batch shape
    and one forward per eval batch shape, then put back the BatchNorm statistics, the gradients
    and the random state, so that the run is the same as without the warm-up. Returns seconds."""
    t0 = time.perf_counter()
    saved = {k: b.clone() for k, b in model.named_buffers()}
    fmt = torch.channels_last if rt.channels_last else torch.contiguous_format
    zeros = lambda n: torch.zeros(n, 3, image_size, image_size, device=rt.device).contiguous(memory_format=fmt)  # noqa: E731
    with torch.random.fork_rng(devices=[rt.device] if rt.device.type == "cuda" else []):
        model.train()
        for n in _part_sizes(data.train.batches):  # every rank does both passes (DDP: same collectives)
            with torch.autocast(rt.device.type, torch.bfloat16, enabled=rt.amp):
                logits = step_model(zeros(n))
            F.cross_entropy(logits.float(), torch.zeros(n, dtype=torch.int64, device=rt.device)).backward()
        model.zero_grad(set_to_none=True)
        model.eval()
        with torch.inference_mode(), torch.autocast(rt.device.type, torch.bfloat16, enabled=rt.eval_bf16):
            for n in _part_sizes(data.eval.batches):
                if n:
                    eval_model(zeros(n))
    with torch.no_grad():
        for k, b in model.named_buffers():
            b.copy_(saved[k])
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)
    return time.perf_counter() - t0


def train(cfg, model: nn.Module, data, out_dir: Path, on_epoch: Callable[[dict, list[dict]], None],
          fingerprint: str, dist: Dist = Dist()) -> dict:
    """Train ``model`` per ``cfg.recipe``; ``on_epoch(summary, history)`` runs after every epoch.

    Under torchrun the model is wrapped in DDP and every rank trains on its part of each global
    batch; the loss is scaled so that the averaged gradient is the global batch's mean gradient.
    A preemption signal checkpoints after the current step and raises ``Preempted``.

    The hot loop never waits for the device: loss, errors and the first non-finite step are
    summed on the device and read every ``CHECK_EVERY`` steps and at the end of the epoch (a NaN
    fails the run there, naming its step); ranks agree on a preemption stop through a CPU group.
    With ``train.compile`` the model is compiled before the clock starts (``compile_s``), so
    ``images_per_s`` counts training alone.
    """
    r, rt = cfg.recipe, runtime(cfg)
    model = model.to(rt.device, memory_format=torch.channels_last if rt.channels_last else torch.preserve_format)
    if dist.active and cfg.train.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    opt = make_optimizer(model, r, rt)
    net = model
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    if rt.compile:
        share_compile_cache(cfg.get("cache_dir"))
    step_model = torch.compile(net, mode=rt.compile) if rt.compile else net
    eval_model = step_model if not dist.active else (torch.compile(model, mode=rt.compile) if rt.compile else model)
    history, start, first, train_time, partial = [], 0, 0, 0.0, (0.0, 0.0, 0.0, 0.0)
    ckpt = out_dir / CHECKPOINT
    if ckpt.exists() and cfg.train.resume:
        state = torch.load(ckpt, map_location=rt.device, weights_only=True)
        if state.get("fingerprint") != fingerprint:
            raise ConfigError(f"{ckpt} belongs to a different config; delete it (or the run dir) to start afresh")
        was = state.get("amp", "fp32" if not rt.amp else "bf16")  # last.pt before it said: as the machine says now
        if was != ("bf16" if rt.amp else "fp32"):
            raise ConfigError(f"{ckpt} was trained in {was}, this relaunch would go on in "
                              f"{'bf16' if rt.amp else 'fp32'}: relaunch with train.amp={str(was == 'bf16').lower()} "
                              "to resume it as it was")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history, start, train_time = state["history"], state["epoch"], state["train_time_s"]
        first = state.get("step", 0)
        if "rng" in state:  # dropout and other draws of the global generator go on as if never stopped
            set_rng_state(state["rng"], rt.device)
        if first and dist.main:  # the interrupted epoch's running sums live on rank 0
            partial = tuple(state["partial"])
        where = f"step {first} of epoch {start + 1}" if first else f"epoch {start}"
        log.info("resuming from %s after %s of %d", ckpt, where, r.epochs)
    compiled = {}
    if rt.compile:
        compile_s = compile_warm_up(model, step_model, eval_model, data, rt, data.image_size)
        compiled = {"compile_s": compile_s, "graphs_compiled_while_timed": 0}
        log.info("torch.compile (mode %s): %.1f s, not counted in images/s", rt.compile, compile_s)

    def checkpoint(epoch: int, step: int = 0, sums=(0.0, 0.0, 0.0, 0.0)) -> None:
        if dist.main:
            save_checkpoint(ckpt, {"epoch": epoch, "step": step, "partial": list(sums), "model": model.state_dict(),
                                   "optimizer": opt.state_dict(), "history": history, "train_time_s": train_time,
                                   "fingerprint": fingerprint, "rng": rng_state(dev), "amp": "bf16" if rt.amp else "fp32"})

    steps = len(data.train)
    dev = rt.device
    with PreemptionGuard(cfg.train.preempt_signals) as guard:
        for epoch in range(start, r.epochs):
            model.train()
            skip = first if epoch == start else 0
            data.train.set_epoch(epoch, skip)
            loss0, wrong0, seen, elapsed = partial if skip else (0.0, 0.0, 0.0, 0.0)
            loss_sum = torch.tensor(loss0, dtype=torch.float64, device=dev)  # on the device: no per-step sync
            wrong = torch.tensor(int(wrong0), dtype=torch.int64, device=dev)
            bad = torch.tensor([0.0, 0.0], dtype=torch.float64, device=dev)  # first non-finite (step, loss)
            graphs = compiled_graphs()
            t0 = time.perf_counter() - elapsed
            bar = _progress(steps, f"epoch {epoch + 1}/{r.epochs}", cfg.train.progress if dist.main else False)
            bar.update(skip)

            def check(i: int) -> None:
                """Read the device sums: fail on a non-finite loss (every rank together), update the bar."""
                step, value = bad.tolist()
                if dist.any(step > 0):
                    bar.close()
                    where = f"at epoch {epoch + 1}, step {int(step)}" if step else f"on another rank by step {i + 1}"
                    raise Diverged(f"non-finite loss ({value}) {where}" if step else f"non-finite loss {where}")
                if not bar.disable:
                    bar.set_postfix(loss=f"{loss_sum.item() / max(seen, 1):.3f}",
                                    err=f"{100 * wrong.item() / max(seen, 1):.1f}%",
                                    ips=f"{seen * dist.world / (time.perf_counter() - t0):.0f}")

            for i, (x, y) in enumerate(data.train, start=skip):
                for group in opt.param_groups:
                    group["lr"] = lr_at(r, epoch + i / steps)
                x, y = _to(x, y, rt)
                with torch.autocast(dev.type, torch.bfloat16, enabled=rt.amp):
                    logits = step_model(x)
                    batch_loss = F.cross_entropy(logits.float(), y, label_smoothing=r.label_smoothing,
                                                 reduction="sum")
                # mean over the global batch; DDP divides the summed gradients by the world size
                loss = batch_loss * (dist.world / data.train.batches.size(i))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    b = batch_loss.detach()
                    loss_sum += b
                    wrong += (logits.argmax(1) != y).sum()
                    first_bad = (bad[0] == 0) & ~torch.isfinite(b)
                    bad.copy_(torch.where(first_bad, torch.stack([torch.full_like(bad[0], i + 1), b.double()]), bad))
                seen += len(y)
                bar.update()
                stop = dist.host_sum(float(guard.signum is not None))[0] > 0 if dist.active else \
                    guard.signum is not None
                if stop or i + 1 == steps or (i + 1 - skip) % CHECK_EVERY == 0:
                    check(i)
                if stop:
                    bar.close()
                    sums = dist.all_sum(loss_sum.item(), wrong.item(), seen)
                    checkpoint(epoch, i + 1, (*sums, time.perf_counter() - t0))  # time so far in this epoch
                    raise guard.preempted(f"at epoch {epoch + 1}, step {i + 1} of {steps}")
            bar.close()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            epoch_time = time.perf_counter() - t0
            train_time += epoch_time
            recompiled = compiled_graphs() - graphs
            if compiled and recompiled:
                compiled["graphs_compiled_while_timed"] += recompiled
                log.warning("torch.compile compiled %d graph(s) during the timed steps of epoch %d: its images/s "
                            "includes that compile time", recompiled, epoch + 1)
            loss_total, wrong_total, seen = dist.all_sum(loss_sum.item(), wrong.item(), seen)
            if dist.active:  # every rank scores with rank 0's BatchNorm statistics
                for b in model.buffers():
                    torch.distributed.broadcast(b, 0)
            top1, top5 = evaluate(eval_model, data.eval, rt, dist)
            history.append({"epoch": epoch + 1, "lr": lr_at(r, epoch), "train_loss": loss_total / seen,
                            "train_err": 100 * wrong_total / seen, "top1_err": top1, "top5_err": top5,
                            "epoch_time_s": epoch_time, "images_per_s": seen / epoch_time, "images": int(seen)})
            checkpoint(epoch + 1)
            log.info("epoch %d/%d  loss %.4f  train err %.2f%%  top-1 err %.2f%%  top-5 err %.2f%%  %.0f img/s",
                     epoch + 1, r.epochs, loss_total / seen, 100 * wrong_total / seen, top1, top5, seen / epoch_time)
            on_epoch({**summarise(history, train_time), **compiled}, history)
            if dist.any(guard.signum is not None) and epoch + 1 < r.epochs:
                raise guard.preempted(f"after epoch {epoch + 1}")
    result = {**summarise(history, train_time), **compiled}
    if dist.active:
        result["rank_param_spread"] = dist.spread(sum(float(p.detach().double().sum()) for p in model.parameters()))
    return result


def summarise(history: list[dict], train_time: float) -> dict:
    last = history[-1]
    best = min(history, key=lambda h: h["top1_err"])
    n_img = sum(h["images_per_s"] * h["epoch_time_s"] for h in history)
    return {"top1_err": last["top1_err"], "top5_err": last["top5_err"], "best_top1_err": best["top1_err"],
            "best_top5_err": min(h["top5_err"] for h in history), "best_epoch": best["epoch"],
            "epochs_done": last["epoch"], "train_time_s": train_time,
            "images_per_s": n_img / train_time if train_time else None}
