"""The life of DataLoader worker processes: they ignore preemption signals and Ctrl-C (the main
process checkpoints and stops them), every pass that may have workers running is tracked, and
each is stopped when its pass ends, fails or is closed, or at the latest when Python exits."""

from __future__ import annotations

import atexit
import signal
import weakref
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from ..distributed import PREEMPT_SIGNALS

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

_LIVE_ITERATORS: "weakref.WeakSet" = weakref.WeakSet()  # DataLoader iterators whose workers may run


def quiet_worker(_: int) -> None:
    """DataLoader workers leave preemption signals and Ctrl-C to the main process (SLURM signals
    every process of a job, a terminal's Ctrl-C the whole process group; a worker killed by it
    would fail the job instead of letting it checkpoint). Hence they ignore SIGTERM and SIGINT
    too, and are stopped by ``stop_workers``, never by a signal alone."""
    for name in (*PREEMPT_SIGNALS, "SIGINT"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def stop_workers(it: Iterator) -> None:
    """Shut a DataLoader iterator's workers down now: the loader's own shutdown, then SIGKILL for
    any worker still alive (ours ignore SIGTERM, which is all that shutdown and multiprocessing's
    exit handler send: without this, a failed job's workers kept its process from exiting)."""
    shutdown = getattr(it, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
    for w in getattr(it, "_workers", ()):
        if w.is_alive():
            w.kill()
            w.join()
    _LIVE_ITERATORS.discard(it)


@contextmanager
def worker_pass(loader: DataLoader) -> Iterator[Iterator]:
    """One pass over a DataLoader: its iterator, tracked while it runs, its workers stopped when
    the block is left (the pass ended, failed or was closed)."""
    it = iter(loader)
    _LIVE_ITERATORS.add(it)
    try:
        yield it
    finally:
        stop_workers(it)


@atexit.register  # runs before multiprocessing's exit handler, which would wait for the workers
def _stop_all_workers() -> None:
    for it in list(_LIVE_ITERATORS):
        stop_workers(it)
