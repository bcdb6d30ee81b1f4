"""How many CPU threads and DataLoader workers a job may use, from its launcher (the Hydra edge).

Scale-out uses existing engines: Hydra's joblib and submitit launchers run the jobs of a sweep,
``torchrun`` runs one job data-parallel (DDP; ``senet_ablate.distributed``). So that parallel jobs
do not oversubscribe the cores, ``threads`` and ``data.workers: auto`` resolve to the job's share
(joblib: cores // n_jobs; submitit: cpus_per_task; SLURM: SLURM_CPUS_PER_TASK; torchrun sets
OMP_NUM_THREADS itself).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig

from ..data import check_workers
from ..errors import ConfigError
from ..study.status import sweep_jobs

log = logging.getLogger("senet_ablate")


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _launcher() -> dict:
    if not HydraConfig.initialized():
        return {}
    return dict(HydraConfig.get().get("launcher") or {})


def cpu_budget() -> tuple[int | None, str]:
    """The cores this job may use when a launcher or scheduler says so (None: nobody said)."""
    launcher = _launcher()
    if "joblib" in str(launcher.get("_target_", "")).lower():
        n_jobs = int(launcher.get("n_jobs") or -1)
        n_jobs = available_cores() if n_jobs < 1 else n_jobs
        return max(1, available_cores() // n_jobs), f"joblib n_jobs={n_jobs}"
    if launcher.get("cpus_per_task"):
        return int(launcher["cpus_per_task"]), "submitit cpus_per_task"
    if str(launcher.get("_target_", "")).endswith("submitit_launcher.LocalLauncher"):
        n_jobs = _sweep_size()  # submitit_local starts every job of the sweep at once
        return max(1, available_cores() // n_jobs), f"submitit_local, {n_jobs} jobs at once"
    if os.environ.get("SLURM_CPUS_PER_TASK"):
        return int(os.environ["SLURM_CPUS_PER_TASK"]), "SLURM_CPUS_PER_TASK"
    return None, "torch default"


def _sweep_size() -> int:
    """Jobs in the running sweep, as its sweeper recorded them or its multirun.yaml says (1 when unknown)."""
    try:
        return max(1, len(sweep_jobs(Path(HydraConfig.get().sweep.dir))))
    except Exception:  # no sweep file (a single run): one job
        return 1


def _at_least(key: str, setting: int | str, low: int, words: str) -> int:
    if not isinstance(setting, int) or isinstance(setting, bool) or setting < low:
        raise ConfigError(f"{key}={setting!r} must be 'auto' or a {words} integer")
    return setting


def job_threads(setting: int | str) -> tuple[int | None, str]:
    """The intra-op thread count for this job and why (``threads: auto`` or a positive int)."""
    if setting != "auto":
        return _at_least("threads", setting, 1, "positive"), "threads"
    if os.environ.get("OMP_NUM_THREADS"):  # torchrun, joblib's loky workers or the user set it
        return int(os.environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
    return cpu_budget()


def data_workers(setting: int | str) -> int:
    """DataLoader workers of a streamed dataset (``data.workers: auto`` or an int >= 0): the job's
    cores (per process under torchrun) less one for the training loop, at most 8."""
    if setting != "auto":
        return check_workers(setting)
    cores = cpu_budget()[0] or available_cores()
    cores //= int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    return max(0, min(8, cores - 1))


def decode_processes(setting: int | str) -> int:
    """The most processes that may decode an in-memory image tree (``data.workers``: auto = the
    job's cores, at most 8; or an int >= 0). The data package uses fewer for a small tree."""
    if setting != "auto":
        return data_workers(setting)
    return min(8, cpu_budget()[0] or available_cores())


def set_threads(setting: int | str) -> int:
    n, why = job_threads(setting)
    if n is not None and n != torch.get_num_threads():
        torch.set_num_threads(n)
    log.debug("%d CPU threads (%s)", torch.get_num_threads(), why)
    return torch.get_num_threads()
