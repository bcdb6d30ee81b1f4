"""A ``StudyTable``'s rows as text cells: every column (``cells``: the wide table, the dashboard), the table
that fits a 120-column terminal (``brief_cells``), and a factorial sweep's effects (``effects_cells``). A cell
without a value is "–"; columns with none in any row are left out."""

from __future__ import annotations

import math

import pandas as pd

from . import answer, factorial
from .columns import COMPARED, ERRORS, EXTRA, SCORES_BRIEF, SHORT, WITH_VERDICT, Part
from .tables import StudyTable

MISSING = "–"
Cells = tuple[list[str], list[list[str]]]  # (header, body)


def fmt(v: float | None, digits: int, signed: bool = False) -> str:
    """A number with ``digits`` decimals (``signed``: with its sign, and a Δ that rounds to 0 as 0)."""
    if v is None or math.isnan(v):
        return MISSING
    if signed and round(v, digits) == 0:
        return f"{0:.{digits}f}"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def p_text(p: float | None) -> str:
    """A p-value as the tables print it."""
    return MISSING if p is None or math.isnan(p) else "<0.001" if p < 0.001 else f"{p:.3f}"


def ci_bounds(mean: float, half: float) -> tuple[float, float]:
    """A 95% CI of an error rate (%), clipped to [0, 100]: the t interval of a few seeds can
    reach past the bounds, the rate cannot."""
    return max(0.0, mean - half), min(100.0, mean + half)


def _delta(r: pd.Series, col: str, table: StudyTable) -> str:
    """Δ, with the row it is measured against when that is not the table's baseline."""
    d = r.get(Part.DELTA.of(col), math.nan)
    if d is None or math.isnan(d):
        return MISSING
    base = r.get("baseline")
    other = base != table.baseline and base is not None
    return fmt(d, 2, True) + (f" vs {table.labels.get(base, base)}" if other else "")


def _delta_ci(r: pd.Series, col: str) -> str:
    """The interval the verdict is read from (at 1 - α/m, or an adaptive look's level)."""
    lo, hi = r.get(Part.DELTA_LO.of(col), math.nan), r.get(Part.DELTA_HI.of(col), math.nan)
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return MISSING
    return f"[{lo:+.2f}, {hi:+.2f}]"


def _mean_std(r: pd.Series, col: str) -> str:
    mean, std = fmt(r[Part.MEAN.of(col)], 2), fmt(r[Part.STD.of(col)], 2)
    return mean if std == MISSING else f"{mean} ± {std}"


def _metric_cells(r: pd.Series, col: str, table: StudyTable, extended: bool) -> list[str]:
    ci = r[Part.CI95.of(col)]
    n = r[Part.N.of(col)]
    out = [
        _mean_std(r, col),
        str(int(n)) if n else MISSING,
        MISSING if math.isnan(ci) else "[{:.2f}, {:.2f}]".format(*ci_bounds(r[Part.MEAN.of(col)], ci)),
        _delta(r, col, table),
        _delta_ci(r, col),
        p_text(r.get(Part.P_ADJ.of(col), math.nan)),
        answer.verdict_text(r, col, table),
    ]
    if extended:
        parts = (Part.PROB_BETTER, Part.PROB_BETTER_LO, Part.PROB_BETTER_HI)
        pb, lo, hi = (r.get(p.of(col), math.nan) for p in parts)
        ci = "" if math.isnan(lo) else f" [{lo:.2f}, {hi:.2f}]"
        out.append(MISSING if pb is None or math.isnan(pb) else f"{pb:.2f}{ci}")
    return out + [fmt(r[Part.PAPER.of(col)], 2)]


def _metric_head(table: StudyTable, col: str, name: str, extended: bool) -> list[str]:
    second = "" if col == table.primary else " (secondary)"
    head = [name, "n", "95% CI", "Δ", "Δ CI (verdict's)", "p (adj.)", f"{SHORT[col]} verdict{second}"]
    return head + (["P(better) [95% CI]"] if extended else []) + [f"{name} paper"]


def _flops_unit(frame: pd.DataFrame) -> str:
    """Complexity in the paper's unit only: mflops where the paper prints MFLOPs (Table 3), else gflops."""
    mflops = frame[Part.PAPER.of("mflops")].notna().any() and frame[Part.PAPER.of("gflops")].isna().all()
    return "mflops" if mflops else "gflops"


def _wide_row(r: pd.Series, table: StudyTable, extended: bool) -> list[str]:
    row = [str(r["label"])]
    for col in WITH_VERDICT:
        row += _metric_cells(r, col, table, extended)
    row += [r["stopped"] if isinstance(r.get("stopped"), str) else MISSING] if table.plan is not None else []
    row += [_mean_std(r, col) for col in SCORES_BRIEF]
    for col, c in COMPARED.items():
        printed = table.paper_digits.get(col, c.paper_digits)
        row += [fmt(r[col], c.digits), fmt(r[Part.PAPER.of(col)], printed), fmt(r[Part.DELTA.of(col)], printed, True)]
    return row + [fmt(r[col], e.digits) for col, e in EXTRA.items()] + [_runs(r)]


def cells(table: StudyTable, extended: bool = False) -> Cells:
    """Header and body as text; columns empty in every row are left out. ``extended`` (the dashboard): also
    P(better) with its CI."""
    head = ["Row"]
    for col, name in WITH_VERDICT.items():
        head += _metric_head(table, col, name, extended)
    head += ["stopped (until=verdict)"] if table.plan is not None else []
    head += list(SCORES_BRIEF.values())
    for c in COMPARED.values():
        head += [c.header, f"{c.header} paper", f"Δ {c.header}"]
    head += [e.header for e in EXTRA.values()] + ["runs"]
    body = [_wide_row(r, table, extended) for _, r in table.frame.iterrows()]
    keep = [j for j in range(len(head)) if j in (0, len(head) - 1) or any(c[j] != MISSING for c in body)]
    other = COMPARED["gflops" if _flops_unit(table.frame) == "mflops" else "mflops"].header
    keep = [j for j in keep if not head[j].endswith(other) and not head[j].startswith(other)]
    return [head[j] for j in keep], [[c[j] for j in keep] for c in body]


def brief_cells(table: StudyTable) -> Cells:
    """The table that fits a 120-column terminal: the row, the primary metric's mean ± 95% CI half-width, Δ
    with the interval its verdict is read from, the verdict, params, the paper's unit of FLOPs, runs.
    Everything else is in table.csv, the dashboard and ``cells`` (``--wide``)."""
    col = table.primary
    if col is None or not table.measured:
        return cells(table)
    unit = _flops_unit(table.frame)
    head = ["Row", f"{SHORT[col]}{' (%)' if col in ERRORS else ''} ± CI", "Δ [verdict's CI]", "verdict"]
    head += [COMPARED["params_m"].header, COMPARED[unit].header, "runs"]
    body = []
    for _, r in table.frame.iterrows():
        mean, half = r[Part.MEAN.of(col)], r[Part.CI95.of(col)]
        shown = fmt(mean, 2) + ("" if math.isnan(half) else f" ± {half:.2f}")
        d = _delta(r, col, table)
        ci = _delta_ci(r, col)
        delta = d if ci == MISSING else (f"{d} {ci}" if " vs " not in d else d.replace(" vs ", f" {ci} vs ", 1))
        body.append(
            [str(r["label"]), shown, delta, answer.verdict_text(r, col, table, brief=True)]
            + [fmt(r["params_m"], COMPARED["params_m"].digits), fmt(r[unit], COMPARED[unit].digits), _runs_brief(r)]
        )
    return head, body


def effects_cells(table: StudyTable) -> Cells | None:
    """A factorial sweep's main effects and interactions (None: the table has none)."""
    if not table.effects:
        return None
    col = table.effects[0].metric
    head = [f"Main effect / interaction ({SHORT[col]})", "Δ [verdict's CI]", "p (adj.)", "verdict", "seeds"]
    body = []
    for e in table.effects:
        lo, hi = e.interval
        ci = "" if math.isnan(lo) else f" [{lo:+.2f}, {hi:+.2f}]"
        p = p_text(factorial.p_adjusted(e, table.settings["alpha"]))
        body.append([e.contrast.name, f"{e.estimate.mean:+.2f}{ci}", p, e.verdict, str(e.seeds)])
    return head, body


def _runs_brief(r: pd.Series) -> str:
    """Completed runs, with what else the row has (did not train, failed, running, interrupted) in short."""
    extra = [f"{int(r.get('did_not_train') or 0)} untrained"] if r.get("did_not_train") else []
    extra += [f"{r[k]} {k}" for k in ("failed", "running", "interrupted") if r[k]]
    return f"{r['completed']}" + (f" ({', '.join(extra)})" if extra else "")


def _runs(r: pd.Series) -> str:
    bad = int(r.get("did_not_train") or 0)
    done = f"{r['completed']} done" + (f" ({bad} did not train)" if bad else "")
    runs = [done] + [f"{r[k]} {k}" for k in ("failed", "running", "interrupted") if r[k]]
    return ", ".join(runs) if r["completed"] or r["failed"] or r["running"] or r["interrupted"] else "not run"
