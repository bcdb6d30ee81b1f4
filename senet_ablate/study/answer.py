"""What a study found, in words and numbers, before its table: one line per comparison (verdict, Δ with the
interval the verdict is read from, seeds, pairing, and for an open comparison what would settle it), then the
factorial sweep's main effects and interactions and the best setting (``factorial.py``)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from . import distributions as dist
from . import factorial
from . import inference as inf
from .columns import UNIT, Part
from .tables import StudyTable

# a study that can resolve sub-point Δs where a small test set cannot: CIFAR-10's 10,000 test images
LARGER = "experiment=cpu/table11_squeeze (CIFAR-10's 10,000 test images)"


def _runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")


def _interval(lo: float, hi: float) -> str:
    return "no interval (fewer than 2 runs a row)" if math.isnan(lo) else f"[{lo:+.2f}, {hi:+.2f}]"


def comparison(r: pd.Series, table: StudyTable) -> str | None:
    """One comparison's line; None for the baseline and for rows without a Δ."""
    col, labels = table.primary, table.labels
    verdict = r.get(Part.VERDICT.of(col)) if col else None
    if not isinstance(verdict, str) or verdict in (inf.BASELINE, "–"):
        return None
    head = f"{r['label']} vs {labels.get(r['baseline'], r['baseline'])}: "
    if verdict in (inf.DID_NOT_TRAIN, "no verdict"):
        return head + ("did not train (most runs at chance): no verdict" if verdict == inf.DID_NOT_TRAIN
                       else "no verdict: the baseline did not train")  # fmt: skip
    d = r.get(Part.DELTA.of(col), math.nan)
    lo, hi = r.get(Part.DELTA_LO.of(col), math.nan), r.get(Part.DELTA_HI.of(col), math.nan)
    n = int(r.get("seeds_used") or r.get(Part.N.of(col)) or 0)
    paired = "paired" if r.get(Part.PAIRED.of(col)) is True else "unpaired"
    said = verdict_text(r, col, table, brief=True)
    line = f"{head}{said} — Δ {d:+.2f} {_interval(lo, hi)} {UNIT[col]}{_in_images(d, col, table)}, {n} seeds {paired}"
    if verdict == inf.UNRESOLVED:
        line += "; " + settle(r, col, table)
    return line


def verdict_text(r: pd.Series, col: str, table: StudyTable, brief: bool = False) -> str:
    """The verdict as the tables print it: `within ±m` where a significant Δ is also negligible, the smallest
    margin shown where there is none (not when ``brief``: the interval beside it says it), and `(seeds only)`
    for one reached without the test sample (no predictions.npz)."""
    v = r.get(Part.VERDICT.of(col))
    if not isinstance(v, str):
        return "–"
    st = table.settings
    margin = (st.get("margin") or {}).get(col)
    decided = v in (inf.BETTER, inf.WORSE, inf.EQUIVALENT)
    if v in (inf.BETTER, inf.WORSE) and margin and r.get(Part.WITHIN.of(col)) is True:
        v += f", within ±{margin:g}"
    shown = r.get(Part.SHOWN.of(col), math.nan)
    if v == inf.UNRESOLVED and not margin and not brief and not pd.isna(shown):
        v += f" (shown: Δ within ±{shown:.2f})"
    seeds_only = decided and st["test"] == "joint" and r.get(Part.DELTA_METHOD.of(col)) == "seeds"
    return v + (" (seeds only)" if seeds_only else "")


def _in_images(d: float, col: str, table: StudyTable) -> str:
    """Δ in test images where the test set is small enough for that to matter (under 2,000 images)."""
    images = table.images
    if not images or images >= 2000 or col not in ("top1_err", "top5_err") or math.isnan(d):
        return ""
    return f" ({abs(d) * images / 100:.0f} of {images} test images)"  # whole images: Δ of 2 runs' means


def settle(r: pd.Series, col: str, table: StudyTable) -> str:
    """What would resolve an open comparison: the plan's next runs, more seeds, or a larger test set."""
    owed = [s for row, s in table.owed if row in (r["row"], r["baseline"])]
    if table.plan is not None and owed:
        return f"the adaptive plan owes {_runs(len(owed))} for its next look (relaunch the sweep)"
    need = r.get(Part.SEEDS_NEEDED.of(col), math.nan)
    if need is None or math.isnan(need):
        if math.isnan(r.get(Part.DELTA_LO.of(col), math.nan)):
            return "an interval needs 2 runs a row"
        margin = (table.settings.get("margin") or {}).get(col)
        if margin:
            return f"more seeds narrow the interval; inside ±{margin:g} it reads equivalent"
        return "no margin is stated (table.margin), so only a difference could settle it; state one"
    if math.isinf(need):
        return _images_bound(r, col, table)
    return f"about {int(need)} seeds a row would resolve a Δ this size (80% power, the spread so far)"


def _images_bound(r: pd.Series, col: str, table: StudyTable) -> str:
    """The test set's own limit: its images' share of Δ's interval, and Δ in images."""
    images = table.images
    se = r.get(Part.DELTA_IMAGE_SE.of(col), math.nan)
    if not images or se is None or math.isnan(se):
        return "more seeds alone cannot resolve it: the test set is too small for a Δ this size"

    alpha = 1 - r.get(Part.DELTA_LEVEL.of(col), 0.95)  # the column holds the interval's confidence
    floor = dist.norm_ppf(1 - alpha / 2) * se
    said = f"no number of seeds resolves it: the {images} test images alone leave ±{floor:.2f}"
    return f"{said}; a larger test set can, e.g. {LARGER}"


def effect_line(e: factorial.Effect) -> str:
    """A main effect or interaction in words."""
    lo, hi = e.interval
    what = "main effect" if e.contrast.kind == "main" else "interaction"
    return (
        f"{what} {e.contrast.name}: {e.verdict} — Δ {e.estimate.mean:+.2f} {_interval(lo, hi)} "
        f"{UNIT[e.metric]}, {e.seeds} seeds"
    )


def best_line(b: factorial.Best, labels: dict, what: str = "") -> str:
    def name(rows: Iterable[str]) -> str:
        return ", ".join(str(labels.get(r, r)) for r in rows) or "none"

    return (
        f"best {what}{UNIT[b.metric].replace(' points', '')}: {name([b.best])}; not distinguishable from it: "
        f"{name(b.tied)}; worse than it: {name(b.worse)}"
    )


def lines(table: StudyTable) -> list[str]:
    """The study's answer: each comparison, then main effects and interactions, then the best setting."""
    out = [x for x in (comparison(r, table) for _, r in table.frame.iterrows()) if x]
    out += [effect_line(e) for e in table.effects]
    out += [best_line(b, table.labels, what) for what, b in table.best]
    plan = table.plan
    if plan is not None and table.owed and getattr(plan, "command", None):
        out.append(f"continue the plan (it resumes from its records): {plan.command}")
    return out
