"""Run dirs -> one tidy pandas DataFrame, a row per run record, plus each study's table spec."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable

import pandas as pd

from .records import RECORD

log = logging.getLogger("senet_ablate")

METRICS = ("params", "macs", "elementwise_ops", "gflops", "params_m", "input_size", "latency_ms_cpu_b1",
           "top1_err", "top5_err", "best_top1_err", "best_top5_err", "epochs_done", "train_time_s", "images_per_s")


def find_records(paths: Iterable[str | Path]) -> list[Path]:
    """Every ``metrics.json`` at or below the given run dirs / sweep roots, in a stable order."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"no such run dir or sweep root: {p}")
        found.update([p] if p.is_file() else p.rglob(RECORD))
    return sorted(found)


def collect(paths: Iterable[str | Path]) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Load every record: (DataFrame with one row per run, {study: table spec})."""
    rows, specs = [], {}
    for path in find_records(paths):
        try:
            rec = json.loads(path.read_text())
            if not isinstance(rec, dict) or "status" not in rec:
                raise ValueError("not a run record (no 'status')")
        except (OSError, ValueError) as e:
            log.warning("skipping %s: %s", path, e)
            continue
        config = rec.get("config") or {}
        study = rec.get("study") or config.get("study")
        if study and config.get("table"):
            specs.setdefault(study, config["table"])
        rows.append({
            "run_dir": str(path.parent), "study": study, "row": rec.get("row"), "task": rec.get("task"),
            "status": rec.get("status"), "seed": rec.get("seed"), "model": (config.get("model") or {}).get("name"),
            "finished_at": rec.get("finished_at"), **{k: rec.get(k) for k in METRICS},
        })
    columns = ["run_dir", "study", "row", "task", "status", "seed", "model", "finished_at", *METRICS]
    return pd.DataFrame(rows, columns=columns), specs
