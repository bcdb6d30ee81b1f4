"""Figures of a study (matplotlib, PNG + SVG), drawn from its table and run records.

- ``error_vs_<key>``: error (mean, 95% CI) against a numeric axis the rows vary, e.g. r (Table 10),
  with params on a twin axis;
- ``pareto_gflops``: error against GFLOPs, the Pareto front drawn; ``pareto_params`` (error against params)
  only where params rank the rows otherwise than GFLOPs do (a pair reversed, or tied by one and not the
  other), since with one ranking it is the same picture;
- ``extra_gflops`` / ``extra_params``: the same against the cost added to the baseline row, where the
  study asks (``figures_extra_cost``);
- ``training_curves``: eval top-1 error per epoch, one line per row (mean over seeds);
- any sweep (rows from grouping.py): ``error_vs_<key>`` per numeric row key (a line per setting of
  the other keys); a categorical key's comparisons are in the forest plot (``forest.py``).
Whiskers are the table's 95% CIs (seeds and test images, ``inference.py``) clipped to [0, 100]; runs that
did not train are drawn apart (grey crosses, left out of the means). A figure that would carry no information
is not drawn: nothing trained yet, one row only, every row at one cost (Pareto).
No figure of speed: a study's img/s come from runs trained one after another, often hours apart on a shared
machine, so their ratios are mostly load; SE's time overhead is measured side by side in one process by
``benchmarks/se_overhead.py`` (docs/speed.md).
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

plt.rcParams.update({"axes.titlesize": 9, "svg.hashsalt": "senet-ablate"})
import pandas as pd  # noqa: E402

from .cells import ci_bounds  # noqa: E402
from .columns import Part  # noqa: E402
from .tables import StudyTable  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# the figures draw top-1 error: its mean, 95% CI half-width and run count per row
MEAN, CI95, N = Part.MEAN.of("top1_err"), Part.CI95.of("top1_err"), Part.N.of("top1_err")


def save_figure(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    fig.tight_layout()
    fig.savefig(paths[0], dpi=120, metadata={"Software": None})
    fig.savefig(paths[1], metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return paths


def _title(spec: dict, dataset: str | None, what: str) -> str:
    head = textwrap.fill(spec.get("title", ""), 60)
    return f"{head}\n{what}" + (f" — {dataset}" if dataset else "")


def _yerr(t: pd.DataFrame) -> list[list[float]]:
    """Whiskers (below, above the mean) of each row's 95% CI, clipped to [0, 100]; 0 without a CI."""
    mean, half = t[MEAN].astype(float).tolist(), t[CI95].astype(float).fillna(0).tolist()
    bounds = [ci_bounds(m, h) for m, h in zip(mean, half)]
    return [[m - lo for m, (lo, _) in zip(mean, bounds)], [hi - m for m, (_, hi) in zip(mean, bounds)]]


def _numeric_axis(spec: dict) -> tuple[str, dict[str, float]] | None:
    """The one key whose numeric value every SE row sets (e.g. se.reduction), with each row's value."""
    per_row = {}
    for key, row in spec["rows"].items():
        for o in row.get("set", []):
            m = re.fullmatch(r"([\w.]+)=(-?\d+(?:\.\d+)?)", str(o))
            if m:
                per_row.setdefault(m.group(1), {})[key] = float(m.group(2))
    best = max(per_row.items(), key=lambda kv: len(kv[1]), default=None)
    return best if best and len(best[1]) >= 3 else None


def error_vs_axis(table: StudyTable, spec: dict, dataset: str | None, out_dir: Path) -> list[Path]:
    axis = None if spec.get("adhoc") else _numeric_axis(spec)  # any sweep: by_key draws every key
    t = table.frame.set_index("row")
    if axis is None or t[N].fillna(0).max() == 0:
        return []
    key, xs = axis
    rows = [r for r in xs if t.loc[r, N] > 0]
    x = [xs[r] for r in rows]
    y = [t.loc[r, MEAN] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(x, y, yerr=_yerr(t.loc[rows]), marker="o", capsize=4, label="top-1 error (mean, 95% CI)")
    untrained(ax, table, xs)
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.set_xlabel(key)
    ax.set_ylabel("top-1 error (%)")
    twin = ax.twinx()
    twin.plot(x, [t.loc[r, "params_m"] for r in rows], "s--", color="tab:gray", label="params")
    twin.set_ylabel("params (M)")
    lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(lines, [h.get_label() for h in lines], loc="best")
    ax.set_title(_title(spec, dataset, f"error vs {key}"))
    return save_figure(fig, out_dir, f"error_vs_{key.replace('.', '_')}")


def same_order(a: Iterable[float], b: Iterable[float]) -> bool:
    """Whether two costs rank the rows alike: no pair of rows one cost orders and the other reverses, and
    none one cost ties and the other does not (values within 1e-9 of each other, relatively, tie)."""
    a, b = [float(v) for v in a], [float(v) for v in b]

    def cmp(x: float, y: float) -> int:
        return 0 if math.isclose(x, y, rel_tol=1e-9) else (1 if x > y else -1)

    return all(cmp(a[i], a[j]) == cmp(b[i], b[j]) for i in range(len(a)) for j in range(i + 1, len(a)))


def pareto(table: StudyTable, spec: dict, dataset: str | None, out_dir: Path, extra: bool = False) -> list[Path]:
    """Error vs GFLOPs, with the Pareto front, and vs params where params rank the rows otherwise (else
    the params plot is the GFLOPs plot again, relabelled); ``extra``: both, as the cost added to the
    baseline row (the attention studies: what each module costs on top of the same backbone)."""
    by_row = table.frame.set_index("row")
    t = table.frame[table.frame[N] > 0]
    base = by_row["label"].get(spec.get("baseline")) if extra else None
    if len(t) < 2 or (extra and base is None):
        return []
    costs = [("gflops", "GFLOPs (multiply-adds + SE elementwise)"), ("params_m", "params (M)")]
    if not extra and same_order(t["gflops"], t["params_m"]):
        costs = costs[:1]
    paths = []
    for col, label in costs:
        x = t[col] - by_row.loc[spec["baseline"], col] if extra else t[col]
        if x.nunique() < 2:  # every row at one cost: the points would stack on one x
            continue
        if extra:
            label = f"extra {label.split(' (')[0]} over {base} ({label.split(' (')[1]}"
            if x.abs().max() < 0.1:  # on a CIFAR net the modules add thousands of params, MFLOPs
                x, label = x * 1e3, label.replace("(M)", "(thousands)").replace("GFLOPs", "MFLOPs")
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.errorbar(x, t[MEAN], yerr=_yerr(t), fmt="o", capsize=4, label="rows (mean, 95% CI)")
        untrained(ax, table, dict(zip(t["row"], x)))
        for xi, (_, r) in zip(x, t.iterrows()):
            ax.annotate(r["label"], (xi, r[MEAN]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        t = t.assign(**{col: x})
        front, best = [], math.inf
        for _, r in t.sort_values([col, MEAN]).iterrows():
            if r[MEAN] < best:
                front.append(r)
                best = r[MEAN]
        ax.plot([r[col] for r in front], [r[MEAN] for r in front], "--", color="tab:red", label="Pareto front")
        ax.set_xlabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.set_ylabel("top-1 error (%)")
        ax.legend(loc="best")
        ax.set_title(_title(spec, dataset, f"error vs {label.split(' (')[0]}"))
        paths += save_figure(fig, out_dir, f"{'extra' if extra else 'pareto'}_{col.removesuffix('_m')}")
    return paths


def extra_cost(table: StudyTable, spec: dict, dataset: str | None, out_dir: Path) -> list[Path]:
    return pareto(table, spec, dataset, out_dir, extra=True) if spec.get("figures_extra_cost") else []


def training_curves(runs: pd.DataFrame, spec: dict, dataset: str | None, out_dir: Path) -> list[Path]:
    done = runs[(runs["status"] == "completed") & (runs["task"] == "train")]
    curves = []
    for key, row in spec["rows"].items():
        hist = [
            pd.read_csv(Path(d) / "history.csv")
            for d in done.loc[done["row"] == key, "run_dir"]
            if (Path(d) / "history.csv").is_file()
        ]
        if hist:
            curves.append((row.get("label", key), pd.concat(hist).groupby("epoch")["top1_err"].mean()))
    if not curves:
        return []
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, c in curves:
        ax.plot(c.index, c.values, marker=".", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("eval top-1 error (%), mean over seeds")
    ax.legend(loc="best", fontsize=8)
    ax.set_title(_title(spec, dataset, "training curves"))
    return save_figure(fig, out_dir, "training_curves")


def _number(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def untrained(ax: Axes, table: StudyTable, xs: dict) -> None:
    """Runs that did not train, as grey crosses at their row's x (``xs``: {row: x}), apart from the means."""
    bad = table.untrained
    if bad is None or not len(bad):
        return
    pts = [(xs[r], float(e)) for r, e in zip(bad["row"], bad["top1_err"]) if r in xs]
    if pts:
        ax.scatter(*zip(*pts), marker="x", color="tab:gray", label="did not train (left out)")


def by_key(table: StudyTable, spec: dict, dataset: str | None, out_dir: Path) -> list[Path]:
    """Any sweep's rows: error against each numeric row key, a line per setting of the other keys. A
    categorical key gets none: bars of row CIs invite reading overlap as "no difference"; its comparisons are
    in the forest plot and, for a grid of keys, its effects in the interaction plots (``forest.py``)."""
    frame = table.frame
    t = frame[(frame[N] > 0) | (frame.get("did_not_train", 0) > 0)]  # a row at chance: its crosses
    if not spec.get("adhoc") or len(t) < 2:
        return []
    values = {r: spec["rows"][r]["values"] for r in t["row"]}
    paths = []
    for key in spec["keys"]:
        xs = list(dict.fromkeys(values[r][key] for r in t["row"]))
        if len(xs) < 2 or any(_number(x) is None for x in xs):
            continue
        others = {r: ", ".join(f"{k}={v}" for k, v in values[r].items() if k != key) for r in t["row"]}
        fig, ax = plt.subplots(figsize=(6, 4))
        for label in dict.fromkeys(others.values()):
            mine = t[[others[r] == label for r in t["row"]]]
            pos = [_number(values[r][key]) for r in mine["row"]]
            ax.errorbar(pos, mine[MEAN], yerr=_yerr(mine), label=label or "top-1 error", marker="o", capsize=4)
            untrained(ax, table, dict(zip(mine["row"], pos)))
        ax.set_xlabel(key)
        ax.set_ylabel("top-1 error (%), mean and 95% CI")
        ax.legend(loc="best", fontsize=8)
        ax.set_title(_title(spec, dataset, f"error by {key}"))
        name = re.sub(r"\W", "_", key)
        paths += save_figure(fig, out_dir, f"error_vs_{name}")
    return paths


FIGURES = (error_vs_axis, by_key, pareto, extra_cost)


def draw_all(table: StudyTable, runs: pd.DataFrame, spec: dict, out_dir: Path) -> list[Path]:
    """Every figure the study's data supports, into ``out_dir``; returns the files written."""
    data = runs.get("data")
    dataset = next((d for d in (data if data is not None else []) if isinstance(d, str)), None)
    paths = training_curves(runs, spec, dataset, out_dir)
    for fig in FIGURES:
        paths += fig(table, spec, dataset, out_dir)
    return paths
