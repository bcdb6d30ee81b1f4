"""Run dirs -> one tidy pandas DataFrame, a row per run, plus each study's table spec.

Any number of run dirs or (nested) sweep roots. A damaged record (unreadable, not JSON, not an
object, missing or mistyped keys, NaN/inf numbers) or a run dir without a record is skipped with
one warning naming the path: a report never crashes on one bad run. Several records of the same
run (same study, row, task, config and seed) resolve to the newest completed one; failed and
unfinished runs stay in the frame (for counts) but are never averaged.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from ..records import RECORD, STATUSES
from .grouping import flatten

log = logging.getLogger("senet_ablate")

COMPLEXITY = ("params", "macs", "elementwise_ops", "gflops", "params_m", "input_size", "mflops")
TRAINING = (
    "top1_err",
    "top5_err",
    "best_top1_err",
    "best_top5_err",
    "epochs_done",
    "train_time_s",
    "images_per_s",
    "eval_images",
    "num_classes",
)
DETECTION = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")  # task=detect: COCO AP (%)
METRICS = (*COMPLEXITY, "unreported_blocks", "latency_ms_cpu_b1", *TRAINING, *DETECTION)
# what a completed record of each task must hold
REQUIRED = {
    "profile": COMPLEXITY[:4],
    "train": (*COMPLEXITY[:4], "top1_err", "top5_err", "epochs_done"),
    "excitation": (),
    "eval": (*COMPLEXITY[:4], "top1_err", "top5_err"),
    "detect": (*COMPLEXITY[:4], "ap", "ap50", "epochs_done"),
}
COLUMNS = [
    "run_dir",
    "study",
    "row",
    "task",
    "status",
    "seed",
    "model",
    "data",
    "fingerprint",
    "started_at",
    "finished_at",
    "job_num",
    *METRICS,
    "speed_setup",
]
# per run, for grouping.py (not exported): the flat config, the config-group options, the typed overrides
INTERNAL = ["_flat", "_choices", "_typed"]


class Damaged(ValueError):
    """A record that cannot be trusted; the message says why."""


def _check(rec) -> dict:
    if not isinstance(rec, dict):
        raise Damaged(f"not a JSON object but {type(rec).__name__}")
    if rec.get("status") not in STATUSES:
        raise Damaged(f"status is {rec.get('status')!r}, not one of {', '.join(STATUSES)}")
    if rec.get("task") not in REQUIRED:
        raise Damaged(f"task is {rec.get('task')!r}")
    for key in ("study", "row", "fingerprint", "finished_at"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            raise Damaged(f"{key} is a {type(rec[key]).__name__}, not a string")
    if not isinstance(rec.get("config", {}), dict):
        raise Damaged("config is not a mapping")
    for key in METRICS:
        v = rec.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise Damaged(f"{key} is {v!r}, not a number")
        if not math.isfinite(v):
            raise Damaged(f"{key} is {v}, not a finite number")
    if rec["status"] == "completed":
        missing = [k for k in REQUIRED[rec["task"]] if rec.get(k) is None]
        if missing:
            raise Damaged(f"completed but missing {', '.join(missing)}")
    return rec


def _candidates(paths: Iterable[str | Path]) -> list[Path]:
    """Run dirs (any dir holding a record or Hydra's .hydra/) at or below the given paths."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"no such run dir or sweep root: {p}")
        if p.is_file():
            found.add(p.parent)
            continue
        found.update(q.parent for q in p.rglob(RECORD))
        found.update(q.parent for q in p.rglob(".hydra") if q.is_dir())
    return sorted(found)


def _typed(overrides) -> dict:
    out = {}
    for o in overrides or []:
        if isinstance(o, str) and "=" in o:
            k, v = o.split("=", 1)
            out[k.lstrip("+~")] = v
    return out


def load(run_dir: Path) -> dict | None:
    """One run dir -> a flat row, or None (with one warning) when it has no usable record."""
    path = run_dir / RECORD
    try:
        if not path.exists():
            raise Damaged("no metrics.json (the job never started, or its record was lost)")
        if not path.is_file():
            raise Damaged("metrics.json is not a file")
        rec = _check(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, Damaged) as e:
        log.warning("skipping %s: %s", run_dir, e)
        return None
    config = rec.get("config") or {}
    choices = rec.get("choices") if isinstance(rec.get("choices"), dict) else {}
    name = lambda group: (config.get(group) or {}).get("name") if isinstance(config.get(group), dict) else None  # noqa: E731
    typed = _typed(rec.get("overrides"))
    row = {
        "run_dir": str(run_dir),
        **{k: rec.get(k) for k in COLUMNS[1:] if k in rec},
        "model": choices.get("model") or name("model"),
        "data": choices.get("data") or name("data"),
        **{f"set:{k}": v for k, v in typed.items()},
        "_flat": flatten(config),
        "_choices": choices,
        "_typed": typed,
    }
    if rec.get("device_name"):  # what the run's images/s depends on (train records that name their device)
        row["speed_setup"] = (
            f"{rec['device_name']}, {rec.get('amp')}, channels_last={rec.get('channels_last')}, "
            f"compile={rec.get('compile')}"
        )
    row["_spec"] = config.get("table") if isinstance(config.get("table"), dict) else None
    row["_key"] = json.dumps(
        [rec.get(k) for k in ("study", "row", "task", "seed")]
        + [rec.get("fingerprint") or json.dumps(config, sort_keys=True, default=str)]
    )
    return row


def _dedupe(df: pd.DataFrame) -> pd.DataFrame:
    """Keep, per run key, the newest completed record (or the newest record when none completed)."""
    df = df.assign(_done=df["status"] == "completed").sort_values(["_done", "finished_at"], na_position="first")
    return df.groupby("_key", sort=False).tail(1).sort_values("run_dir")


def collect(paths: Iterable[str | Path]) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Load every run under ``paths``: (DataFrame, one row per run; {study: table spec})."""
    rows = [r for r in map(load, _candidates(paths)) if r is not None]
    specs = {}
    for r in sorted(rows, key=lambda r: str(r.get("finished_at") or "")):  # the newest record's spec wins:
        if r.get("study") and r["_spec"] and r["_spec"].get("rows"):  # a preset that gained a row shows it
            specs[r["study"]] = r["_spec"]
    if not rows:
        return pd.DataFrame(columns=COLUMNS + INTERNAL), specs
    df = pd.DataFrame(rows)
    for c in COLUMNS:  # a key no record holds (finished_at of failed-only runs) is an empty column
        if c not in df:
            df[c] = None
    df = _dedupe(df)
    extra = sorted(c for c in df.columns if c.startswith("set:"))
    df["mflops"] = pd.to_numeric(df["gflops"], errors="coerce") * 1e3  # Table 3's unit; older records lack it
    return df[COLUMNS + extra + INTERNAL].reset_index(drop=True), specs


def export(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write the run table as ``runs.csv`` and ``runs.parquet``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    df = df.drop(columns=[c for c in df.columns if c.startswith("_")])
    csv, parquet = out_dir / "runs.csv", out_dir / "runs.parquet"
    df.to_csv(csv, index=False)
    df.astype({c: "string" for c in df.columns if df[c].dtype == object}).to_parquet(parquet, index=False)
    return [csv, parquet]
