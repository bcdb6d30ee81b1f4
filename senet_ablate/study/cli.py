"""``senet-report DIR... [--by KEYS] [--filter K=V] [--html | --status]``: the study room's command
line. Arguments are parsed before the table machinery (pandas, scipy) is imported, so ``--help``
and a mistyped option answer at once."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .inference import CORRECTIONS, TESTS

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
    ap.add_argument(
        "--alpha", type=float, help="the budget of every claim of a metric (default: table.alpha of the runs, 0.05)"
    )
    ap.add_argument(
        "--margin",
        type=float,
        help="equivalence margin in points for every metric, |Δ| < margin (default: table.margin of the runs; "
        "none: no equivalent verdict, the smallest margin shown instead)",
    )
    ap.add_argument(
        "--correction",
        choices=CORRECTIONS,
        help="bonferroni: one budget alpha across the comparisons of a metric; none: each at alpha "
        "(default: table.correction, bonferroni)",
    )
    ap.add_argument(
        "--test",
        choices=TESTS,
        help="joint: seeds and test images (from predictions.npz); welch: seed values only (default: joint)",
    )
    ap.add_argument("--out", metavar="DIR", help="write the table files, figures and dashboard here")
    ap.add_argument("--html", action="store_true", help="also write a static dashboard per study and an index")
    ap.add_argument("--no-write", action="store_true", help="print only; write no files")
    ap.add_argument(
        "--wide",
        action="store_true",
        help="every column in the printout, table.md and table.tex (secondary metrics, p, the paper's cells, MACs, "
        "img/s); default: the table that fits 120 columns (every column stays in table.csv and the dashboard)",
    )
    ap.add_argument(
        "--status",
        action="store_true",
        help="per sweep: jobs completed / running / failed / missing, and how to relaunch the rest",
    )
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    from .report import report, status  # pandas and the rest: after --help and argument errors

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
                wide=args.wide,
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


if __name__ == "__main__":
    sys.exit(main())
