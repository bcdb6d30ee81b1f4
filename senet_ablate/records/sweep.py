"""A sweep's jobs as its sweeper launched them: ``jobs.json`` in the sweep dir, beside Hydra's multirun.yaml.

Our sweeper (``hydra_plugins/senet_ablate_sweeper``) writes it before the first job starts; ``senet-report
--status`` reads it to say which jobs are done and which a relaunch still owes, and a job reads it to know how
many jobs share the machine. Plain Python: no Hydra, no torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_atomic

JOBS_FILE = "jobs.json"


@dataclass(frozen=True)
class SweepJob:
    """One job of a sweep: the overrides it was launched with (those a user typed or swept, before a study
    row's), and the name of its run dir in the sweep dir."""

    overrides: tuple[str, ...]
    dir_name: str


def write_jobs(sweep_dir: Path | str, jobs: list[SweepJob]) -> Path:
    """``jobs``, in the order the sweep launches them, as ``<sweep_dir>/jobs.json``."""
    body = {"jobs": [{"overrides": list(j.overrides), "dir": j.dir_name} for j in jobs]}
    return write_atomic(Path(sweep_dir) / JOBS_FILE, json.dumps(body, indent=1) + "\n")


def read_jobs(sweep_dir: Path | str) -> list[SweepJob] | None:
    """The jobs ``write_jobs`` recorded in ``sweep_dir``; None where there is no record (a sweep made before
    the record existed, or by another sweeper)."""
    path = Path(sweep_dir) / JOBS_FILE
    if not path.is_file():
        return None
    jobs = json.loads(path.read_text())["jobs"]
    return [SweepJob(tuple(str(o) for o in j["overrides"]), str(j["dir"])) for j in jobs]
