"""``train.compile``: a cache every job of a sweep shares, the warm-up that compiles before the
clock starts, and the count of graphs compiled while timed."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .runtime import Runtime

if TYPE_CHECKING:
    from ..data import Data

log = logging.getLogger("senet_ablate")

# a cold compile (empty cache) before the first step on this project's 2-core CPUs: SE-ResNet-20 64 s
# (benchmarks/compile_auto.py), ResNet-20 on digits 304 s with the cores shared by other jobs; cached: seconds
FIRST_COMPILE = {"cpu": "1 to 5 min on a CPU"}

# the compile caches a user chose in the shell, read at import (torch writes its default into the environment later)
_USER_COMPILE_CACHE = [k for k in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR") if k in os.environ]


def share_compile_cache(cache_dir: str | os.PathLike | None) -> None:
    """Point torch.compile's caches (inductor, triton) at ``cache_dir`` unless the user set them:
    the jobs of a sweep, on one machine or on every node of a cluster, then compile each graph once."""
    if not cache_dir:
        return
    base = Path(str(cache_dir)).expanduser()
    for key, sub in (("TORCHINDUCTOR_CACHE_DIR", "inductor"), ("TRITON_CACHE_DIR", "triton")):
        if key not in _USER_COMPILE_CACHE:
            os.environ[key] = str(base / sub)


def announce_compile(rt: Runtime, why: str) -> None:
    """Say, before the long silent wait, that the model is about to be compiled, why and for how long."""
    if not rt.compile:
        return
    cost = FIRST_COMPILE.get(rt.device.type, "a minute or more")
    log.info("compiling the model (torch.compile, %s): the first compile takes %s, seconds once cached", why, cost)


def compiled_graphs() -> int:
    """Graphs torch.compile has compiled in this process so far (0 where torch does not say)."""
    try:
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])
    except Exception:  # noqa: BLE001 - a private counter; its absence only disables a warning
        return 0


def compile_warm_up(
    model: nn.Module, step_model: nn.Module, eval_model: nn.Module, data: Data, rt: Runtime, image_size: int
) -> float:
    """Compile before the clock starts: one forward + backward of zeros per training batch shape
    and one forward per eval batch shape, then put back the BatchNorm statistics, the gradients
    and the random state, so that the run is the same as without the warm-up. Returns seconds."""
    t0 = time.perf_counter()
    saved = {k: b.clone() for k, b in model.named_buffers()}
    fmt = torch.channels_last if rt.channels_last else torch.contiguous_format

    def zeros(n: int) -> torch.Tensor:
        return torch.zeros(n, 3, image_size, image_size, device=rt.device).contiguous(memory_format=fmt)

    with torch.random.fork_rng(devices=[rt.device] if rt.device.type == "cuda" else []):
        model.train()
        for n in data.train.part_sizes():  # every rank does both passes (DDP: same collectives)
            with rt.autocast(rt.amp):
                logits = step_model(zeros(n))
            F.cross_entropy(logits.float(), torch.zeros(n, dtype=torch.int64, device=rt.device)).backward()
        model.zero_grad(set_to_none=True)
        model.eval()
        with torch.inference_mode(), rt.autocast(rt.eval_bf16):
            for n in data.eval.part_sizes():
                if n:
                    eval_model(zeros(n))
    with torch.no_grad():
        for k, b in model.named_buffers():
            b.copy_(saved[k])
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)
    return time.perf_counter() - t0
