"""What a ``StudyTable``'s text says beside its rows: the footnote (what the columns mean, how the intervals were
computed, the budget α), and the notes (baseline, margins, pairing, runs that did not train, unstable runs, rows
with few runs, an adaptive plan's looks and what it owes, the seeds an open Δ would need)."""

from __future__ import annotations

import math

import pandas as pd

from . import inference as inf
from . import sequential as seq
from . import unstable
from .columns import ERRORS, SHORT, Part
from .tables import StudyTable

GFLOPS = (
    "GFLOPs = (conv + linear multiply-adds + SE pooling/rescale elementwise ops) / 1e9, the paper's convention, "
    "at the run's input size"
)
VS_PAPER = "; Δ = ours rounded to the paper's printed digits minus the paper."
SPENDING_NAMES = {"obf": "O'Brien–Fleming-type", "pocock": "Pocock-type"}


def method(table: StudyTable) -> str:
    """How the table's CIs and p-values were computed, in a phrase."""
    frame = table.frame
    joint = any((frame[Part.METHOD.of(c)] == "seeds+images").any() for c in ERRORS if Part.METHOD.of(c) in frame)
    if joint:
        return (
            "from the seeds and the test images together (a seeds × images variance; Student t on "
            "Welch–Satterthwaite df, conservative for few seeds; docs/reports.md)"
        )
    return "from the seeds only (Student t; Δ: Welch's or, for the same seeds, the paired t-test)"


def footnote(table: StudyTable, brief: bool = False) -> str:
    """What the columns mean; the sentence on Δ vs the paper only under a table with paper cells. ``brief``: of
    the brief table, whose ± is the 95% CI's half-width (the wide one's is the sample std)."""
    paper = [c for c in table.frame.columns if c.endswith(f"_{Part.PAPER.value}")]
    tail = GFLOPS + (VS_PAPER if table.frame[paper].notna().any().any() else ".")
    if not table.measured:
        return tail
    st = table.settings
    spread = "± the 95% CI's half-width" if brief else "± sample std"
    head = (
        f"Errors (and AP): mean {spread} over the completed runs that trained, n such runs; 95% CIs "
        f"{method(table)}, the seed spread pooled across the study's rows (empirical Bayes). "
    )
    if table.plan is not None:
        return head + _sequential_footnote(table, st) + " " + tail
    m = table.family
    level = 100 * (1 - st["alpha"] / m)
    budget = (
        f"one budget α = {st['alpha']:g} over every claim of the metric, Bonferroni across its {m} comparisons"
        if m > 1
        else f"α = {st['alpha']:g}"
    )
    return (
        head + f"Δ: the row minus its baseline; its CI is the one the verdict is read from, at {level:.4g}% "
        f"({budget}): better / worse when it excludes 0, equivalent when it lies inside ±the metric's margin, "
        "else unresolved. p (adj.): of Δ = 0, Bonferroni-adjusted. The primary metric is "
        f"{SHORT.get(table.primary, 'top-1')}; the others are secondary, each its own family. "
        "P(better) (table.csv, dashboard): the share of run pairs the row wins, its 95% CI from "
        f"{st['resamples']} seeded bootstrap resamples of seeds and images. " + tail
    )


def _sequential_footnote(table: StudyTable, st: dict) -> str:
    plan = table.plan
    split = " split equally across the planned comparisons" if st["correction"] == "bonferroni" else ""
    return (
        f"Adaptive study (hydra.sweeper.until=verdict, max_seeds={plan.max_seeds}): after each round every "
        "planned row is looked at on its first n seeds and gets another seed while unresolved; Δ, its CI and "
        "the verdict are those of the look where the row stopped. Each look reads a repeated confidence "
        f"interval at the nominal level of a group-sequential boundary spending α = {st['alpha']:g}{split} over "
        f"the information fraction ({SPENDING_NAMES[plan.spending]} Lan–DeMets function): better / worse when it "
        "excludes 0, equivalent when it lies inside ±the margin, else unresolved. A row's own error uses all "
        "its runs (a baseline may have more seeds than the looks of its rows used)."
    )


def _sequential_notes(table: StudyTable) -> list[str]:
    """Each planned row's looks and levels, and what the plan still owes."""
    plan = table.plan
    if plan is None:
        return []
    labels = table.labels
    out = []
    for row, d in table.decisions.items():
        if not d.times:
            continue
        levels = seq.nominal_levels(d.times, d.alpha, plan.spending)
        said = "; ".join(f"{n}: {lv:.2g}" for n, lv in zip(plan.looks(), levels))
        out.append(f"{labels.get(row, row)}: α share {d.alpha:.3g}; two-sided level per look (seeds: level): {said}.")
    owed = table.owed
    if owed:
        runs = ", ".join(f"{labels.get(r, r)} seed {s}" for r, s in owed)
        out.append(f"The plan owes {len(owed)} runs before the next look: {runs} (relaunch the sweep to continue).")
    return out


def _margin_note(table: StudyTable) -> list[str]:
    """The equivalence margins, stated: per metric, or that there is none."""
    if not table.measured:
        return []
    margin = table.settings.get("margin") or {}
    cols = [c for c in table.cols if c in SHORT]
    given = [f"{SHORT[c]} ±{margin[c]:g}" for c in cols if c in margin]
    missing = [SHORT[c] for c in cols if c not in margin]
    out = []
    if given:
        out.append("Equivalence margins (table.margin): " + ", ".join(given) + " points.")
    if missing:
        out.append(
            f"No equivalence margin for {', '.join(missing)} (table.margin): no `equivalent` verdict; an "
            "unresolved row says instead the smallest margin its interval shows (shown: Δ within ±x)."
        )
    return out


def _unstable_notes(table: StudyTable) -> list[str]:
    """Outliers, skew, and failure rates compared with the baseline (``unstable.py``)."""
    u = table.unstable
    if u is None:
        return []
    labels = table.labels
    out = []
    for row, seeds in u.outliers.items():
        out.append(
            f"{labels.get(row, row)}: seed(s) {', '.join(map(str, seeds))} far outside the row's pooled spread "
            f"(leave-one-out t, p < {unstable.OUTLIER_LEVEL:g}/n): kept in the row; a rare bad run widens the "
            "spread more than a few seeds can show."
        )
    for row, g in u.skewed.items():
        out.append(f"{labels.get(row, row)}: seed outcomes skewed (sample skewness {g:+.1f}); a t interval assumes "
                   "they scatter symmetrically (docs/statistics.md: what few seeds cannot see).")  # fmt: skip
    for row, p in u.fisher.items():
        base = table.frame.set_index("row")["baseline"].get(row)
        out.append(
            f"Unstable runs (did not train or outliers): {labels.get(row, row)} {u.bad(row)} of {u.runs[row]}, "
            f"{labels.get(base, base)} {u.bad(base)} of {u.runs[base]}; Fisher's exact test of equal rates p = {p:.2g}."
        )
    return out


def notes(table: StudyTable, spec: dict) -> list[str]:
    """The table's notes: what its rows share and which mix configs (any sweep), the baseline, pairing, the
    test sample, runs that did not train, CIs clipped, rows with n < 3, and the seeds an open Δ would need."""
    out = list(spec.get("remarks") or [])
    labels = table.labels
    frame = table.frame
    if table.baseline and len(frame) > 1 and table.measured:
        base = labels.get(table.baseline)
        out.append(f"Δ is vs {base} ({table.baseline_why}) unless a cell names another row.")
    out += _margin_note(table) + _pairing_notes(table) + _untrained_notes(table) + _unstable_notes(table)
    if table.measured:
        out.append("95% CIs are clipped to [0, 100], a rate's bounds; n < 2 gives no CI.")
    n = frame[[Part.N.of("top1_err"), Part.N.of("ap")]].max(axis=1)
    few = frame.loc[(n > 0) & (n < 3), "label"].tolist()
    if few:
        out.append(
            f"n < 3 in {', '.join(map(str, few))}: fewer than 3 runs give a wide CI (or none) and a spread "
            "that is a guess; run more seeds before reading Δ."
        )
    unreported = frame.loc[frame["unreported_blocks"] > 0, "label"].tolist() if "unreported_blocks" in frame else []
    if unreported:
        out.append(
            f"GFLOPs of {', '.join(map(str, unreported))} leave out the elementwise ops (poolings, rescales) of its "
            "se.module, which has no elementwise_ops(x) method; its multiply-adds are counted."
        )
    return out + _sequential_notes(table) + _seeds_notes(table)


def _pairing_notes(table: StudyTable) -> list[str]:
    col = table.primary
    frame = table.frame
    if not col or Part.PAIRED.of(col) not in frame:
        return []
    labels, out = table.labels, []
    pairs = frame[frame[Part.DELTA.of(col)].notna() & frame[Part.P.of(col)].notna()]
    for flag, what in ((True, "paired by seed (both rows ran the same seeds)"), (False, "unpaired")):
        mine = pairs[pairs[Part.PAIRED.of(col)] == flag]
        if len(mine):
            said = "; ".join(f"{r['label']} vs {labels.get(r['baseline'], r['baseline'])}" for _, r in mine.iterrows())
            out.append(f"Comparisons {what}: {said}.")
    several = frame[Part.N.of(col)] > 1
    seeds_only = frame[several & (frame.get(Part.METHOD.of(col)) == "seeds")]["label"].tolist()
    if seeds_only and len(seeds_only) < several.sum():
        out.append(
            f"{', '.join(map(str, seeds_only))}: without predictions.npz (older records, or another eval set): "
            "uncertainty from the seeds only, which leaves out the test sample."
        )
    elif seeds_only and col == "ap":
        out.append("AP has no per-image form: its uncertainty is the seeds' only, which leaves out the val sample.")
    elif seeds_only and table.settings.get("test") != "welch":
        out.append(
            "No run has predictions.npz (records older than per-image predictions): the uncertainty leaves out "
            "the test sample, so the CIs describe this test set, not the population."
        )
    return out


def _untrained_notes(table: StudyTable) -> list[str]:
    bad = table.untrained
    if bad is None or not len(bad):
        return []
    labels = table.labels
    runs = "; ".join(f"{labels.get(r['row'], r['row'])} seed {r['seed']} ({_score(r)})" for _, r in bad.iterrows())
    out = [
        f"Did not train (top-1 error not distinguishable from chance, a majority-class guess of the eval labels, "
        f"by a one-sided binomial test at α; detectors: AP < {inf.AP_UNTRAINED:g}): {runs}. Counted in runs, left "
        "out of means, CIs and verdicts."
    ]
    most = table.frame.loc[table.frame["mostly_untrained"].fillna(False).astype(bool), "label"].tolist()
    if most:
        out.append(f"{', '.join(map(str, most))}: most runs did not train; no verdict for it or against it.")
    return out


def _score(run) -> str:
    """A run's primary score in words: top-1 error, or AP for a detector."""
    if run.get("task") == "detect":
        return f"AP {float(run['ap']):.1f}"
    return f"{float(run['top1_err']):.2f}%"


def _seeds_notes(table: StudyTable) -> list[str]:
    """For the primary metric's unresolved rows: the seeds per row for 80% power at the observed Δ."""
    col = table.primary
    frame = table.frame
    if not col or Part.SEEDS_NEEDED.of(col) not in frame:
        return []
    said = []
    for _, r in frame[frame[Part.VERDICT.of(col)] == inf.UNRESOLVED].iterrows():
        parts = (Part.SEEDS_NEEDED, Part.SEEDS_NEEDED_LO, Part.SEEDS_NEEDED_HI)
        need, lo, hi = (r.get(p.of(col), math.nan) for p in parts)
        if need is None or math.isnan(need):
            continue
        if math.isinf(need) and not pd.isna(r.get(Part.IMAGE_SE.of(col), math.nan)):
            text = "more seeds alone cannot resolve it (the test images' part stays)" if math.isinf(lo) else "> 1000"
        else:
            text = _count(need)
        if not math.isnan(lo) and not (math.isinf(lo) and math.isinf(hi)):
            text += f" (from {_count(lo)} to {_count(hi)} over the 95% CI of the seed spread)"
        said.append(f"{r['label']} {text}")
    if not said:
        return []
    alpha = table.settings["alpha"]
    return [
        f"{SHORT[col]}: runs per row at which the observed Δ would be found with 80% power (two-sided, at the "
        f"level of the row's verdict interval, α = {alpha:g} shared as the footnote says; a guess from the spread so "
        "far): " + "; ".join(said) + "."
    ]


def _count(v: float) -> str:
    return "> 1000" if math.isinf(v) else f"{int(v)}"
