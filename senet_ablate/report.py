"""``senet-report DIR... [--by KEYS] [--filter K=V] [--html | --status]``: run records -> per study,
its table (a preset's paper-shaped rows, or for any other sweep one row per combination of the
keys its runs differ in), printed and written beside the sweep as table.md / .tex / .csv with
runs.csv / .parquet, its figures (figures/*.png|svg) and, with --html, a static dashboard;
--status lists what each sweep still owes. Also the end-of-sweep Hydra callback."""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import re
import shlex
import sys
from pathlib import Path

from hydra.experimental.callback import Callback

from . import dashboard, inference
from .atomic import write_atomic
from .collect import collect, export
from .grouping import keep, tables_for
from .launch import env_rank
from .sequential import Plan, find_plan
from .status import find_sweeps, render, sweep_command, sweep_status
from .tables import study_table, to_latex, to_markdown

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


def out_dir(runs, out=None, by=None, filters=None) -> Path:
    """Where a table's files go: ``out``, else the runs' common dir (a sub-dir named after
    ``--by``/``--filter`` there, so a narrower report never overwrites the sweep's own table)."""
    if out:
        return Path(out)
    where = Path(os.path.commonpath([str(Path(d).parent) for d in runs["run_dir"]]))
    parts = ([f"by-{'+'.join(by)}"] if by else []) + ([f"where-{'+'.join(filters)}"] if filters else [])
    return where / re.sub(r"[^\w.=+\-]", "_", "_".join(parts)) if parts else where


def report(
    paths,
    write: bool = True,
    html: bool = False,
    export_runs: bool = True,
    by=None,
    filters=None,
    baseline=None,
    out=None,
    settings: dict | None = None,
) -> dict[str, str]:
    """Build every table (and figures, and pages) of the runs under ``paths``; return {name: markdown}.

    ``export_runs`` also writes runs.csv / runs.parquet (the end-of-sweep callback skips them);
    ``by``, ``filters``, ``baseline``, ``out``, ``settings`` (table.alpha / margin / correction / test /
    resamples): as senet-report's options. Raises ValueError on a bad option (an unknown key, a baseline that
    is no row, a bad setting)."""
    given = {k: v for k, v in (settings or {}).items() if v is not None}
    inference.settings(given)  # a bad value fails before any record is read
    # pandas & co. load here, not with the module: every job process instantiates the callback below
    runs, specs = collect(paths)
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
        out_md[name], page = build(mine, {**spec, **given, "plan": plan}, name, where, write, html, export_runs)
        if page:
            pages[name] = page
    if pages:
        root = Path(out) if out else Path(os.path.commonpath([str(Path(p)) for p in paths]))
        root = root if root.is_dir() else root.parent  # --out: the index beside the table, not among the records
        out_md["_index"] = f"dashboard index: {dashboard.index_page(root, pages)}\n"
    return out_md


def build(mine, spec: dict, name: str, where: Path, write: bool, html: bool, export_runs: bool):
    """One table: printed text, and (``write``) table.md/.tex/.csv, figures and the dashboard in ``where``."""
    table = study_table(mine, spec)
    md = to_markdown(table, spec)
    if not write:
        return md, None
    write_atomic(where / "table.md", md)
    write_atomic(where / "table.tex", to_latex(table, spec))
    write_atomic(where / "table.csv", table.to_csv(index=False))
    if export_runs:
        export(mine, where)
    figures = []
    if (mine["task"] == "train").any():  # every figure needs trained runs; matplotlib loads only then
        from . import plots

        figures = plots.draw_all(table, mine, spec, where / "figures")
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


def study_state(sweep_dir: Path, plan) -> tuple[object, object, dict] | None:
    """An adaptive sweep's study as its records stand: (its table under ``plan``, its runs with their
    rows, its spec); None before any record. The sweeper and ``--status`` read decisions and what the plan
    owes from ``table.attrs`` (``decisions``, ``owed``)."""
    runs, specs = collect([sweep_dir])
    if not len(runs):
        return None
    (name, mine, spec), *_ = tables_for(runs, specs)
    spec = {**spec, "plan": plan}
    return study_table(mine, spec), mine, spec


def status(dirs) -> dict[str, str]:
    """Every sweep's status under ``dirs``: {sweep root: text}; an adaptive sweep's also says where each
    compared row stands and what its plan still owes."""
    return {str(root): render(sweep_status(root)) + plan_status(root) for root in find_sweeps(dirs)}


def plan_status(root: Path) -> str:
    """An adaptive sweep's rows (verdict, seeds, why stopped) and the runs its next look needs."""
    plan = Plan.read(root)
    state = study_state(root, plan) if plan is not None else None
    if state is None:
        return ""
    table = state[0]
    lines = [f"adaptive plan (until=verdict, max_seeds={plan.max_seeds}, spending={plan.spending}):"]
    for _, r in table[table["stopped"].notna()].iterrows() if "stopped" in table else []:
        lines.append(f"  {r['label']}: {r['stopped']}")
    owed = table.attrs.get("owed") or []
    if owed:
        labels = table.attrs["labels"]
        runs = ", ".join(f"{labels.get(r, r)} seed {s}" for r, s in owed)
        lines.append(f"  owes {len(owed)} runs for the next look: {runs}")
        command = sweep_command(root)
        if table["stopped"].astype(str).str.startswith("max_runs").any():  # relaunched as it was, it stops again
            command = re.sub(r" hydra\.sweeper\.max_runs=\S+", "", command)
            lines.append(f"  hydra.sweeper.max_runs={plan.max_runs} is reached: the command below lifts it")
        lines.append(f"  continue the plan (it resumes from the records): {command}")
    else:
        lines.append("  owes nothing: every compared row has stopped")
    return "\n" + "\n".join(lines)


EXAMPLES = """examples:
  senet-report runs/adhoc                        the table of every study under runs/adhoc (a preset's rows,
                                                 or one row per combination of the keys its runs differ in)
  senet-report runs/a runs/b --by se.reduction   runs of several sweeps and single runs in one table
  senet-report runs --by model,se.squeeze --filter data=cifar10_jpeg --baseline 'se.squeeze=avg'
  senet-report runs/paper/table10_reduction --status   what a sweep still owes, and the commands to relaunch it
  senet-report runs/adhoc --margin 0.2 --alpha 0.01    verdicts at another equivalence margin and level

Rows aggregate over seeds; keys that do not change a result (data.root, device, threads, ...) are never row keys.
A --by/--filter table is written to a sub-dir of the runs' common dir (by-.../where-...) unless --out says where.
"""


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="senet-report",
        description="Run records -> per study, its table (errors with CIs, Δ, a verdict per row), figures and "
        "an optional dashboard, written beside the sweep; or (--status) what each sweep still owes.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("dirs", nargs="+", help="run dirs or sweep roots (searched recursively for metrics.json)")
    ap.add_argument(
        "--by",
        type=lambda v: [k.strip() for k in v.split(",") if k.strip()],
        metavar="KEY,KEY",
        help="table rows: one per combination of these config keys (default: the keys the runs "
        "differ in); every run under DIRS in one table",
    )
    ap.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep only the runs whose KEY has VALUE (repeat, or comma-separate, for several)",
    )
    ap.add_argument(
        "--baseline",
        metavar="ROW",
        help="the row Δ compares with: a row label, or KEY=VALUE parts "
        "that single out one row (default: the row with SE off, else the first)",
    )
    ap.add_argument("--alpha", type=float, help="level of the verdicts (default: table.alpha of the runs, 0.05)")
    ap.add_argument(
        "--margin", type=float, help="equivalence margin in points, |Δ| < margin (default: table.margin, 0.5)"
    )
    ap.add_argument(
        "--correction",
        choices=inference.CORRECTIONS,
        help="across the rows compared with one baseline (default: table.correction, holm)",
    )
    ap.add_argument(
        "--test",
        choices=inference.TESTS,
        help="joint: seeds and test images (from predictions.npz); welch: seed values only (default: joint)",
    )
    ap.add_argument("--out", metavar="DIR", help="write the table files, figures and dashboard here")
    ap.add_argument("--html", action="store_true", help="also write a static dashboard per study and an index")
    ap.add_argument("--no-write", action="store_true", help="print only; write no files")
    ap.add_argument(
        "--status",
        action="store_true",
        help="per sweep: jobs completed / running / failed / missing, and how to relaunch the rest",
    )
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        out = (
            status(args.dirs)
            if args.status
            else report(
                args.dirs,
                write=not args.no_write,
                html=args.html,
                by=args.by,
                filters=args.filter,
                baseline=args.baseline,
                out=args.out,
                settings={k: getattr(args, k) for k in ("alpha", "margin", "correction", "test")},
            )
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"senet-report: {e}", file=sys.stderr)
        return 2
    if not out:
        what = "sweep (multirun.yaml)" if args.status else "run records"
        print(f"senet-report: no {what} under {' '.join(args.dirs)}", file=sys.stderr)
        return 1
    print(("\n\n" if args.status else "\n").join(out.values()))
    return 0


class PrintTableCallback(Callback):
    """At the end of every multirun, print the study's table and write it, its figures and its
    dashboard beside the sweep. Hydra skips ``on_multirun_end`` when a job failed (it re-raises
    that job's error), so the report then runs at interpreter exit; the exit code stays non-zero."""

    def __init__(self) -> None:
        self.sweep_dir: str | None = None

    def on_multirun_start(self, config, **kwargs) -> None:
        self.sweep_dir = str(config.hydra.sweep.dir)
        atexit.register(self._after_failure)

    def on_multirun_end(self, config, **kwargs) -> None:
        self._report()

    def _after_failure(self) -> None:
        if self.sweep_dir is not None and os.path.isdir(self.sweep_dir):  # on_multirun_end never came
            where = self._report()
            print(
                f"\nSome job of this sweep did not complete (failed or interrupted: see above). "
                f"`senet-report --status {shlex.quote(where)}` lists every job and the commands that relaunch the "
                "unfinished ones.",
                flush=True,
            )

    def _report(self) -> str:
        where, self.sweep_dir = self.sweep_dir, None
        if env_rank() > 0 or not os.path.isdir(where):  # torchrun: rank 0 reports; no job ran: nothing to say
            return where
        try:
            tables = report([where], html=True, export_runs=False)
        except Exception as e:  # the sweep's records are safe; a report problem must not fail it
            log.warning("could not build the study table: %s", e)
            return where
        for study, md in tables.items():
            if study != "_index":  # one sweep, one study: its dashboard is link enough
                print("\n" + md, flush=True)
        return where


if __name__ == "__main__":
    sys.exit(main())
