"""``senet-report DIR... [--html | --status]``: run records -> per study, the paper-shaped table
(printed, and written beside the sweep as table.md / .tex / .csv with runs.csv / .parquet), its
figures (figures/*.png|svg) and, with --html, a static dashboard; --status lists what each sweep
still owes. Also the end-of-sweep Hydra callback."""
from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback

from .records import write_atomic

log = logging.getLogger("senet_ablate")


def sweep_commands(where: Path) -> list[str]:
    """The command(s) that made a sweep, from Hydra's multirun.yaml when present."""
    cmds = []
    mr = where / "multirun.yaml"
    if mr.is_file():
        try:
            task = yaml.safe_load(mr.read_text())["hydra"]["overrides"]["task"]
            cmds.append("senet-ablate -m " + " ".join(task))
        except (KeyError, TypeError, yaml.YAMLError):
            pass
    return cmds + [f"senet-report {where} --html"]


def report(paths, write: bool = True, html: bool = False, export_runs: bool = True) -> dict[str, str]:
    """Build every study's table (and figures, and pages) under ``paths``; return {study: markdown}.

    ``export_runs`` also writes runs.csv / runs.parquet (the end-of-sweep callback skips them)."""
    # pandas & co. load here, not with the module: every job process instantiates the callback below
    from . import dashboard
    from .collect import collect, export
    from .tables import study_table, to_latex, to_markdown

    runs, specs = collect(paths)
    out, pages = {}, {}
    for study, spec in specs.items():
        mine = runs[runs["study"] == study]
        table = study_table(mine, spec)
        md = to_markdown(table, spec)
        out[study] = md
        if not write:
            continue
        where = Path(os.path.commonpath([str(Path(d).parent) for d in mine["run_dir"]]))
        write_atomic(where / "table.md", md)
        write_atomic(where / "table.tex", to_latex(table, spec))
        write_atomic(where / "table.csv", table.to_csv(index=False))
        if export_runs:
            export(mine, where)
        figures = []
        if (mine["task"] == "train").any():  # every figure needs trained runs; matplotlib loads only then
            from . import plots

            figures = plots.draw_all(table, mine, spec, where / "figures")
        if html:
            pages[study] = dashboard.study_page(where, study, spec, table, mine, figures, sweep_commands(where))
        files = "table.md, table.tex, table.csv" + (", runs.csv, runs.parquet" if export_runs else "")
        lines = [f"written to {where}/: {files}"]
        pngs = [f.name for f in figures if f.suffix == ".png"]
        lines.append(f"figures: {where / 'figures'}/ {', '.join(pngs)} (and .svg)" if pngs else
                     "figures: none (they need training runs)")
        if html:
            lines.append(f"dashboard: {where / 'dashboard.html'}")
        out[study] = md + "\n" + "\n".join(lines) + "\n"
    if pages:
        root = Path(os.path.commonpath([str(Path(p)) for p in paths]))
        root = root if root.is_dir() else root.parent
        out["_index"] = f"dashboard index: {dashboard.index_page(root, pages)}\n"
    orphans = runs[~runs["study"].isin(list(specs))]
    if len(orphans):
        log.warning("%d run record(s) belong to no study table (ad-hoc runs); they are not tabulated", len(orphans))
    return out


def status(dirs) -> dict[str, str]:
    """Every sweep's status under ``dirs``: {sweep root: text}."""
    from .status import find_sweeps, render, sweep_status

    return {str(root): render(sweep_status(root)) for root in find_sweeps(dirs)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="senet-report", description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+", help="run dirs or sweep roots (searched recursively for metrics.json)")
    ap.add_argument("--html", action="store_true", help="also write a static dashboard per study and an index")
    ap.add_argument("--no-write", action="store_true", help="print only; write no files")
    ap.add_argument("--status", action="store_true",
                    help="per sweep: jobs completed / running / failed / missing, and how to relaunch the rest")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        out = status(args.dirs) if args.status else report(args.dirs, write=not args.no_write, html=args.html)
    except FileNotFoundError as e:
        print(f"senet-report: {e}", file=sys.stderr)
        return 2
    if not out:
        what = "sweep (multirun.yaml)" if args.status else "study run records"
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
            print(f"\nSome job of this sweep did not complete (failed or interrupted: see above). "
                  f"`senet-report --status {where}` lists every job and the commands that relaunch the "
                  "unfinished ones.", flush=True)

    def _report(self) -> str:
        from .launch import env_rank

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
