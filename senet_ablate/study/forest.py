"""The figures a study's verdicts are read from (matplotlib, PNG + SVG):

- ``forest_<metric>``: per comparison, Δ with the very interval its verdict uses, the metric's equivalence band,
  coloured by verdict, in table order; a factorial sweep's main effects and interactions below them; rows whose
  runs did not train marked in grey. One figure per metric with comparisons.
- ``interaction_<f>_<g>``: a factorial sweep's cell means, one line per level of the second factor (the
  other factors averaged); parallel lines mean no interaction. Its title carries the interaction's Δ and
  interval, the quantity its verdict uses.
"""

from __future__ import annotations

import itertools
import math
import re
import textwrap
from pathlib import Path

import pandas as pd

from . import factorial
from . import inference as inf
from .columns import NAMES, Part
from .plots import plt, save_figure
from .tables import StudyTable

COLOURS = {inf.BETTER: "tab:green", inf.WORSE: "tab:red", inf.EQUIVALENT: "tab:blue", inf.UNRESOLVED: "0.35"}


def _items(table: StudyTable, col: str) -> list[tuple[str, float, float, float, str]]:
    """(label, Δ, lo, hi, verdict) per comparison in ``col``, then the effects (primary metric only)."""
    labels = table.labels
    out = []
    for _, r in table.frame.iterrows():
        v = r.get(Part.VERDICT.of(col))
        if not isinstance(v, str) or v in (inf.BASELINE, "–"):
            continue
        name = f"{r['label']} vs {labels.get(r['baseline'], r['baseline'])}"
        lo, hi = r.get(Part.DELTA_LO.of(col), math.nan), r.get(Part.DELTA_HI.of(col), math.nan)
        out.append((name, r.get(Part.DELTA.of(col), math.nan), lo, hi, v))
    for e in table.effects if col == table.primary else []:
        lo, hi = e.interval
        kind = "main effect" if e.contrast.kind == "main" else "interaction"
        out.append((f"{kind} {e.contrast.name}", e.estimate.mean, lo, hi, e.verdict))
    return out


def forest(table: StudyTable, spec: dict, out_dir: Path) -> list[Path]:
    """One forest plot per metric with at least one comparison."""
    paths = []
    margins = table.settings.get("margin") or {}
    for col in [c for c in table.cols if c in NAMES]:
        items = _items(table, col)
        if not items:
            continue
        fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(items) + 2.2))
        ys = list(range(len(items)))[::-1]
        m = margins.get(col)
        if m:
            ax.axvspan(-m, m, color="tab:blue", alpha=0.1, label=f"equivalence margin ±{m:g}")
        ax.axvline(0, color="0.5", lw=0.8)
        for y, (_, d, lo, hi, v) in zip(ys, items):
            _mark(ax, y, d, lo, hi, v)
        ax.set_yticks(ys, [textwrap_label(name) for name, *_ in items], fontsize=8)
        unit = "points" if col in ("top1_err", "top5_err") else "AP points"
        better = "lower is better" if col in ("top1_err", "top5_err") else "higher is better"
        ax.set_xlabel(f"Δ {NAMES[col]} ({unit}; {better})\nbars: the interval each verdict is read from", fontsize=8)
        present = {v.split(",")[0].split(" (")[0] for *_, v in items}
        for v, c in COLOURS.items():
            if v in present:
                ax.plot([], [], "o", color=c, label=v)
        ax.set_ylim(-0.7, len(items) - 0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=5, fontsize=7, frameon=False)
        head = textwrap.fill(spec.get("title", ""), 80)
        ax.set_title(f"{head}\n{NAMES[col]}: Δ and the verdict of each comparison", fontsize=8)
        paths += save_figure(fig, out_dir, f"forest_{col}")
    return paths


def _mark(ax, y: float, d: float, lo: float, hi: float, verdict: str) -> None:
    """One comparison: its interval and Δ; a row that did not train, a grey cross and its words."""
    if verdict in (inf.DID_NOT_TRAIN, "no verdict"):
        ax.plot([0], [y], "x", color="0.6")
        ax.annotate(verdict, (0, y), textcoords="offset points", xytext=(6, -3), fontsize=7, color="0.45")
        return
    colour = COLOURS.get(verdict.split(",")[0].split(" (")[0], "0.35")
    if not math.isnan(lo):
        ax.plot([lo, hi], [y, y], "-", color=colour, lw=2)
    ax.plot([d], [y], "o", color=colour)


def textwrap_label(name: str, width: int = 42) -> str:
    """A long row label on two lines."""
    if len(name) <= width:
        return name
    cut = name.rfind(" ", 0, width)
    cut = cut if cut > 0 else width
    return name[:cut] + "\n" + name[cut:].strip()


def interactions(table: StudyTable, spec: dict, out_dir: Path) -> list[Path]:
    """One interaction plot per pair of a factorial sweep's factors, the primary metric's cell means."""
    factors = factorial.grid(spec)
    col = table.primary
    if not factors or col is None:
        return []
    means = table.frame.set_index("row")[Part.MEAN.of(col)]
    said = {e.contrast.name: e for e in table.effects if e.contrast.kind == "interaction"}
    paths = []
    for f, g in itertools.combinations(factors, 2):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for lg in g.levels:
            ys = [_cell_mean(spec, means, {f.key: lf, g.key: lg}) for lf in f.levels]
            ax.plot(range(len(f.levels)), ys, "o-", label=f"{g.key}={lg}")
        ax.set_xticks(range(len(f.levels)), f.levels)
        ax.set_xlabel(f.key)
        ax.set_ylabel(f"{NAMES[col]} (%), mean over seeds" if col != "ap" else "AP, mean over seeds")
        ax.legend(loc="best", fontsize=8)
        mine = [e for name, e in said.items() if name.startswith(f"{f.key} × {g.key}")]
        ax.set_title(_interaction_title(f, g, mine), fontsize=8)
        paths += save_figure(fig, out_dir, "interaction_" + re.sub(r"\W", "_", f"{f.key}_{g.key}"))
    return paths


def _cell_mean(spec: dict, means: pd.Series, where: dict) -> float:
    """The mean of the rows at ``where`` ({key: level}), averaged over the other factors."""
    rows = [k for k, r in spec["rows"].items() if all(r["values"][key] == lv for key, lv in where.items())]
    vals = [means.get(k, math.nan) for k in rows]
    return float(sum(vals) / len(vals)) if vals else math.nan


def _interaction_title(f, g, effects: list) -> str:
    head = f"interaction {f.key} × {g.key} (parallel lines: none)"
    if not effects:
        return head
    e = effects[0]
    lo, hi = e.interval
    ci = "" if math.isnan(lo) else f" [{lo:+.2f}, {hi:+.2f}]"
    return f"{head}\nΔ of differences {e.estimate.mean:+.2f}{ci}: {e.verdict}"


def draw(table: StudyTable, spec: dict, out_dir: Path) -> list[Path]:
    """The forest plots, then the interaction plots."""
    return forest(table, spec, out_dir) + interactions(table, spec, out_dir)
