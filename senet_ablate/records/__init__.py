"""Run records: one ``metrics.json`` per job, always written whole (``atomic.write_atomic``).

``status`` is ``running`` while a job works, then ``completed``, ``failed`` (with ``reason``), or
``preempted`` / ``interrupted`` (a signal or Ctrl-C: checkpointed, a relaunch resumes it).
"""

from __future__ import annotations

import copy
import csv
import functools
import importlib.metadata as md
import io
import json
import math
import os
import platform
import subprocess
from pathlib import Path

from .atomic import write_atomic

RECORD = "metrics.json"
STATUSES = ("running", "preempted", "interrupted", "completed", "failed")  # preempted/interrupted: resume on relaunch


def env_rank() -> int:
    """This process's rank under torchrun (0 outside it): rank 0 alone writes records."""
    return int(os.environ.get("RANK", 0))


def _finite(obj):
    """JSON has no NaN/inf: store them as null so every record parses everywhere."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_record(run_dir: Path, record: dict) -> Path:
    assert record.get("status") in STATUSES, record.get("status")
    path = Path(run_dir) / RECORD
    write_atomic(path, json.dumps(_finite(record), indent=2) + "\n")
    return path


def read_record(path: Path) -> dict:
    path = Path(path)
    return json.loads((path / RECORD if path.is_dir() else path).read_text())


def write_history(run_dir: Path, history: list[dict]) -> Path:
    """Per-epoch metrics as ``history.csv`` (one row per epoch)."""
    path = Path(run_dir) / "history.csv"
    cols = list(history[0]) if history else []
    out = io.StringIO()
    rows = csv.writer(out, lineterminator="\n")  # quotes a field that holds a comma, a quote or a newline
    rows.writerow(cols)
    rows.writerows([repr(h[c]) if isinstance(h[c], float) else h[c] for c in cols] for h in history)
    write_atomic(path, out.getvalue())
    return path


@functools.lru_cache(maxsize=1)
def _provenance() -> dict:
    """Git revision of the code and versions of the packages that shape a result: read once per
    process (every job of a sweep in one process runs the code that process imported)."""
    here = Path(__file__).resolve().parent

    def git(*args):
        try:
            out = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10)
            return out.stdout.strip() if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None

    versions = {"python": platform.python_version()}
    for pkg in ("senet-ablate", "torch", "torchvision", "hydra-core", "omegaconf", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    rev = git("rev-parse", "HEAD")
    return {"git_revision": rev, "git_dirty": bool(git("status", "--porcelain")) if rev else None, "versions": versions}


def provenance() -> dict:
    return copy.deepcopy(_provenance())


class Job:
    """One job's output dir and its record, rewritten whole on every update."""

    def __init__(self, out_dir: Path, record: dict):
        self.out_dir, self.record = out_dir, record
        self.writer = env_rank() == 0  # under torchrun, rank 0 alone writes

    def update(self, **fields: object) -> None:
        """Add ``fields`` to the record and write it (rank 0 only)."""
        self.record.update(fields)
        if self.writer:
            write_record(self.out_dir, self.record)
