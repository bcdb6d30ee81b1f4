"""A job inside ``torchrun`` and under a scheduler: the process group and the preemption signals.

- ``Dist``: rank and world size from torchrun's environment; rank 0 alone writes.
- ``PreemptionGuard``: SIGTERM / SIGUSR1 / SIGUSR2 (what SLURM and submitit send) only raise a
  flag; the training loop checkpoints at the next step and raises ``Preempted``; ``hand_over``
  then gives the signal to the handler that was there before (submitit's, which requeues the
  job) or exits with 128 + the signal number so that SLURM or torchrun can restart it. Ctrl-C
  (SIGINT) is caught the same way and raises ``Interrupted``: the job is recorded as interrupted
  and exits 130; a second Ctrl-C stops it at once (``KeyboardInterrupt``).

The core (``train/``, ``detect/``, ``data/``) uses this module; the Hydra edge (``run/``) only calls it.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist

from .errors import ConfigError
from .records import env_rank

__all__ = ["Dist", "dist_context", "env_rank", "Preempted", "Interrupted", "PreemptionGuard", "hand_over", "ended_as"]

log = logging.getLogger("senet_ablate")

PREEMPT_SIGNALS = ("SIGTERM", "SIGUSR1", "SIGUSR2")


# ---------------------------------------------------------------------------- torchrun
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_sum(self, *values: float) -> list[float]:
        """Sum numbers over the ranks (identity for one process)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
        dist.all_reduce(t)
        return t.tolist()

    def spread(self, value: float) -> float:
        """max - min of ``value`` over the ranks (0.0 when they hold the same number)."""
        return self._max(value) + self._max(-value) if self.active else 0.0

    def _max(self, value: float) -> float:
        t = torch.tensor([value], dtype=torch.float64, device=_comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.item()

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one."""
        return bool(self.all_sum(float(flag))[0]) if self.active else flag

    def host_sum(self, *values: float) -> list[float]:
        """Sum host numbers over the ranks through a CPU (gloo) group: no GPU sync, so the
        training loop may agree on a stop flag every step without stalling the device."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, group=_control_group())
        return t.tolist()


_CONTROL: list = []  # the CPU group for host_sum, made on first use (by every rank, in step)


def _control_group():
    if not _CONTROL:
        _CONTROL.append(None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo"))
    return _CONTROL[0]


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _leave_group() -> None:
    _CONTROL.clear()
    gc.collect()  # a finished DistributedDataParallel sits in a reference cycle, holding the group
    if dist.is_initialized():
        dist.destroy_process_group()


def dist_context(backend: str = "auto") -> Dist:
    """Join torchrun's process group once per process (env:// rendezvous); one process → no group."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    if not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        # Leave the group while the interpreter is whole (atexit): a group that outlives it is
        # torn down during interpreter shutdown, with its worker threads still running, and the
        # rank dies by SIGABRT now and then. For destroy_process_group to really free the group,
        # nothing may keep a reference: torch.distributed.nn.functional, which DDP imports, binds
        # `group.WORLD` as a default argument when first imported, so import it before the group exists.
        importlib.import_module("torch.distributed.nn.functional")
        dist.init_process_group(backend)
        atexit.register(_leave_group)
        log.info("rank %d of %d joined the %s process group", rank, world, backend)
    return Dist(rank, world, local)


# ---------------------------------------------------------------------------- preemption
class Preempted(Exception):
    """A preemption signal arrived; a checkpoint is on disk."""

    def __init__(self, signum: int, where: str, previous: object = None):
        self.signum, self.previous = signum, previous
        super().__init__(f"preempted by {signal.Signals(signum).name} {where}; relaunch to resume")


class Interrupted(Preempted):
    """Ctrl-C (SIGINT) arrived; a checkpoint is on disk. The job exits 130, nobody requeues it."""

    def __init__(self, where: str):
        Exception.__init__(self, f"interrupted by Ctrl-C {where}; relaunch the same command to resume")
        self.signum, self.previous = signal.SIGINT, None


class PreemptionGuard:
    """Within ``with``: the preemption signals and a first Ctrl-C set ``signum`` instead of their
    usual action; a second Ctrl-C raises ``KeyboardInterrupt`` at once."""

    def __init__(self, names: Sequence[str] = PREEMPT_SIGNALS):
        bad = [n for n in names if not str(n).startswith("SIG") or not hasattr(signal, str(n))]
        if bad:
            raise ConfigError(
                f"train.preempt_signals: {bad} are not signals of this platform (e.g. {', '.join(PREEMPT_SIGNALS)})"
            )
        self.signals = [getattr(signal, str(n)) for n in names]
        self.signum: int | None = None
        self.previous: dict[int, object] = {}

    def _catch(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now, last.pt stays as it was
        if self.signum is None:
            self.signum = signum
            if signum == signal.SIGINT:
                print(
                    "\nCtrl-C: checkpointing at the end of this step (press Ctrl-C again to stop at once)",
                    file=sys.stderr,
                    flush=True,
                )
            else:
                log.warning("caught %s: checkpointing at the end of this step", signal.Signals(signum).name)

    def preempted(self, where: str) -> Preempted:
        """The exception to raise once the checkpoint is written (SIGTERM when only another rank
        caught a signal)."""
        if self.signum == signal.SIGINT:
            return Interrupted(where)
        signum = self.signum or signal.SIGTERM
        return Preempted(signum, where, self.previous.get(signum))

    def __enter__(self) -> "PreemptionGuard":
        if sys.platform != "win32" and _main_thread():
            for s in (*self.signals, signal.SIGINT):
                self.previous[s] = signal.signal(s, self._catch)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self.previous.items():
            signal.signal(s, h)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def hand_over(p: Preempted) -> None:
    """After the checkpoint and the record are written: let submitit requeue, or exit 128 + signum."""
    if callable(p.previous):
        p.previous(p.signum, None)  # submitit: re-dumps the job, requeues it and exits
    raise SystemExit(128 + p.signum)


def ended_as(e: BaseException) -> str:
    """The status a job that raised ``e`` ends with."""
    if isinstance(e, (Interrupted, KeyboardInterrupt)):
        return "interrupted"
    return "preempted" if isinstance(e, Preempted) else "failed"
