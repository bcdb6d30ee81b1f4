"""Run DataFrame + a study's table spec -> the paper-shaped table (Markdown, LaTeX, CSV).

Per row, over its completed training runs (seeds) or weight evaluations (task=eval): mean ± sample std, n, a 95%
confidence interval (Student t, n - 1 degrees of freedom, clipped to an error rate's bounds [0, 100]),
Δ = mean - the baseline row's mean, and Welch's unequal-variance t-test against the baseline
(``*`` p < 0.05, ``**`` p < 0.01), with the seeds per row that Δ would need to be resolved
(``seeds_needed``). A cell with n < 2 shows its value without a CI. Our params/GFLOPs stand
beside the paper's: Δ = ours rounded to the paper's printed digits minus the paper's figure
(0 = the printed cell reproduced). Serves every table: a preset's (its spec from experiments/)
and any sweep's (its spec from grouping.py).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

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
TEST = "Welch's t-test vs the baseline row"


def summary(values) -> dict:
    """n, mean, sample std and the 95% CI half-width of ``values``."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    std = float(v.std(ddof=1)) if n > 1 else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "std": std, "ci95": math.nan}
    from scipy import stats  # imported only when there is something to test (keeps profile sweeps fast)

    ci = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n))
    return {"n": n, "mean": mean, "std": std, "ci95": ci}


def welch_p(a, b) -> float:
    """Two-sided p of Welch's t-test; NaN when either side has fewer than 2 values or no spread."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2 or (a.std() == 0 and b.std() == 0):
        return math.nan
    from scipy import stats

    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def seeds_needed(
    delta: float, s1: float, s2: float, alpha: float = 0.05, power: float = 0.8, most: int = 1000
) -> float:
    """Runs per row (equal in both rows) for a two-sided Welch t-test at ``alpha`` to detect a true
    difference ``delta`` between rows whose sample stds are ``s1`` and ``s2`` with ``power``, by the
    noncentral t (Welch-Satterthwaite degrees of freedom); NaN when it cannot be said, inf above
    ``most``. Cohen's d = 1 (delta 1, stds 1) needs 17, d = 0.5 needs 64."""
    if any(math.isnan(v) for v in (delta, s1, s2)) or delta == 0 or s1 + s2 == 0:
        return math.nan
    from scipy import stats

    var = s1**2 + s2**2
    for n in range(2, most + 1):
        df = (n - 1) * var**2 / (s1**4 + s2**4)
        ncp, crit = abs(delta) / math.sqrt(var / n), stats.t.ppf(1 - alpha / 2, df)
        if stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp) >= power:
            return float(n)
    return math.inf


def marker(p: float) -> str:
    return "" if math.isnan(p) else "**" if p < 0.01 else "*" if p < 0.05 else ""


def _num(v) -> float:
    return float(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else math.nan


def study_table(runs: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """One row per table row of ``spec``, in the paper's order."""
    done = runs[runs["status"] == "completed"]
    trained = done[done["task"].isin(["train", "eval", "detect"])]  # trained runs, evaluated weights, detectors
    values = {
        key: {c: trained.loc[trained["row"] == key, c].astype(float).tolist() for c in MEASURED if c in trained}
        for key in spec["rows"]
    }
    out, digits = [], paper_digits(spec)
    for key, row in spec["rows"].items():
        mine = runs[runs["row"] == key]
        last = done[done["row"] == key].sort_values("finished_at", na_position="first")
        last = last.iloc[-1] if len(last) else None
        paper = row.get("paper") or {}
        base = row.get("baseline", spec.get("baseline"))
        rec = {
            "row": key,
            "label": row.get("label", key),
            "baseline": base,
            "completed": int((mine["status"] == "completed").sum()),
            "failed": int((mine["status"] == "failed").sum()),
            "running": int(mine["status"].isin(["running", "preempted"]).sum()),
            "interrupted": int((mine["status"] == "interrupted").sum()),
            "unreported_blocks": _unreported(last),
        }
        for col in MEASURED:
            s = summary(values[key].get(col, []))
            rec.update({f"{col}_{k}": v for k, v in s.items()})
            ref = values.get(base, {}).get(col, [])
            rec[f"{col}_delta"] = s["mean"] - summary(ref)["mean"] if key != base and ref else math.nan
            rec[f"{col}_p"] = welch_p(values[key].get(col, []), ref) if key != base else math.nan
            rec[f"{col}_seeds_needed"] = (
                seeds_needed(rec[f"{col}_delta"], s["std"], summary(ref)["std"]) if key != base and ref else math.nan
            )
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
        out.append(rec)
    table = pd.DataFrame(out)
    table.attrs["paper_digits"] = digits
    timed = trained[trained["row"].isin(list(spec["rows"])) & trained["images_per_s"].notna()]
    table.attrs["speed_setups"] = sorted(timed["speed_setup"].dropna().unique()) if "speed_setup" in timed else []
    return table


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


def cells(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and body as text; columns empty in every row are left out."""
    head = ["Row"]
    for name in {**ERRORS, **SCORES}.values():
        head += [name, "n", "95% CI", "Δ", f"{name} paper"]
    head += list(SCORES_BRIEF.values())
    for name, _, _ in COMPARED.values():
        head += [name, f"{name} paper", f"Δ {name}"]
    head += [name for name, _, _ in EXTRA.values()] + ["runs"]
    body = []
    for _, r in table.iterrows():
        row = [str(r["label"])]
        for col in {**ERRORS, **SCORES}:
            ci = r[f"{col}_ci95"]
            row += [
                _mean_std(r, col),
                str(r[f"{col}_n"]) if r[f"{col}_n"] else "–",
                "–" if math.isnan(ci) else "[{:.2f}, {:.2f}]".format(*ci_bounds(r[f"{col}_mean"], ci)),
                "–" if math.isnan(r[f"{col}_delta"]) else _fmt(r[f"{col}_delta"], 2, True) + marker(r[f"{col}_p"]),
                _fmt(r[f"{col}_paper"], 2),
            ]
        row += [_mean_std(r, col) for col in SCORES_BRIEF]
        for col, (_, printed, our_digits) in COMPARED.items():
            printed = table.attrs.get("paper_digits", {}).get(col, printed)
            row += [
                _fmt(r[col], our_digits),
                _fmt(r[f"{col}_paper"], printed),
                _fmt(r[f"{col}_delta"], printed, signed=True),
            ]
        row += [_fmt(r[col], digits) for col, (_, _, digits) in EXTRA.items()]
        runs = [f"{r['completed']} done"] + [f"{r[k]} {k}" for k in ("failed", "running", "interrupted") if r[k]]
        row.append(", ".join(runs) if r["completed"] or r["failed"] or r["running"] or r["interrupted"] else "not run")
        body.append(row)
    keep = [j for j in range(len(head)) if j in (0, len(head) - 1) or any(c[j] != "–" for c in body)]
    # complexity in the paper's unit only: MFLOPs where the paper prints MFLOPs (Table 3), else GFLOPs
    unit = "MFLOPs" if table["mflops_paper"].notna().any() and table["gflops_paper"].isna().all() else "GFLOPs"
    other = {"GFLOPs": "MFLOPs", "MFLOPs": "GFLOPs"}[unit]
    keep = [j for j in keep if not head[j].endswith(other) and not head[j].startswith(other)]
    return [head[j] for j in keep], [[c[j] for j in keep] for c in body]


def _mean_std(r, col: str) -> str:
    mean, std = _fmt(r[f"{col}_mean"], 2), _fmt(r[f"{col}_std"], 2)
    return mean if std == "–" else f"{mean} ± {std}"


def ci_bounds(mean: float, half: float) -> tuple[float, float]:
    """A 95% CI of an error rate (%), clipped to [0, 100]: the t interval of a few seeds can
    reach past the bounds, the rate cannot."""
    return max(0.0, mean - half), min(100.0, mean + half)


FOOTNOTE = (
    "Errors: mean ± sample std over completed training runs (seeds), n runs, 95% CI (Student t). "
    f"Δ: vs the baseline row; * p < 0.05, ** p < 0.01 ({TEST}). GFLOPs = (conv + linear multiply-adds "
    "+ SE pooling/rescale elementwise ops) / 1e9, the paper's convention, at the run's input size"
)
VS_PAPER = "; Δ = ours rounded to the paper's printed digits minus the paper."


def footnote(table: pd.DataFrame) -> str:
    """What the columns mean; the sentence on Δ vs the paper only under a table with paper cells."""
    paper = [c for c in table.columns if c.endswith("_paper")]
    return FOOTNOTE + (VS_PAPER if table[paper].notna().any().any() else ".")


def notes(table: pd.DataFrame, spec: dict) -> list[str]:
    """The table's notes: what its rows share and which mix configs (any sweep), CIs clipped, rows
    with n < 3, and the seeds each Δ would need (Welch's test at p < 0.05 with 80% power)."""
    out = list(spec.get("remarks") or [])
    if any((table[f"{col}_n"] >= 2).any() for col in {**ERRORS, **SCORES}):
        out.append("95% CIs are clipped to [0, 100], a rate's bounds; n < 2 gives no CI.")
    n = table[["top1_err_n", "ap_n"]].max(axis=1)
    few = table.loc[(n > 0) & (n < 3), "label"].tolist()
    if few:
        out.append(
            f"n < 3 in {', '.join(map(str, few))}: a CI from 1 degree of freedom is wide and its spread "
            "a guess; run more seeds before reading Δ."
        )
    unreported = table.loc[table["unreported_blocks"] > 0, "label"].tolist() if "unreported_blocks" in table else []
    if unreported:
        out.append(
            f"GFLOPs of {', '.join(map(str, unreported))} leave out the elementwise ops (poolings, rescales) of its "
            "se.module, which has no elementwise_ops(x) method; its multiply-adds are counted."
        )
    for col, name in {**ERRORS, **SCORES}.items():
        need = [
            (r["label"], r[f"{col}_seeds_needed"])
            for _, r in table.iterrows()
            if not math.isnan(r[f"{col}_seeds_needed"])
        ]
        if need:
            said = "; ".join(f"{label} {'> 1000' if math.isinf(v) else int(v)}" for label, v in need)
            out.append(
                f"{name}: seeds per row its Δ would need to be resolved at p < 0.05 with 80% power "
                f"(two-sided Welch t-test, from the observed spreads): {said}."
            )
    return out


def to_markdown(table: pd.DataFrame, spec: dict) -> str:
    head, body = cells(table)
    lines = [
        f"**{spec.get('title', '')}**",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(c) + " |" for c in body]
    said = [f"- {n}" for n in notes(table, spec)]
    sources = [f"- {n}" for n in spec.get("notes") or []]  # e.g. where each paper cell comes from
    return (
        "\n".join(
            lines
            + ["", footnote(table)]
            + ([speed_note(table)] if speed_note(table) else [])
            + (["", "Notes:", *said] if said else [])
            + (["", "Sources:", *sources] if sources else [])
        )
        + "\n"
    )


def speed_note(table: pd.DataFrame) -> str:
    """Where the img/s column was measured; a warning when its runs come from several setups."""
    setups = table.attrs.get("speed_setups") or []
    if len(setups) == 1:
        return f"train img/s measured on: {setups[0]}."
    if len(setups) > 1:
        return f"train img/s mixes {len(setups)} setups, compare speeds within one only: " + "; ".join(setups) + "."
    return ""


def _tex(s: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("±", r"$\pm$"),
        ("Δ", r"$\Delta$"),
        ("×", r"$\times$"),
        ("–", "--"),
    ):
        s = s.replace(a, b)
    return s


def to_latex(table: pd.DataFrame, spec: dict) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    head, body = cells(table)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_tex(spec.get('title', ''))}}}",
        r"\begin{tabular}{l" + "r" * (len(head) - 1) + "}",
        r"\toprule",
        " & ".join(map(_tex, head)) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(map(_tex, c)) + r" \\" for c in body]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
