"""Run DataFrame + a study's table spec -> the paper-shaped table, as Markdown and CSV.

Our params/GFLOPs stand beside the paper's. Δ = ours rounded to the paper's printed digits,
minus the paper's figure: 0 means we reproduce the printed cell exactly.
"""
from __future__ import annotations

import math

import pandas as pd

# measured column -> (header, digits the paper prints, digits we print)
COMPARED = {"params_m": ("Params (M)", 1, 3), "gflops": ("GFLOPs", 2, 4)}
# our own extra columns -> (header, scale, digits)
EXTRA = {"macs": ("MACs (G)", 1e-9, 4), "elementwise_ops": ("SE elementwise (M)", 1e-6, 2)}
# the paper's error columns, shown for reference -> (header, digits)
PAPER_ONLY = {"top1_err": ("paper top-1 err. (%)", 2), "top5_err": ("paper top-5 err. (%)", 2)}


def _num(v) -> float:
    return float(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else math.nan


def study_table(runs: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """One row per table row of ``spec``, in the paper's order, from the newest completed run."""
    out = []
    for key, row in spec["rows"].items():
        mine = runs[runs["row"] == key]
        done = mine[mine["status"] == "completed"].sort_values("finished_at", na_position="first")
        last = done.iloc[-1] if len(done) else None
        paper = row.get("paper") or {}
        rec = {"row": key, "label": row.get("label", key), "completed": len(done),
               "failed": int((mine["status"] == "failed").sum())}
        for col, (_, paper_digits, _) in COMPARED.items():
            ours, ref = _num(last[col] if last is not None else None), _num(paper.get(col))
            rec[col], rec[f"{col}_paper"] = ours, ref
            rec[f"{col}_delta"] = round(round(ours, paper_digits) - ref, paper_digits)
        for col, (_, scale, _) in EXTRA.items():
            rec[col] = _num(last[col] if last is not None else None) * scale
        for col in PAPER_ONLY:
            rec[f"{col}_paper"] = _num(paper.get(col))
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
    for col, (name, pd_, _) in COMPARED.items():
        head += [name, f"{name} paper", f"Δ {name}"]
    head += [name for name, _, _ in EXTRA.values()] + [name for name, _ in PAPER_ONLY.values()] + ["runs"]
    lines = [f"**{spec.get('title', '')}**", "", "| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for _, r in table.iterrows():
        cells = [str(r["label"])]
        for col, (_, paper_digits, our_digits) in COMPARED.items():
            cells += [_fmt(r[col], our_digits), _fmt(r[f"{col}_paper"], paper_digits),
                      _fmt(r[f"{col}_delta"], paper_digits, signed=True)]
        cells += [_fmt(r[col], digits) for col, (_, _, digits) in EXTRA.items()]
        cells += [_fmt(r[f"{col}_paper"], digits) for col, (_, digits) in PAPER_ONLY.items()]
        runs = str(r["completed"]) + (f" ({r['failed']} failed)" if r["failed"] else "")
        cells.append(runs if r["completed"] or r["failed"] else "not run")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "GFLOPs = (conv + linear multiply-adds + SE pooling/rescale elementwise ops) / 1e9, "
                  "the paper's convention. Δ = ours rounded to the paper's printed digits minus the paper."]
    return "\n".join(lines) + "\n"
