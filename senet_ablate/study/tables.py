"""Run DataFrame + a study's table spec -> the paper-shaped table (Markdown, LaTeX, CSV).

Per row, over its completed runs that trained (seeds) or weight evaluations (task=eval): mean ± sample std, n,
a 95% CI, Δ vs the row's baseline with its 95% CI, p, and a verdict (better / worse / equivalent within
±``table.margin`` / unresolved), by the method of ``inference.py`` (seeds and test images; ``compare.py``
assembles it); runs that did not train are counted and left out. Our params/GFLOPs stand beside the paper's:
Δ = ours rounded to the paper's printed digits minus the paper's figure (0 = the printed cell reproduced).
Serves every table: a preset's (its spec from experiments/) and any sweep's (its spec from grouping.py).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import answer, compare, factorial, unstable
from . import inference as inf
from . import sequential as seq

# measured column -> (header, digits the paper prints, digits we print)
COMPARED = {"params_m": ("Params (M)", 1, 3), "gflops": ("GFLOPs", 2, 4), "mflops": ("MFLOPs", 0, 1)}
# our own extra columns -> (header, scale, digits)
EXTRA = {
    "macs": ("MACs (G)", 1e-9, 4),
    "elementwise_ops": ("SE elementwise (M)", 1e-6, 2),
    "images_per_s": ("train img/s", 1.0, 0),
}
# error columns -> header
ERRORS = {"top1_err": "top-1 err. (%)", "top5_err": "top-5 err. (%)"}
# detection scores (task=detect, Table 7): the paper's AP and AP50 with their CI, Δ and paper cells; the rest
# as mean ± std. Columns empty in every row are left out, so a classification table is unchanged.
SCORES = {"ap": "AP", "ap50": "AP50"}
SCORES_BRIEF = {"ap75": "AP75", "ap_small": "AP_S", "ap_medium": "AP_M", "ap_large": "AP_L"}
MEASURED = {**ERRORS, **SCORES, **SCORES_BRIEF}


def summary(values) -> dict:
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
    return float(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else math.nan


def table_baseline(spec: dict) -> tuple[str | None, str]:
    """(the table's baseline row, why): ``baseline`` of the spec, else the row with SE off, else the first."""
    rows = spec.get("rows") or {}
    if spec.get("baseline") in rows:
        return spec["baseline"], spec.get("baseline_why", "table.baseline")
    off = [k for k, r in rows.items() if "se.stages=[]" in [str(o).replace(" ", "") for o in r.get("set") or []]]
    if off:
        return off[0], "no table.baseline: the row with SE off"
    return (next(iter(rows)), "no table.baseline: the first row") if rows else (None, "")


def study_table(runs: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """One row per table row of ``spec``, in the paper's order."""
    done = runs[runs["status"] == "completed"]
    trained = done[done["task"].isin(["train", "eval", "detect"])]  # trained runs, evaluated weights, detectors
    trained = trained[trained["row"].isin(list(spec["rows"]))]
    st = inf.settings({**_newest_table(runs), **{k: v for k, v in spec.items() if k in inf.DEFAULTS}})
    if spec.get("plan") is not None:  # an adaptive study is read at the levels its looks were planned with
        st = {**st, **spec["plan"].settings(), "plan": spec["plan"]}
    base, why = trained_baseline(trained, spec, st["alpha"])
    bases = {
        k: row.get("baseline", base) if row.get("baseline") in spec["rows"] else base for k, row in spec["rows"].items()
    }
    stats, info = compare.statistics(trained, spec["rows"], bases, st)
    bases = {k: stats[k]["baseline"] for k in bases}
    out, digits = [], paper_digits(spec)
    for key, row in spec["rows"].items():
        mine = runs[runs["row"] == key]
        last = done[done["row"] == key].sort_values("finished_at", na_position="first")
        last = last.iloc[-1] if len(last) else None
        paper = row.get("paper") or {}
        rec = {
            "label": row.get("label", key),
            **stats[key],
            "completed": int((mine["status"] == "completed").sum()),
            "failed": int((mine["status"] == "failed").sum()),
            "running": int(mine["status"].isin(["running", "preempted"]).sum()),
            "interrupted": int((mine["status"] == "interrupted").sum()),
            "unreported_blocks": _unreported(last),
        }
        for col in SCORES_BRIEF:
            s = summary(trained.loc[trained["row"] == key, col].astype(float).tolist() if col in trained else [])
            rec.update({f"{col}_{k}": v for k, v in s.items()})
        for col in MEASURED:
            rec[f"{col}_paper"] = _num(paper.get(col))
        for col, printed in digits.items():
            ours, ref = _num(last[col] if last is not None else None), _num(paper.get(col))
            rec[col], rec[f"{col}_paper"] = ours, ref
            rec[f"{col}_delta"] = round(round(ours, printed) - ref, printed)
        for col, (_, scale, _) in EXTRA.items():
            src = (
                trained.loc[trained["row"] == key, col]
                if col == "images_per_s"
                else pd.Series([last[col] if last is not None else None])
            )
            rec[col] = _num(src.astype(float).mean() if len(src) else None) * scale
        out.append({"row": key, **rec})
    table = pd.DataFrame(out)
    effects, bests = _answers(info, spec, st)
    for col in MEASURED:  # a metric no run has: empty columns, so that every table has the same shape
        for part in ("n", "mean", "std", "ci95", "delta", "delta_lo", "delta_hi", "p"):
            if f"{col}_{part}" not in table:
                table[f"{col}_{part}"] = 0 if part == "n" else math.nan
    table = table[_column_order(table.columns)]
    table.attrs.update(paper_digits=digits, settings=st, baseline=base, baseline_why=why, **info)
    table.attrs["labels"] = {k: r.get("label", k) for k, r in spec["rows"].items()}
    table.attrs.update(effects=effects, best=bests, images=_images(info.get("samples") or {}))
    timed = trained[trained["images_per_s"].notna()]
    table.attrs["speed_setups"] = sorted(timed["speed_setup"].dropna().unique()) if "speed_setup" in timed else []
    return table


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


def _answers(info: dict, spec: dict, st: dict) -> tuple[list, list]:
    """The factorial effects and the best settings of the primary metric (``factorial.answers``)."""
    col = info.get("primary")
    if col is None or not info.get("samples"):
        return [], []
    return factorial.answers(info["samples"], spec, col, st["alpha"], (st.get("margin") or {}).get(col))


def _images(samples: dict) -> int | None:
    """The number of test images the runs were scored on (None without per-image predictions)."""
    for per_metric in samples.values():
        s = per_metric.get("top1_err")
        if s is not None and s.per_image is not None:
            return int(s.per_image.shape[1])
    return None


FIRST = ("row", "label", "baseline", "completed", "failed", "running", "interrupted", "did_not_train")
PARTS = (
    *("n", "mean", "std", "ci95", "seed_df", "image_se", "method", "verdict", "within", "shown", "delta"),
    *("delta_lo", "delta_hi", "delta_level", "delta_ci95", "p", "p_adj", "p_equiv", "paired", "delta_method"),
    *("delta_seed_df", "delta_image_se", "prob_better"),
    *("prob_better_lo", "prob_better_hi", "seeds_needed", "seeds_needed_lo", "seeds_needed_hi", "paper"),
)


def _column_order(columns) -> list[str]:
    """table.csv's columns: the row and its runs, then each metric's cells together, then the rest."""
    first = [c for c in FIRST if c in columns]
    metric = [f"{m}_{p}" for m in MEASURED for p in PARTS if f"{m}_{p}" in columns]
    return first + metric + [c for c in columns if c not in first and c not in metric]


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
    return {col: int(given.get(col, d)) for col, (_, d, _) in COMPARED.items()}


def _unreported(run) -> int:
    """Blocks of a user's module (se.module) that did not report their elementwise ops."""
    n = None if run is None else run.get("unreported_blocks")
    return 0 if n is None or pd.isna(n) else int(n)


def _fmt(v: float, digits: int, signed: bool = False) -> str:
    if v is None or math.isnan(v):
        return "–"
    if signed and round(v, digits) == 0:
        return f"{0:.{digits}f}"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


SHORT = {"top1_err": "top-1", "top5_err": "top-5", "ap": "AP", "ap50": "AP50"}


def _p(p: float) -> str:
    return "–" if p is None or math.isnan(p) else "<0.001" if p < 0.001 else f"{p:.3f}"


def _delta(r, col: str, table: pd.DataFrame) -> str:
    """Δ, with the row it is measured against when that is not the table's baseline."""
    d = r.get(f"{col}_delta", math.nan)
    if d is None or math.isnan(d):
        return "–"
    base = r.get("baseline")
    other = base != table.attrs.get("baseline") and base is not None
    return _fmt(d, 2, True) + (f" vs {table.attrs['labels'].get(base, base)}" if other else "")


def _delta_ci(r, col: str) -> str:
    """The interval the verdict is read from (at 1 - α/m, or an adaptive look's level)."""
    lo, hi = r.get(f"{col}_delta_lo", math.nan), r.get(f"{col}_delta_hi", math.nan)
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return "–"
    return f"[{lo:+.2f}, {hi:+.2f}]"


def _metric_cells(r, col: str, table: pd.DataFrame, extended: bool) -> list[str]:
    ci = r[f"{col}_ci95"]
    out = [
        _mean_std(r, col),
        str(int(r[f"{col}_n"])) if r[f"{col}_n"] else "–",
        "–" if math.isnan(ci) else "[{:.2f}, {:.2f}]".format(*ci_bounds(r[f"{col}_mean"], ci)),
        _delta(r, col, table),
        _delta_ci(r, col),
        _p(r.get(f"{col}_p_adj", math.nan)),
        answer.verdict_text(r, col, table),
    ]
    if extended:
        pb, lo, hi = (r.get(f"{col}_prob_better{x}", math.nan) for x in ("", "_lo", "_hi"))
        ci = "" if math.isnan(lo) else f" [{lo:.2f}, {hi:.2f}]"
        out.append("–" if pb is None or math.isnan(pb) else f"{pb:.2f}{ci}")
    return out + [_fmt(r[f"{col}_paper"], 2)]


def _metric_head(table: pd.DataFrame, col: str, name: str, extended: bool) -> list[str]:
    second = "" if col == table.attrs.get("primary") else " (secondary)"
    head = [name, "n", "95% CI", "Δ", "Δ CI (verdict's)", "p (adj.)", f"{SHORT[col]} verdict{second}"]
    return head + (["P(better) [95% CI]"] if extended else []) + [f"{name} paper"]


def cells(table: pd.DataFrame, extended: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and body as text; columns empty in every row are left out. ``extended`` (the dashboard): also
    P(better) with its CI."""
    head = ["Row"]
    for col, name in {**ERRORS, **SCORES}.items():
        head += _metric_head(table, col, name, extended)
    plan = table.attrs.get("plan") is not None
    head += ["stopped (until=verdict)"] if plan else []
    head += list(SCORES_BRIEF.values())
    for name, _, _ in COMPARED.values():
        head += [name, f"{name} paper", f"Δ {name}"]
    head += [name for name, _, _ in EXTRA.values()] + ["runs"]
    body = []
    for _, r in table.iterrows():
        row = [str(r["label"])]
        for col in {**ERRORS, **SCORES}:
            row += _metric_cells(r, col, table, extended)
        row += [r["stopped"] if isinstance(r.get("stopped"), str) else "–"] if plan else []
        row += [_mean_std(r, col) for col in SCORES_BRIEF]
        for col, (_, printed, our_digits) in COMPARED.items():
            printed = table.attrs.get("paper_digits", {}).get(col, printed)
            row += [
                _fmt(r[col], our_digits),
                _fmt(r[f"{col}_paper"], printed),
                _fmt(r[f"{col}_delta"], printed, signed=True),
            ]
        row += [_fmt(r[col], digits) for col, (_, _, digits) in EXTRA.items()]
        row.append(_runs(r))
        body.append(row)
    keep = [j for j in range(len(head)) if j in (0, len(head) - 1) or any(c[j] != "–" for c in body)]
    # complexity in the paper's unit only: MFLOPs where the paper prints MFLOPs (Table 3), else GFLOPs
    unit = "MFLOPs" if table["mflops_paper"].notna().any() and table["gflops_paper"].isna().all() else "GFLOPs"
    other = {"GFLOPs": "MFLOPs", "MFLOPs": "GFLOPs"}[unit]
    keep = [j for j in keep if not head[j].endswith(other) and not head[j].startswith(other)]
    return [head[j] for j in keep], [[c[j] for j in keep] for c in body]


def brief_cells(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The table that fits a 120-column terminal: the row, the primary metric's mean ± 95% CI half-width, Δ
    with the interval its verdict is read from, the verdict, params, the paper's unit of FLOPs, runs.
    Everything else is in table.csv, the dashboard and ``cells`` (``--wide``)."""
    col = table.attrs.get("primary")
    if col is None or not _measured(table):
        return cells(table)
    unit = "mflops" if table["mflops_paper"].notna().any() and table["gflops_paper"].isna().all() else "gflops"
    head = ["Row", f"{SHORT[col]}{' (%)' if col in ERRORS else ''} ± CI", "Δ [verdict's CI]", "verdict"]
    head += [COMPARED["params_m"][0]]
    head += [COMPARED[unit][0], "runs"]
    body = []
    for _, r in table.iterrows():
        mean, half = r[f"{col}_mean"], r[f"{col}_ci95"]
        shown = _fmt(mean, 2) + ("" if math.isnan(half) else f" ± {half:.2f}")
        d = _delta(r, col, table)
        ci = _delta_ci(r, col)
        delta = d if ci == "–" else (f"{d} {ci}" if " vs " not in d else d.replace(" vs ", f" {ci} vs ", 1))
        body.append(
            [str(r["label"]), shown, delta, answer.verdict_text(r, col, table, brief=True)]
            + [_fmt(r["params_m"], COMPARED["params_m"][2]), _fmt(r[unit], COMPARED[unit][2]), _runs_brief(r)]
        )
    return head, body


def _runs_brief(r) -> str:
    """Completed runs, with what else the row has (did not train, failed, running, interrupted) in short."""
    extra = [f"{int(r.get('did_not_train') or 0)} untrained"] if r.get("did_not_train") else []
    extra += [f"{r[k]} {k}" for k in ("failed", "running", "interrupted") if r[k]]
    return f"{r['completed']}" + (f" ({', '.join(extra)})" if extra else "")


def aligned(head: list[str], body: list[list[str]]) -> list[str]:
    """A Markdown table with its columns padded to one width (the first left-aligned, the rest right), so that
    it reads as a table in a terminal too."""
    widths = [max(len(x) for x in col) for col in zip(head, *body)]

    def line(cells_: list[str]) -> str:
        return (
            "| "
            + " | ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(cells_, widths)))
            + " |"
        )

    rule = "|" + "|".join(("-" * (w + 1) + (":" if j else "-")) for j, w in enumerate(widths)) + "|"
    return [line(head), rule] + [line(c) for c in body]


def plain(head: list[str], body: list[list[str]]) -> list[str]:
    """A Markdown table without padding (the wide table, and tables of complexity only)."""
    rule = "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"
    return ["| " + " | ".join(head) + " |", rule] + ["| " + " | ".join(c) + " |" for c in body]


def effects_table(table: pd.DataFrame) -> list[str]:
    """The factorial sweep's main effects and interactions as a Markdown table (none: [])."""
    found = table.attrs.get("effects") or []
    if not found:
        return []
    st = table.attrs.get("settings", inf.DEFAULTS)
    col = found[0].metric
    head = [f"Main effect / interaction ({SHORT[col]})", "Δ [verdict's CI]", "p (adj.)", "verdict", "seeds"]
    body = []
    for e in found:
        lo, hi = e.interval
        ci = "" if math.isnan(lo) else f" [{lo:+.2f}, {hi:+.2f}]"
        p = _p(factorial.p_adjusted(e, st["alpha"]))
        body.append([e.contrast.name, f"{e.estimate.mean:+.2f}{ci}", p, e.verdict, str(e.seeds)])
    return aligned(head, body)


def _runs(r) -> str:
    bad = int(r.get("did_not_train") or 0)
    done = f"{r['completed']} done" + (f" ({bad} did not train)" if bad else "")
    runs = [done] + [f"{r[k]} {k}" for k in ("failed", "running", "interrupted") if r[k]]
    return ", ".join(runs) if r["completed"] or r["failed"] or r["running"] or r["interrupted"] else "not run"


def _mean_std(r, col: str) -> str:
    mean, std = _fmt(r[f"{col}_mean"], 2), _fmt(r[f"{col}_std"], 2)
    return mean if std == "–" else f"{mean} ± {std}"


def ci_bounds(mean: float, half: float) -> tuple[float, float]:
    """A 95% CI of an error rate (%), clipped to [0, 100]: the t interval of a few seeds can
    reach past the bounds, the rate cannot."""
    return max(0.0, mean - half), min(100.0, mean + half)


GFLOPS = (
    "GFLOPs = (conv + linear multiply-adds + SE pooling/rescale elementwise ops) / 1e9, the paper's convention, "
    "at the run's input size"
)
VS_PAPER = "; Δ = ours rounded to the paper's printed digits minus the paper."


def _measured(table: pd.DataFrame) -> bool:
    return any((table[f"{c}_n"].fillna(0) > 0).any() for c in {**ERRORS, **SCORES})


def method(table: pd.DataFrame) -> str:
    """How the table's CIs and p-values were computed, in a phrase."""
    joint = any((table.get(f"{c}_method") == "seeds+images").any() for c in ERRORS if f"{c}_method" in table)
    if joint:
        return (
            "from the seeds and the test images together (a seeds × images variance; Student t on "
            "Welch–Satterthwaite df, conservative for few seeds; docs/reports.md)"
        )
    return "from the seeds only (Student t; Δ: Welch's or, for the same seeds, the paired t-test)"


def footnote(table: pd.DataFrame, brief: bool = False) -> str:
    """What the columns mean; the sentence on Δ vs the paper only under a table with paper cells. ``brief``: of
    the brief table, whose ± is the 95% CI's half-width (the wide one's is the sample std)."""
    paper = [c for c in table.columns if c.endswith("_paper")]
    tail = GFLOPS + (VS_PAPER if table[paper].notna().any().any() else ".")
    if not _measured(table):
        return tail
    st = table.attrs.get("settings", inf.DEFAULTS)
    spread = "± the 95% CI's half-width" if brief else "± sample std"
    head = (
        f"Errors (and AP): mean {spread} over the completed runs that trained, n such runs; 95% CIs "
        f"{method(table)}, the seed spread pooled across the study's rows (empirical Bayes). "
    )
    if table.attrs.get("plan") is not None:
        return head + _sequential_footnote(table, st) + " " + tail
    m = table.attrs.get("family", 1)
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
        f"{SHORT.get(table.attrs.get('primary'), 'top-1')}; the others are secondary, each its own family. "
        "P(better) (table.csv, dashboard): the share of run pairs the row wins, its 95% CI from "
        f"{st['resamples']} seeded bootstrap resamples of seeds and images. " + tail
    )


def _sequential_footnote(table: pd.DataFrame, st: dict) -> str:
    plan = table.attrs["plan"]
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


SPENDING_NAMES = {"obf": "O'Brien–Fleming-type", "pocock": "Pocock-type"}


def _sequential_notes(table: pd.DataFrame) -> list[str]:
    """Each planned row's looks and levels, and what the plan still owes."""
    plan = table.attrs.get("plan")
    if plan is None:
        return []
    labels = table.attrs.get("labels", {})
    out = []
    for row, d in (table.attrs.get("decisions") or {}).items():
        if not d.times:
            continue
        levels = seq.nominal_levels(d.times, d.alpha, plan.spending)
        said = "; ".join(f"{n}: {lv:.2g}" for n, lv in zip(plan.looks(), levels))
        out.append(f"{labels.get(row, row)}: α share {d.alpha:.3g}; two-sided level per look (seeds: level): {said}.")
    owed = table.attrs.get("owed") or []
    if owed:
        runs = ", ".join(f"{labels.get(r, r)} seed {s}" for r, s in owed)
        out.append(f"The plan owes {len(owed)} runs before the next look: {runs} (relaunch the sweep to continue).")
    return out


def _margin_note(table: pd.DataFrame) -> list[str]:
    """The equivalence margins, stated: per metric, or that there is none."""
    if not _measured(table):
        return []
    margin = table.attrs.get("settings", inf.DEFAULTS).get("margin") or {}
    cols = [c for c in table.attrs.get("cols", []) if c in SHORT]
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


def _unstable_notes(table: pd.DataFrame) -> list[str]:
    """Outliers, skew, and failure rates compared with the baseline (``unstable.py``)."""
    u = table.attrs.get("unstable")
    if u is None:
        return []
    labels = table.attrs.get("labels", {})
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
        base = table.set_index("row")["baseline"].get(row)
        out.append(
            f"Unstable runs (did not train or outliers): {labels.get(row, row)} {u.bad(row)} of {u.runs[row]}, "
            f"{labels.get(base, base)} {u.bad(base)} of {u.runs[base]}; Fisher's exact test of equal rates p = {p:.2g}."
        )
    return out


def notes(table: pd.DataFrame, spec: dict) -> list[str]:
    """The table's notes: what its rows share and which mix configs (any sweep), the baseline, pairing, the
    test sample, runs that did not train, CIs clipped, rows with n < 3, and the seeds an open Δ would need."""
    out = list(spec.get("remarks") or [])
    labels = table.attrs.get("labels", {})
    if table.attrs.get("baseline") and len(table) > 1 and _measured(table):
        base = labels.get(table.attrs["baseline"])
        out.append(f"Δ is vs {base} ({table.attrs['baseline_why']}) unless a cell names another row.")
    out += _margin_note(table) + _pairing_notes(table) + _untrained_notes(table) + _unstable_notes(table)
    if _measured(table):
        out.append("95% CIs are clipped to [0, 100], a rate's bounds; n < 2 gives no CI.")
    n = table[["top1_err_n", "ap_n"]].max(axis=1)
    few = table.loc[(n > 0) & (n < 3), "label"].tolist()
    if few:
        out.append(
            f"n < 3 in {', '.join(map(str, few))}: fewer than 3 runs give a wide CI (or none) and a spread "
            "that is a guess; run more seeds before reading Δ."
        )
    unreported = table.loc[table["unreported_blocks"] > 0, "label"].tolist() if "unreported_blocks" in table else []
    if unreported:
        out.append(
            f"GFLOPs of {', '.join(map(str, unreported))} leave out the elementwise ops (poolings, rescales) of its "
            "se.module, which has no elementwise_ops(x) method; its multiply-adds are counted."
        )
    return out + _sequential_notes(table) + _seeds_notes(table)


def _pairing_notes(table: pd.DataFrame) -> list[str]:
    col = table.attrs.get("primary")
    if not col or f"{col}_paired" not in table:
        return []
    labels, out = table.attrs["labels"], []
    pairs = table[table[f"{col}_delta"].notna() & table[f"{col}_p"].notna()]
    for flag, what in ((True, "paired by seed (both rows ran the same seeds)"), (False, "unpaired")):
        mine = pairs[pairs[f"{col}_paired"] == flag]
        if len(mine):
            said = "; ".join(f"{r['label']} vs {labels.get(r['baseline'], r['baseline'])}" for _, r in mine.iterrows())
            out.append(f"Comparisons {what}: {said}.")
    seeds_only = table[(table[f"{col}_n"] > 1) & (table.get(f"{col}_method") == "seeds")]["label"].tolist()
    if seeds_only and len(seeds_only) < (table[f"{col}_n"] > 1).sum():
        out.append(
            f"{', '.join(map(str, seeds_only))}: without predictions.npz (older records, or another eval set): "
            "uncertainty from the seeds only, which leaves out the test sample."
        )
    elif seeds_only and col == "ap":
        out.append("AP has no per-image form: its uncertainty is the seeds' only, which leaves out the val sample.")
    elif seeds_only and table.attrs.get("settings", {}).get("test") != "welch":
        out.append(
            "No run has predictions.npz (records older than per-image predictions): the uncertainty leaves out "
            "the test sample, so the CIs describe this test set, not the population."
        )
    return out


def _untrained_notes(table: pd.DataFrame) -> list[str]:
    bad = table.attrs.get("untrained")
    if bad is None or not len(bad):
        return []
    labels = table.attrs["labels"]
    runs = "; ".join(f"{labels.get(r['row'], r['row'])} seed {r['seed']} ({_score(r)})" for _, r in bad.iterrows())
    out = [
        f"Did not train (top-1 error not distinguishable from chance, a majority-class guess of the eval labels, "
        f"by a one-sided binomial test at α; detectors: AP < {inf.AP_UNTRAINED:g}): {runs}. Counted in runs, left "
        "out of means, CIs and verdicts."
    ]
    most = table.loc[table["mostly_untrained"].fillna(False).astype(bool), "label"].tolist()
    if most:
        out.append(f"{', '.join(map(str, most))}: most runs did not train; no verdict for it or against it.")
    return out


def _score(run) -> str:
    """A run's primary score in words: top-1 error, or AP for a detector."""
    if run.get("task") == "detect":
        return f"AP {float(run['ap']):.1f}"
    return f"{float(run['top1_err']):.2f}%"


def _seeds_notes(table: pd.DataFrame) -> list[str]:
    """For the primary metric's unresolved rows: the seeds per row for 80% power at the observed Δ."""
    col = table.attrs.get("primary")
    if not col or f"{col}_seeds_needed" not in table:
        return []
    said = []
    for _, r in table[table[f"{col}_verdict"] == inf.UNRESOLVED].iterrows():
        need, lo, hi = (r.get(f"{col}_seeds_needed{x}", math.nan) for x in ("", "_lo", "_hi"))
        if need is None or math.isnan(need):
            continue
        if math.isinf(need) and r.get(f"{col}_image_se", math.nan) == r.get(f"{col}_image_se", math.nan):
            text = "more seeds alone cannot resolve it (the test images' part stays)" if math.isinf(lo) else "> 1000"
        else:
            text = _count(need)
        if not math.isnan(lo) and not (math.isinf(lo) and math.isinf(hi)):
            text += f" (from {_count(lo)} to {_count(hi)} over the 95% CI of the seed spread)"
        said.append(f"{r['label']} {text}")
    if not said:
        return []
    alpha = table.attrs.get("settings", inf.DEFAULTS)["alpha"]
    return [
        f"{SHORT[col]}: runs per row at which the observed Δ would be found with 80% power (two-sided, at the "
        f"level of the row's verdict interval, α = {alpha:g} shared as the footnote says; a guess from the spread so "
        "far): " + "; ".join(said) + "."
    ]


def _count(v: float) -> str:
    return "> 1000" if math.isinf(v) else f"{int(v)}"


def to_markdown(table: pd.DataFrame, spec: dict, wide: bool = False) -> str:
    """table.md: the title, the answer in words (``answer.lines``), the table (``brief_cells``; ``wide``: every
    column), the factorial effects, then what the columns mean, the notes and the sources."""
    head, body = cells(table) if wide else brief_cells(table)
    said = answer.lines(table)
    lines = [f"**{spec.get('title', '')}**", ""] + ([f"- {x}" for x in said] + [""] if said else [])
    lines += aligned(head, body) if not wide and _measured(table) else plain(head, body)
    effects = effects_table(table)
    lines += ["", *effects] if effects else []
    if not wide and _measured(table):
        lines += ["", WIDER]
    notes_ = [f"- {n}" for n in notes(table, spec)]
    sources = [f"- {n}" for n in spec.get("notes") or []]  # e.g. where each paper cell comes from
    return (
        "\n".join(
            lines
            + ["", footnote(table, brief=not wide and _measured(table))]
            + ([speed_note(table)] if speed_note(table) else [])
            + (["", "Notes:", *notes_] if notes_ else [])
            + (["", "Sources:", *sources] if sources else [])
        )
        + "\n"
    )


WIDER = (
    "Every column (secondary metrics, p, P(better), the paper's cells, MACs, img/s): table.csv, the dashboard, "
    "or `senet-report DIR --wide` (table.wide=true at the end of a sweep)."
)


def speed_note(table: pd.DataFrame) -> str:
    """Where the img/s column was measured; a warning when its runs come from several setups."""
    setups = table.attrs.get("speed_setups") or []
    if len(setups) == 1:
        return f"train img/s measured on: {setups[0]}."
    if len(setups) > 1:
        return f"train img/s mixes {len(setups)} setups, compare speeds within one only: " + "; ".join(setups) + "."
    return ""


# One pass over the characters (a chain of str.replace would escape the braces it has just written).
# LaTeX's ten specials, then what pdflatex's default T1/utf8 setup does not print as typed.
TEX = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "_": r"\_",
    "^": r"\textasciicircum{}",
    "~": r"\textasciitilde{}",
    "<": r"$<$",  # text-mode < and > print as ¡ and ¿ in LaTeX's default font encoding
    ">": r"$>$",
    "†": r"\dag{}",
    "±": r"$\pm$",
    "×": r"$\times$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "≈": r"$\approx$",
    "−": "-",
    "–": "--",
    "—": "---",
    "Δ": r"$\Delta$",
    "α": r"$\alpha$",
    "σ": r"$\sigma$",
    "·": r"$\cdot$",
}


def tex_escape(s: str) -> str:
    """Text as LaTeX prints it: every special character escaped (tests/test_tables_tex.py compiles it)."""
    return "".join(TEX.get(c, c) for c in str(s))


def to_latex(table: pd.DataFrame, spec: dict, wide: bool = False) -> str:
    """A booktabs table (needs \\usepackage{booktabs}): the brief table's columns, or every one (``wide``)."""
    head, body = cells(table) if wide else brief_cells(table)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{tex_escape(spec.get('title', ''))}}}",
        r"\begin{tabular}{l" + "r" * (len(head) - 1) + "}",
        r"\toprule",
        " & ".join(map(tex_escape, head)) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(map(tex_escape, c)) + r" \\" for c in body]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
