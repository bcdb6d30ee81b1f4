"""Run DataFrame + a study's table spec -> its ``StudyTable``: the paper-shaped rows and what the text says
beside them. ``formats.py`` writes it as Markdown, LaTeX and CSV; ``cells.py`` and ``notes.py`` say it in words.

Per row, over its completed runs that trained (seeds) or weight evaluations (task=eval): mean ± sample std, n,
a 95% CI, Δ vs the row's baseline with its 95% CI, p, and a verdict (better / worse / equivalent within
±``table.margin`` / unresolved), by the method of ``inference.py`` (seeds and test images; ``compare.py``
assembles it); runs that did not train are counted and left out. Our params/GFLOPs stand beside the paper's:
Δ = ours rounded to the paper's printed digits minus the paper's figure (0 = the printed cell reproduced).
Serves every table: a preset's (its spec from experiments/) and any sweep's (its spec from grouping.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from . import compare, factorial, unstable
from . import inference as inf
from . import sequential as seq
from .columns import (
    COMPARED,
    EXTRA,
    MEASURED,
    SCORES_BRIEF,
    SHAPE,
    TRAINED_TASKS,
    WITH_VERDICT,
    Part,
    column_order,
)


@dataclass(frozen=True, eq=False)
class StudyTable:
    """A study's table: ``frame`` (one row per table row, in the spec's order: table.csv) and what its notes,
    answer and figures read beside it. Each row's own baseline is ``frame["baseline"]``; ``baseline`` is the
    table's (the one most rows are measured against). ``StudyTable(frame)`` alone is a table of rows with nothing
    said beside them (what a figure needs)."""

    frame: pd.DataFrame
    # inference.settings (alpha, margin, correction, test, resamples), or an adaptive plan's levels
    settings: dict = field(default_factory=lambda: inf.settings({}))
    baseline: str | None = None
    baseline_why: str = ""
    labels: dict[str, str] = field(default_factory=dict)  # {row: its label}
    paper_digits: dict[str, int] = field(default_factory=dict)  # {compared column: the decimals its source prints}
    untrained: pd.DataFrame | None = None  # runs that did not train (set apart from every statistic)
    primary: str | None = None  # the metric whose comparisons share one budget α; the others are secondary
    cols: tuple[str, ...] = ()  # the metrics with intervals, Δs and verdicts
    family: int = 1  # m: the primary metric's comparisons that share α
    samples: dict[str, dict[str, inf.Sample]] = field(default_factory=dict)  # {row: {metric: runs' values}}
    unstable: unstable.Unstable = field(default_factory=unstable.Unstable)
    plan: seq.Plan | None = None  # an adaptive study's (hydra.sweeper.until=verdict)
    decisions: dict[str, seq.Decision] = field(default_factory=dict)  # {planned row: where its looks stopped}
    owed: tuple[tuple[str, int], ...] = ()  # (row, seed): the runs the plan's next look needs
    effects: tuple[factorial.Effect, ...] = ()  # a factorial sweep's main effects and interactions
    best: tuple[tuple[str, factorial.Best], ...] = ()  # (what, the best setting and those tied with it)
    images: int | None = None  # test images each run was scored on (None without per-image predictions)
    speed_note: str = ""  # where the img/s column was measured (a warning when its runs mix setups)

    @property
    def measured(self) -> bool:
        """Whether any row has runs with an error or an AP (not a table of complexity only)."""
        return any((self.frame[Part.N.of(c)].fillna(0) > 0).any() for c in WITH_VERDICT)


def summary(values: Iterable[float | None]) -> dict:
    """n, mean, sample std and the 95% CI half-width (Student t, seeds only) of ``values``."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    est = inf.row_estimate(inf.Sample(v, tuple(range(len(v)))))
    return {
        "n": len(v),
        "mean": est.mean,
        "std": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
        "ci95": est.half_width(0.95) if len(v) > 1 else math.nan,
    }


def _num(v) -> float:
    """A record's value as a float; missing (None, NaN) as NaN."""
    return math.nan if v is None or pd.isna(v) else float(v)


def table_baseline(spec: dict) -> tuple[str | None, str]:
    """(the table's baseline row, why): ``baseline`` of the spec, else the row with SE off, else the first."""
    rows = spec.get("rows") or {}
    if spec.get("baseline") in rows:
        return spec["baseline"], spec.get("baseline_why", "table.baseline")
    off = [k for k, r in rows.items() if "se.stages=[]" in [str(o).replace(" ", "") for o in r.get("set") or []]]
    if off:
        return off[0], "no table.baseline: the row with SE off"
    return (next(iter(rows)), "no table.baseline: the first row") if rows else (None, "")


def study_table(runs: pd.DataFrame, spec: dict) -> StudyTable:
    """One row per table row of ``spec``, in the paper's order, and what the table says beside them."""
    done = runs[runs["status"] == "completed"]
    trained = done[done["task"].isin(TRAINED_TASKS)]
    trained = trained[trained["row"].isin(list(spec["rows"]))]
    st = inf.settings({**_newest_table(runs), **{k: v for k, v in spec.items() if k in inf.DEFAULTS}})
    if spec.get("plan") is not None:  # an adaptive study is read at the levels its looks were planned with
        st = {**st, **spec["plan"].settings(), "plan": spec["plan"]}
    base, why = trained_baseline(trained, spec, st["alpha"])
    bases = {
        k: row.get("baseline", base) if row.get("baseline") in spec["rows"] else base for k, row in spec["rows"].items()
    }
    stats, found = compare.statistics(trained, spec["rows"], bases, st)
    digits = paper_digits(spec)
    out = [{"row": key, **_row_cells(key, runs, trained, spec, digits, stats[key])} for key in spec["rows"]]
    frame = pd.DataFrame(out)
    for col in MEASURED:  # a metric no run has: empty columns, so that every table has the same shape
        for part in SHAPE:
            if part.of(col) not in frame:
                frame[part.of(col)] = 0 if part is Part.N else math.nan
    effects, bests = _answers(found, spec, st)
    return StudyTable(
        frame=frame[column_order(frame.columns)],
        settings=st,
        baseline=base,
        baseline_why=why,
        labels={k: r.get("label", k) for k, r in spec["rows"].items()},
        paper_digits=digits,
        **{f.name: getattr(found, f.name) for f in fields(found)},
        effects=tuple(effects),
        best=tuple(bests),
        images=_images(found.samples),
        speed_note=speed_note(trained),
    )


def _row_cells(key: str, runs: pd.DataFrame, trained: pd.DataFrame, spec: dict, digits: dict, stats: dict) -> dict:
    """One table row: its label, statistics, run counts, brief scores, paper cells, complexity and costs."""
    row = spec["rows"][key]
    mine = runs[runs["row"] == key]
    last = mine[mine["status"] == "completed"].sort_values("finished_at", na_position="first")
    last = last.iloc[-1] if len(last) else None
    paper = row.get("paper") or {}
    rec = {
        "label": row.get("label", key),
        **stats,
        "completed": int((mine["status"] == "completed").sum()),
        "failed": int((mine["status"] == "failed").sum()),
        "running": int(mine["status"].isin(["running", "preempted"]).sum()),
        "interrupted": int((mine["status"] == "interrupted").sum()),
        "unreported_blocks": _unreported(last),
    }
    ours = trained[trained["row"] == key]
    for col in SCORES_BRIEF:
        s = summary(ours[col].astype(float).tolist() if col in ours else [])
        rec.update({Part(k).of(col): v for k, v in s.items()})
    for col in MEASURED:
        rec[Part.PAPER.of(col)] = _num(paper.get(col))
    for col, printed in digits.items():
        value, ref = _num(last[col] if last is not None else None), _num(paper.get(col))
        rec[col], rec[Part.PAPER.of(col)] = value, ref
        rec[Part.DELTA.of(col)] = round(round(value, printed) - ref, printed)
    for col, extra in EXTRA.items():
        src = ours[col] if col == "images_per_s" else pd.Series([last[col] if last is not None else None])
        rec[col] = _num(src.astype(float).mean() if len(src) else None) * extra.scale
    return rec


def speed_note(trained: pd.DataFrame) -> str:
    """Where the img/s column was measured; a warning when its runs come from several setups."""
    timed = trained[trained["images_per_s"].notna()]
    setups = sorted(timed["speed_setup"].dropna().unique()) if "speed_setup" in timed else []
    if len(setups) == 1:
        return f"train img/s measured on: {setups[0]}."
    if len(setups) > 1:
        return f"train img/s mixes {len(setups)} setups, compare speeds within one only: " + "; ".join(setups) + "."
    return ""


def trained_baseline(trained: pd.DataFrame, spec: dict, alpha: float) -> tuple[str | None, str]:
    """``table_baseline``, unless it was not chosen by hand and most of its runs did not train: then the first
    row (in table order) whose runs trained, and the reason says so."""
    base, why = table_baseline(spec)
    if base is None or spec.get("baseline_given") or (why == "table.baseline" and not spec.get("adhoc")):
        return base, why
    _, untrained = unstable.set_apart(trained, alpha)
    failed = {r for r in spec["rows"] if (untrained["row"] == r).sum() > (trained["row"] == r).sum() / 2}
    if base not in failed:
        return base, why
    ok = [r for r in spec["rows"] if r not in failed and (trained["row"] == r).any()]
    if not ok:
        return base, why
    label = spec["rows"][base].get("label", base)
    return ok[0], f"{label}, the default, did not train: the first row that trained; table.baseline picks another"


def _answers(found: compare.Analysis, spec: dict, st: dict) -> tuple[list, list]:
    """The factorial effects and the best settings of the primary metric (``factorial.answers``)."""
    col = found.primary
    if col is None or not found.samples:
        return [], []
    return factorial.answers(found.samples, spec, col, st["alpha"], (st.get("margin") or {}).get(col))


def _images(samples: dict) -> int | None:
    """The number of test images the runs were scored on (None without per-image predictions)."""
    for per_metric in samples.values():
        s = per_metric.get("top1_err")
        if s is not None and s.per_image is not None:
            return int(s.per_image.shape[1])
    return None


def _newest_table(runs: pd.DataFrame) -> dict:
    """The ``table.*`` inference keys of the newest run's config (an ad-hoc study's spec has none)."""
    if not len(runs) or "_flat" not in runs:
        return {}
    flat = runs.sort_values("finished_at", na_position="first").iloc[-1]["_flat"] or {}
    out = {}
    for key in inf.DEFAULTS:
        v = flat.get(f"table.{key}")
        if key == "margin":
            per = {m: flat[f"table.margin.{m}"] for m in inf.METRICS if flat.get(f"table.margin.{m}") is not None}
            v = per or v
        if v not in (None, "null"):
            out[key] = v if key in ("correction", "test", "margin") else float(v)
    return out


def paper_digits(spec: dict) -> dict[str, int]:
    """Decimals the source prints for each compared column: the SE paper's (``COMPARED``) unless the
    table says otherwise (``table.paper_digits``, e.g. {params_m: 2, gflops: 3} for a table printing 26.15M)."""
    given = spec.get("paper_digits") or {}
    unknown = sorted(set(given) - set(COMPARED))
    if unknown:
        raise ValueError(f"table.paper_digits.{unknown[0]}: valid keys: {', '.join(COMPARED)}")
    return {col: int(given.get(col, c.paper_digits)) for col, c in COMPARED.items()}


def _unreported(run) -> int:
    """Blocks of a user's module (se.module) that did not report their elementwise ops."""
    n = None if run is None else run.get("unreported_blocks")
    return 0 if n is None or pd.isna(n) else int(n)
