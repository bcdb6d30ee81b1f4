"""Run DataFrame + a study's table spec -> the paper-shaped table, as Markdown and CSV.

Error columns: mean ± sample std over the completed training runs (seeds) of a row. Our
params/GFLOPs stand beside the paper's; Δ = ours rounded to the paper's printed digits minus the
paper's figure, so 0 means the printed cell is reproduced exactly.
"""
from __future__ import annotations

import math

import pandas as pd

# measured column -> (header, digits the paper prints, digits we print)
COMPARED = {"params_m": ("Params (M)", 1, 3), "gflops": ("GFLOPs", 2, 4)}
# our own extra columns -> (header, scale, digits)
EXTRA = {"macs": ("MACs (G)", 1e-9, 4), "elementwise_ops": ("SE elementwise (M)", 1e-6, 2)}
# error columns: ours (over seeds) beside the paper's -> header
ERRORS = {"top1_err": "top-1 err. (%)", "top5_err": "top-5 err. (%)"}


def _num(v) -> float:
    return float(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else math.nan


def study_table(runs: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """One row per table row of ``spec``, in the paper's order."""
    out = []
    for key, row in spec["rows"].items():
        mine = runs[runs["row"] == key]
        done = mine[mine["status"] == "completed"].sort_values("finished_at", na_position="first")
        trained = done[done["task"] == "train"]
        last = done.iloc[-1] if len(done) else None
        paper = row.get("paper") or {}
        rec = {"row": key, "label": row.get("label", key), "completed": len(done), "trained": len(trained),
               "failed": int((mine["status"] == "failed").sum())}
        for col in ERRORS:
            vals = trained[col].astype(float)
            rec[col] = vals.mean() if len(vals) else math.nan
            rec[f"{col}_std"] = vals.std(ddof=1) if len(vals) > 1 else math.nan
            rec[f"{col}_paper"] = _num(paper.get(col))
        for col, (_, paper_digits, _) in COMPARED.items():
            ours, ref = _num(last[col] if last is not None else None), _num(paper.get(col))
            rec[col], rec[f"{col}_paper"] = ours, ref
            rec[f"{col}_delta"] = round(round(ours, paper_digits) - ref, paper_digits)
        for col, (_, scale, _) in EXTRA.items():
            rec[col] = _num(last[col] if last is not None else None) * scale
        out.append(rec)
    return pd.DataFrame(out)


def _fmt(v: float, digits: int, signed: bool = False) -> str:
    if math.isnan(v):
        return "–"
    if signed and round(v, digits) == 0:
        return f"{0:.{digits}f}"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def to_markdown(table: pd.DataFrame, spec: dict) -> str:
    head = ["Row"]
    for name in ERRORS.values():
        head += [name, f"{name} paper"]
    for name, _, _ in COMPARED.values():
        head += [name, f"{name} paper", f"Δ {name}"]
    head += [name for name, _, _ in EXTRA.values()] + ["runs"]
    body = []
    for _, r in table.iterrows():
        cells = [str(r["label"])]
        for col in ERRORS:
            mean, std = _fmt(r[col], 2), _fmt(r[f"{col}_std"], 2)
            cells += [mean if std == "–" else f"{mean} ± {std}", _fmt(r[f"{col}_paper"], 2)]
        for col, (_, paper_digits, our_digits) in COMPARED.items():
            cells += [_fmt(r[col], our_digits), _fmt(r[f"{col}_paper"], paper_digits),
                      _fmt(r[f"{col}_delta"], paper_digits, signed=True)]
        cells += [_fmt(r[col], digits) for col, (_, _, digits) in EXTRA.items()]
        runs = f"{r['completed']}" + (f" ({r['trained']} trained)" if r["trained"] else "")
        runs += f", {r['failed']} failed" if r["failed"] else ""
        cells.append(runs if r["completed"] or r["failed"] else "not run")
        body.append(cells)
    # a column with nothing in any row (e.g. no paper figure, nothing trained yet) is left out
    keep = [j for j in range(len(head)) if j in (0, len(head) - 1) or any(c[j] != "–" for c in body)]
    lines = [f"**{spec.get('title', '')}**", "", "| " + " | ".join(head[j] for j in keep) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(keep) - 1)) + "|"]
    lines += ["| " + " | ".join(c[j] for j in keep) + " |" for c in body]
    lines += ["", "Errors: mean ± sample std over the completed training runs (seeds). "
                  "GFLOPs = (conv + linear multiply-adds + SE pooling/rescale elementwise ops) / 1e9, the paper's "
                  "convention, at the run's input size. Δ = ours rounded to the paper's printed digits minus the paper."]
    return "\n".join(lines) + "\n"
