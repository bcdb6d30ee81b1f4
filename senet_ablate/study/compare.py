"""A study's trained runs -> the statistics columns of its table, by ``inference.py``'s method.

Per row and metric: the mean over the runs that trained with its 95% CI (seeds and test images, the seed spread
moderated across the study's rows: ``pooling.py``), Δ vs the row's baseline with the interval its verdict is read
from (two-sided, at 1 - α/m for the m comparisons of the metric: one budget for every claim of the table), p of
Δ = 0 (raw and Bonferroni-adjusted), the verdict, P(better) with its bootstrap CI, and the seeds per row that Δ
would need. Runs are set apart first: those that did not train (``unstable.py``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from . import inference as inf
from . import sequential as seq
from . import unstable
from .columns import Part
from .pooling import moderated_deltas, moderated_rows

# metrics with CIs and verdicts -> (k of the per-image indicator in predictions.npz, higher is better)
WITH_CI = {"top1_err": (1, False), "top5_err": (5, False), "ap": (None, True), "ap50": (None, True)}


def _reference(kept: pd.DataFrame):
    """The eval set most runs scored (order, labels, N): runs on another set count without their images."""
    from collections import Counter

    keys = Counter(p.key for p in kept["_preds"] if p is not None)
    return keys.most_common(1)[0][0] if keys else None


def samples(
    kept: pd.DataFrame, rows: Iterable[str], cols: Collection[str], joint: bool
) -> dict[str, dict[str, inf.Sample]]:
    """{row: {metric: Sample}}; per-image values only where every run of the row has predictions of the
    reference eval set (and ``joint``)."""
    ref = _reference(kept) if joint else None
    out = {}
    for key in rows:
        mine = kept[kept["row"] == key]
        preds = list(mine["_preds"])
        full = (
            ref is not None
            and len(preds) > 0
            and all(_matches(p, run, ref) for p, (_, run) in zip(preds, mine.iterrows()))
        )
        out[key] = {}
        for col in cols:
            vals = pd.to_numeric(mine[col], errors="coerce") if col in mine else pd.Series([], dtype=float)
            ok = vals.notna().to_numpy()
            k = WITH_CI.get(col, (None,))[0]
            per_image = None
            if full and k is not None and ok.all():
                per_image = 100.0 * np.stack([p.wrong(k) for p in preds]).astype(float)
            seeds = tuple((mine["seed"] if "seed" in mine else pd.Series(range(len(mine)))).to_numpy()[ok])
            out[key][col] = inf.Sample(vals.to_numpy(dtype=float)[ok], seeds, per_image)
    return out


def _matches(p, run, ref) -> bool:
    """Predictions of the reference eval set that give the record's own top-1 error (not a stale file)."""
    return p is not None and p.key == ref and abs(p.error(1) - float(run["top1_err"])) < 1e-6


def row_columns(s: inf.Sample, est: inf.Estimate, col: str) -> dict:
    """A row's own cells in ``col``: n, mean, sample std, the 95% CI's half-width, its df and image part."""
    return {
        Part.N.of(col): s.n,
        Part.MEAN.of(col): est.mean,
        Part.STD.of(col): float(np.std(s.values, ddof=1)) if s.n > 1 else math.nan,
        Part.CI95.of(col): est.half_width(0.95),
        Part.SEED_DF.of(col): est.seed_df,
        Part.IMAGE_SE.of(col): math.sqrt(est.image_var) if s.per_image is not None and s.n > 1 else math.nan,
        Part.METHOD.of(col): "seeds+images" if s.per_image is not None else "seeds",
    }


def delta_columns(a: inf.Sample, b: inf.Sample, est: inf.Estimate, col: str, st: dict, level: float) -> dict:
    """Δ of a row vs its baseline in ``col``: its verdict interval at the two-sided ``level``, the 95% CI
    unadjusted (table.csv), p of Δ = 0 and TOST's p at the metric's margin, P(better) and seeds needed."""
    higher = WITH_CI[col][1]
    margin = st["margin"].get(col)
    lo, hi = est.interval(level)
    need = inf.seeds_needed_range(est.mean, est, level)
    plo, phi = inf.prob_improvement_ci(a, b, higher, st["resamples"], seed=0)
    cells = {
        Part.DELTA: est.mean,
        Part.DELTA_LO: lo,
        Part.DELTA_HI: hi,
        Part.DELTA_LEVEL: 1 - level,
        Part.DELTA_CI95: est.half_width(0.95),
        Part.DELTA_SEED_DF: est.seed_df,
        Part.DELTA_IMAGE_SE: math.sqrt(est.image_var) if est.image_var > 0 else math.nan,
        Part.PAIRED: inf.paired(a, b),
        Part.DELTA_METHOD: "seeds+images" if a.per_image is not None and b.per_image is not None else "seeds",
        Part.P: est.p_value(),
        Part.P_EQUIV: est.p_equivalent(margin) if margin else math.nan,
        Part.VERDICT: inf.verdict(est, level, margin, higher),
        Part.WITHIN: inf.within(est, level, margin),
        Part.SHOWN: inf.shown_bound(est, level),
        Part.PROB_BETTER: inf.prob_improvement(a.values, b.values, higher),
        Part.PROB_BETTER_LO: plo,
        Part.PROB_BETTER_HI: phi,
        Part.SEEDS_NEEDED: need[0],
        Part.SEEDS_NEEDED_LO: min(need[1:]) if not math.isnan(need[1]) else math.nan,
        Part.SEEDS_NEEDED_HI: max(need[1:]) if not math.isnan(need[1]) else math.nan,
    }
    return {part.of(col): v for part, v in cells.items()}


def family_size(pairs: dict, st: dict) -> int:
    """m: the comparisons that share the metric's α, those with runs enough for an interval (2 a row);
    1 without a correction. An adaptive plan's are frozen in its plan instead."""
    m = sum(1 for a, b in pairs.values() if a.n >= 2 and b.n >= 2)
    return max(m, 1) if st["correction"] == "bonferroni" else 1


def metric_columns(data: dict, rows: Collection[str], bases: dict, col: str, st: dict, decisions: dict) -> dict:
    """{row: its columns in ``col``}: rows with moderated spreads, Δs at the family's level (an adaptive
    study's planned rows: at the level and on the seeds of the look where they stopped)."""
    ests = moderated_rows({k: data[k][col] for k in rows})
    out = {k: row_columns(data[k][col], ests[k], col) for k in rows}
    pairs = {}
    for k in rows:
        base = bases[k]
        if base is None or k == base or base not in data:
            continue
        a, b = data[k][col], data[base][col]
        d = decisions.get(k)
        if d is not None and d.n >= 2:
            a, b = seq.subset(a, d.seeds), seq.subset(b, d.seeds)
        pairs[k] = (a, b)
    deltas = moderated_deltas(pairs, {k: bases[k] for k in pairs})
    m = family_size(pairs, st)
    st["family"][col] = m
    for k, (a, b) in pairs.items():
        d = decisions.get(k)
        looked = d is not None and d.estimate is not None and col == st.get("primary")
        level = d.level if looked else st["alpha"] / m
        est = d.estimate if looked else deltas[k]
        out[k].update(delta_columns(a, b, est, col, st, level))
        p = out[k][Part.P.of(col)]
        out[k][Part.P_ADJ.of(col)] = p if math.isnan(p) else min(1.0, p * st["alpha"] / level)
    return out


def _verdict_cell(r: dict, col: str, by_row: dict) -> str | None:
    """The verdict where the row is not an ordinary comparison (baseline, runs that did not train)."""
    base = by_row.get(r["baseline"])
    if r["row"] == r["baseline"]:
        return inf.BASELINE if r.get(Part.N.of(col)) else "–"
    if r.get("mostly_untrained") or (base is not None and base.get("mostly_untrained")):
        return inf.DID_NOT_TRAIN if r.get("mostly_untrained") else "no verdict"
    if base is None or math.isnan(r.get(Part.DELTA.of(col), math.nan)):
        return "–"
    return None


@dataclass(frozen=True, eq=False)
class Analysis:
    """What a study's statistics say beside its rows' cells: the runs set apart, the primary metric (the one
    whose comparisons form the family of ``family`` claims), the metrics with intervals, the samples they were
    read from, the unstable runs, and under an adaptive plan its decisions and the runs it still owes."""

    untrained: pd.DataFrame
    primary: str | None
    cols: tuple[str, ...]
    family: int
    samples: dict[str, dict[str, inf.Sample]]
    unstable: unstable.Unstable
    plan: seq.Plan | None = None
    decisions: dict[str, seq.Decision] = field(default_factory=dict)
    owed: tuple[tuple[str, int], ...] = ()


def statistics(trained: pd.DataFrame, rows: dict, bases: dict, st: dict) -> tuple[dict, Analysis]:
    """({row: its statistics columns}, what the notes say: runs set apart, pairing, method). ``bases``:
    {row: its baseline row or None}. With an adaptive plan (``st["plan"]``) its compared rows and their α are
    the plan's, and each Δ and verdict in the primary metric is the one of the look at which its row stopped."""
    kept, untrained = unstable.set_apart(trained, st["alpha"])
    cols = [c for c in WITH_CI if c in trained and pd.to_numeric(trained[c], errors="coerce").notna().any()]
    data = samples(kept, rows, cols, st["test"] == "joint")
    first = ("top1_err" if "top1_err" in cols else "ap") if cols else None  # the family's metric: AP for detection
    st = {**st, "primary": first, "family": {}}
    plan = st.get("plan")
    if plan is not None:
        plan.freeze(bases)
        bases = {k: plan.compared.get(k, k if k in plan.compared.values() else None) for k in rows}
    decisions = _replay(trained, data, rows, st, first)
    recs = {}
    for key in rows:
        n_all = int((trained["row"] == key).sum())
        n_bad = int((untrained["row"] == key).sum())
        recs[key] = {"row": key, "baseline": bases[key], "did_not_train": n_bad, "mostly_untrained": n_bad > n_all / 2}
    for col in cols:
        for key, c in metric_columns(data, rows, bases, col, st, decisions).items():
            recs[key].update(c)
        for r in recs.values():
            v = _verdict_cell(r, col, recs)
            if v is not None:
                r[Part.VERDICT.of(col)] = v
    _stops(recs, decisions, first)
    found = Analysis(
        untrained, first, tuple(cols), st["family"].get(first, 1), data,
        unstable.report(kept, untrained, data, rows, bases, first),
    )  # fmt: skip
    if plan is None:
        return recs, found
    return recs, replace(found, plan=plan, decisions=decisions, owed=tuple(seq.owed(decisions)))


def _replay(trained, data, rows, st, first) -> dict:
    """{row: sequential.Decision} under an adaptive plan, else {}."""
    plan = st.get("plan")
    if plan is None or first is None:
        return {}
    done = {k: {int(s) for s in trained.loc[trained["row"] == k, "seed"].dropna()} for k in rows}
    return seq.replay({k: data[k][first] for k in rows}, done, plan, WITH_CI[first][1], first)


def _stops(recs: dict, decisions: dict, col: str | None) -> None:
    """Each planned row's stop: a row that did not train stops there, the others say why they stopped."""
    for key, d in decisions.items():
        r = recs.get(key)
        if r is None:
            continue
        if r.get(Part.VERDICT.of(col)) in (inf.DID_NOT_TRAIN, "no verdict"):
            d.reason, d.owed = "did not train", []
        elif d.n == 0:
            r[Part.VERDICT.of(col)] = inf.UNRESOLVED
        r["seeds_used"], r["stopped"] = d.n, seq.stop_text(d)
