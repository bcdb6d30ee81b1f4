"""A study's trained runs -> the statistics columns of its table (issue 29), by ``inference.py``'s method.

Per row and metric: the mean over the runs that trained, its 95% CI (seeds and test images), Δ vs the row's
baseline with its 95% CI, p of Δ = 0 (raw and Holm-adjusted), the equivalence test at ``table.margin``, the
verdict, P(better) with its bootstrap CI, and the seeds per row that Δ would need (with the range the
observed spread allows). Runs whose error cannot be told from chance are set apart first (``did not train``).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd

from ..records import predictions
from . import inference as inf
from . import sequential as seq

# metrics with CIs and verdicts -> (k of the per-image indicator in predictions.npz, higher is better)
WITH_CI = {"top1_err": (1, False), "top5_err": (5, False), "ap": (None, True), "ap50": (None, True)}


def _classes(run) -> int | None:
    flat = run.get("_flat") if isinstance(run.get("_flat"), dict) else {}
    for v in (run.get("num_classes"), *(flat.get(k) for k in ("data.num_classes", "model.num_classes"))):
        try:
            if v is not None and not pd.isna(v) and int(float(v)) > 1:
                return int(float(v))
        except (TypeError, ValueError):
            continue
    return None


def set_apart(trained: pd.DataFrame, alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs that trained, runs that did not): a classification run did not train when a one-sided binomial
    test cannot tell its top-1 error on its N eval images from chance, 1 - 1/K."""
    preds = [
        predictions.read(d) if t in ("train", "eval") else None for d, t in zip(trained["run_dir"], trained["task"])
    ]
    trained = trained.assign(_preds=preds)
    chance = []
    for (_, run), p in zip(trained.iterrows(), preds):
        n_img = len(p.label) if p is not None else run.get("eval_images")
        err, k = run.get("top1_err"), _classes(run)
        ok = run["task"] in ("train", "eval") and err is not None and not pd.isna(err) and n_img and not pd.isna(n_img)
        chance.append(bool(ok) and inf.did_not_train(round(float(err) * float(n_img) / 100), int(n_img), k, alpha))
    mask = np.array(chance, dtype=bool)
    return trained[~mask], trained[mask]


def _reference(kept: pd.DataFrame):
    """The eval set most runs scored (order, labels, N): runs on another set count without their images."""
    keys = Counter(p.key for p in kept["_preds"] if p is not None)
    return keys.most_common(1)[0][0] if keys else None


def samples(kept: pd.DataFrame, rows, cols, joint: bool) -> dict[str, dict[str, inf.Sample]]:
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


def row_columns(s: inf.Sample, col: str) -> dict:
    est = inf.row_estimate(s)
    return {
        f"{col}_n": s.n,
        f"{col}_mean": est.mean,
        f"{col}_std": float(np.std(s.values, ddof=1)) if s.n > 1 else math.nan,
        f"{col}_ci95": est.half_width(0.95),
        f"{col}_image_se": math.sqrt(est.image_var) if s.per_image is not None and s.n > 1 else math.nan,
        f"{col}_method": "seeds+images" if s.per_image is not None else "seeds",
    }


def delta_columns(a: inf.Sample, b: inf.Sample, col: str, st: dict, looked: bool = False) -> dict:
    """Δ of a row vs its baseline in ``col``, before the correction across rows (``looked``: as an adaptive
    study's look computes it)."""
    higher = WITH_CI[col][1]
    est = seq.looked(a, b) if looked else inf.compare(a, b)
    need = inf.seeds_needed_range(est.mean, est, st["alpha"])
    lo, hi = inf.prob_improvement_ci(a, b, higher, st["resamples"], seed=0)
    return {
        f"{col}_delta": est.mean,
        f"{col}_delta_ci95": est.half_width(0.95),
        f"{col}_delta_ci90": est.half_width(0.90),
        f"{col}_delta_seed_df": est.seed_df,
        f"{col}_paired": inf.paired(a, b),
        f"{col}_delta_method": "seeds+images" if a.per_image is not None and b.per_image is not None else "seeds",
        f"{col}_p": est.p_value(),
        f"{col}_p_equiv": est.p_equivalent(st["margin"]),
        f"{col}_prob_better": inf.prob_improvement(a.values, b.values, higher),
        f"{col}_prob_better_lo": lo,
        f"{col}_prob_better_hi": hi,
        f"{col}_seeds_needed": need[0],
        f"{col}_seeds_needed_lo": min(need[1:]) if not math.isnan(need[1]) else math.nan,
        f"{col}_seeds_needed_hi": max(need[1:]) if not math.isnan(need[1]) else math.nan,
    }


def verdicts(recs: list[dict], col: str, st: dict) -> None:
    """Adjust the p-values of ``col`` (Holm per baseline) and write each row's verdict into ``recs``."""
    families: dict = {}
    for r in recs:
        if r["row"] != r["baseline"] and r["baseline"] is not None:
            families.setdefault(r["baseline"], []).append(r)
    for fam in families.values():
        for p in ("p", "p_equiv"):
            raw = [r.get(f"{col}_{p}", math.nan) for r in fam]
            adj = inf.holm(raw) if st["correction"] == "holm" else np.asarray(raw, float)
            for r, v in zip(fam, adj):
                r[f"{col}_{p}_adj"] = float(v)
    by_row = {r["row"]: r for r in recs}
    for r in recs:
        base = by_row.get(r["baseline"])
        if r["row"] == r["baseline"]:
            v = inf.BASELINE if r.get(f"{col}_n") else "–"
        elif r.get("mostly_untrained") or (base is not None and base.get("mostly_untrained")):
            v = inf.DID_NOT_TRAIN if r.get("mostly_untrained") else "no verdict"
        elif base is None or math.isnan(r.get(f"{col}_delta", math.nan)):
            v = "–"
        else:
            p, q = r.get(f"{col}_p_adj", math.nan), r.get(f"{col}_p_equiv_adj", math.nan)
            v = inf.verdict(r[f"{col}_delta"], p, q, st["alpha"], WITH_CI[col][1])
        r[f"{col}_verdict"] = v


def statistics(trained: pd.DataFrame, rows: dict, bases: dict, st: dict) -> tuple[dict, dict]:
    """({row: its statistics columns}, what the notes say: runs set apart, pairing, method). ``bases``:
    {row: its baseline row or None}. With an adaptive plan (``st["plan"]``) each Δ and verdict is the one of
    the look at which its row stopped (``sequential.py``)."""
    kept, untrained = set_apart(trained, st["alpha"])
    cols = [c for c in WITH_CI if c in trained and pd.to_numeric(trained[c], errors="coerce").notna().any()]
    data = samples(kept, rows, cols, st["test"] == "joint")
    first = ("top1_err" if "top1_err" in cols else "ap") if cols else None  # the family's metric: AP for detection
    decisions = _replay(trained, data, rows, bases, st, first)
    recs = []
    for key in rows:
        n_all = int((trained["row"] == key).sum())
        n_bad = int((untrained["row"] == key).sum())
        rec = {"row": key, "baseline": bases[key], "did_not_train": n_bad, "mostly_untrained": n_bad > n_all / 2}
        seeds = decisions[key].seeds if key in decisions and decisions[key].n >= 2 else None
        for col in cols:
            rec.update(row_columns(data[key][col], col))
            base = bases[key]
            if base is not None and key != base and base in data:
                a, b = data[key][col], data[base][col]
                if seeds is not None:
                    a, b = seq.subset(a, seeds), seq.subset(b, seeds)
                rec.update(delta_columns(a, b, col, st, looked=key in decisions))
        recs.append(rec)
    for col in cols:
        verdicts(recs, col, st)
        if decisions:
            sequential_verdicts(recs, col, decisions)
    info = {"untrained": untrained, "primary": first, "cols": cols}
    if st.get("plan") is not None:
        info.update(plan=st["plan"], decisions=decisions, owed=seq.owed(decisions))
    return {r["row"]: r for r in recs}, info


def _replay(trained, data, rows, bases, st, first) -> dict:
    """{row: sequential.Decision} under an adaptive plan, else {}."""
    if st.get("plan") is None or first is None:
        return {}
    done = {k: {int(s) for s in trained.loc[trained["row"] == k, "seed"].dropna()} for k in rows}
    return seq.replay({k: data[k][first] for k in rows}, bases, done, st["plan"], st, WITH_CI[first][1])


def sequential_verdicts(recs: list[dict], col: str, decisions: dict) -> None:
    """Each compared row's verdict in ``col`` at the nominal levels of the look where it stopped (still open
    before its first look: unresolved); a row that did not train stops there."""
    higher = WITH_CI[col][1]
    for r in recs:
        d = decisions.get(r["row"])
        if d is None:
            continue
        if r.get(f"{col}_verdict") in (inf.DID_NOT_TRAIN, "no verdict"):
            d.reason, d.owed = "did not train", []
            continue
        p, q = r.get(f"{col}_p", math.nan), r.get(f"{col}_p_equiv", math.nan)
        r[f"{col}_p_adj"], r[f"{col}_p_equiv_adj"], r[f"{col}_level"] = p, q, d.level
        if d.n == 0 or math.isnan(d.level):
            r[f"{col}_verdict"] = inf.UNRESOLVED
        else:
            r[f"{col}_verdict"] = inf.verdict(r[f"{col}_delta"], p, q, d.level, higher, d.level_equiv)
        r["seeds_used"], r["stopped"] = d.n, seq.stop_text(d)
