"""What ``senet-report`` does (its command line: ``cli.py``): run records -> per study,
its table (a preset's paper-shaped rows, or for any other sweep one row per combination of the
keys its runs differ in), printed and written beside the sweep as table.md / .tex / .csv with
runs.csv / .parquet, its figures (figures/*.png|svg) and, with --html, a static dashboard;
--status lists what each sweep still owes. Imports neither torch nor Hydra (``--status`` reads a sweep's
multirun.yaml with OmegaConf, and Hydra's override parser expands a sweep that has no jobs.json)."""

from __future__ import annotations

import logging
import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..records.atomic import write_atomic
from . import dashboard, inference
from .collect import collect, export
from .formats import to_latex, to_markdown
from .grouping import keep, tables_for
from .sequential import Plan, find_plan
from .status import find_sweeps, render, sweep_command, sweep_status
from .tables import StudyTable, study_table

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("senet_ablate")


def sweep_commands(where: Path) -> list[str]:
    """The command(s) that made a sweep (from Hydra's multirun.yaml when present), runnable as printed."""
    cmds = []
    if (where / "multirun.yaml").is_file():
        try:
            cmds.append(sweep_command(where))
        except Exception:  # noqa: BLE001 - an unreadable multirun.yaml only costs the page a line
            pass
    return cmds + [f"senet-report {shlex.quote(str(where))} --html"]


def out_dir(
    runs: pd.DataFrame,
    out: str | Path | None = None,
    by: list[str] | None = None,
    filters: list[str] | None = None,
) -> Path:
    """Where a table's files go: ``out``, else the runs' common dir (a sub-dir named after
    ``--by``/``--filter`` there, so a narrower report never overwrites the sweep's own table)."""
    if out:
        return Path(out)
    where = Path(os.path.commonpath([str(Path(d).parent) for d in runs["run_dir"]]))
    parts = ([f"by-{'+'.join(by)}"] if by else []) + ([f"where-{'+'.join(filters)}"] if filters else [])
    return where / re.sub(r"[^\w.=+\-]", "_", "_".join(parts)) if parts else where


def report(
    paths: Sequence[str | Path],
    write: bool = True,
    html: bool = False,
    export_runs: bool = True,
    by: list[str] | None = None,
    filters: list[str] | None = None,
    baseline: str | None = None,
    out: str | Path | None = None,
    settings: dict | None = None,
    wide: bool = False,
) -> dict[str, str]:
    """Build every table (and figures, and pages) of the runs under ``paths``; return {name: markdown}.

    ``export_runs`` also writes runs.csv / runs.parquet (the end-of-sweep callback skips them);
    ``by``, ``filters``, ``baseline``, ``out``, ``settings`` (table.alpha / margin / correction / test /
    resamples), ``wide`` (every column in table.md / .tex and the printout): as senet-report's
    options. Raises ValueError on a bad option (an unknown key, a baseline that
    is no row, a bad setting)."""
    given = {k: v for k, v in (settings or {}).items() if v is not None}
    inference.settings(given)  # a bad value fails before any record is read
    # pandas & co. load here, not with the module, which every job imports with run/callbacks.py
    runs, specs = collect(paths)
    runs = planned_only(runs)
    if filters and len(runs):
        runs = keep(runs, filters)
    out_md, pages = {}, {}
    for name, mine, spec in tables_for(runs, specs, by, baseline) if len(runs) else []:
        where = out_dir(mine, out, by, filters)
        plan = find_plan(mine["run_dir"])  # an adaptive sweep's (hydra.sweeper.until=verdict)
        planned = plan.settings() if plan is not None else {}
        moved = {k: v for k, v in given.items() if k in planned and v != planned[k]}
        if moved:
            log.warning("%s is adaptive: its verdicts use the plan's %s, not %s", name, planned, moved)
        spec = {**spec, **given, "plan": plan, "wide": wide}
        out_md[name], page = build(mine, spec, name, where, write, html, export_runs)
        if page:
            pages[name] = page
    if pages:
        root = Path(out) if out else Path(os.path.commonpath([str(Path(p)) for p in paths]))
        root = root if root.is_dir() else root.parent  # --out: the index beside the table, not among the records
        out_md["_index"] = f"dashboard index: {dashboard.index_page(root, pages)}\n"
    return out_md


def build(
    mine: pd.DataFrame, spec: dict, name: str, where: Path, write: bool, html: bool, export_runs: bool
) -> tuple[str, Path | None]:
    """One table: printed text, and (``write``) table.md/.tex/.csv, figures and the dashboard in ``where``."""
    table = study_table(mine, spec)
    md = to_markdown(table, spec, spec.get("wide", False))
    if not write:
        return md, None
    write_atomic(where / "table.md", md)
    write_atomic(where / "table.tex", to_latex(table, spec, spec.get("wide", False)))
    write_atomic(where / "table.csv", table.frame.to_csv(index=False))
    if export_runs:
        export(mine, where)
    figures = []
    if (mine["task"] == "train").any():  # every figure needs trained runs; matplotlib loads only then
        from . import forest, plots

        figures = forest.draw(table, spec, where / "figures") + plots.draw_all(table, mine, spec, where / "figures")
        prune(where / "figures", figures)
    page = dashboard.study_page(where, name, spec, table, mine, figures, sweep_commands(where)) if html else None
    files = "table.md, table.tex, table.csv" + (", runs.csv, runs.parquet" if export_runs else "")
    lines = [f"written to {where}/: {files}"]
    pngs = [f.name for f in figures if f.suffix == ".png"]
    lines.append(
        f"figures: {where / 'figures'}/ {', '.join(pngs)} (and .svg)"
        if pngs
        else "figures: none (they need training runs)"
    )
    if html:
        lines.append(f"dashboard: {where / 'dashboard.html'}")
    return md + "\n" + "\n".join(lines) + "\n", page


def prune(folder: Path, kept: list[Path]) -> None:
    """Remove the figures (PNG, SVG) of an earlier report that this one did not draw: a figure the data no
    longer supports must not linger beside the new ones."""
    for f in folder.glob("*"):
        if f.suffix in (".png", ".svg") and f not in kept:
            f.unlink()


def planned_only(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` less those that share a sweep dir with an adaptive plan but are none of its jobs: a plan's table
    is its own (they are said in the log)."""
    if not len(runs):
        return runs
    import pandas as pd

    keep = []
    for parent, mine in runs.groupby(runs["run_dir"].map(lambda d: str(Path(str(d)).parent)), sort=False):
        plan = Plan.read(Path(parent))
        own = plan.own(mine) if plan is not None else mine
        if len(own) < len(mine):
            log.info("%s: %d runs are not part of its adaptive plan and are left out", parent, len(mine) - len(own))
        keep.append(own)
    return pd.concat(keep) if keep else runs


def study_state(sweep_dir: Path, plan: Plan) -> tuple[StudyTable, pd.DataFrame, dict] | None:
    """An adaptive sweep's study as its records stand: (its table under ``plan``, its runs with their
    rows, its spec); None before any record. The sweeper and ``--status`` read decisions and what the plan
    owes from the table (``decisions``, ``owed``)."""
    runs, specs = collect([sweep_dir])
    runs = plan.own(runs) if len(runs) else runs
    if not len(runs):
        return None
    (name, mine, spec), *_ = tables_for(runs, specs)
    spec = {**spec, "plan": plan}
    return study_table(mine, spec), mine, spec


def status(dirs: Sequence[str | Path]) -> dict[str, str]:
    """Every sweep's status under ``dirs``: {sweep root: text}; an adaptive sweep's also says where each
    compared row stands and what its plan still owes."""
    return {str(root): render(sweep_status(root)) + plan_status(root) for root in find_sweeps(dirs)}


def plan_status(root: Path) -> str:
    """An adaptive sweep's rows (verdict, seeds, why stopped) and the runs its next look needs."""
    plan = Plan.read(root)
    state = study_state(root, plan) if plan is not None else None
    if state is None:
        return ""
    table, frame = state[0], state[0].frame
    lines = [f"adaptive plan (until=verdict, max_seeds={plan.max_seeds}, spending={plan.spending}):"]
    for _, r in frame[frame["stopped"].notna()].iterrows() if "stopped" in frame else []:
        lines.append(f"  {r['label']}: {r['stopped']}")
    owed = table.owed
    if owed:
        runs = ", ".join(f"{table.labels.get(r, r)} seed {s}" for r, s in owed)
        lines.append(f"  owes {len(owed)} runs for the next look: {runs}")
        command = plan.command or sweep_command(root)
        if frame["stopped"].astype(str).str.startswith("max_runs").any():  # relaunched as it was, it stops again
            command = re.sub(r" hydra\.sweeper\.max_runs=\S+", "", command)
            lines.append(f"  hydra.sweeper.max_runs={plan.max_runs} is reached: the command below lifts it")
        lines.append(f"  continue the plan (it resumes from the records): {command}")
    else:
        lines.append("  owes nothing: every compared row has stopped")
    return "\n" + "\n".join(lines)
