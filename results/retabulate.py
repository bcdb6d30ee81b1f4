"""Rebuild a committed study's table from its exported ``runs.csv`` when its run records were not committed
(older studies): the same statistics as ``senet-report``, from the seed values only (their runs kept no
per-image predictions). The eval-set size and the class count, which those old run tables lack, are
given on the command line (for the did-not-train test).

    python results/retabulate.py results/attention_cifar_8ep --images 1000 --classes 10 \
        --experiment attention/cifar_proxy
    python results/retabulate.py results/cpu_precision --images 10000 --classes 10 --baseline train.amp=false
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from senet_ablate.records.atomic import write_atomic
from senet_ablate.study.formats import to_latex, to_markdown
from senet_ablate.study.tables import study_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", type=Path, help="a results/ dir holding runs.csv")
    ap.add_argument("--images", type=int, required=True, help="eval images every run was scored on")
    ap.add_argument("--classes", type=int, required=True, help="classes of the data")
    ap.add_argument("--experiment", help="the preset whose table rows the runs used, e.g. attention/cifar_proxy")
    ap.add_argument("--baseline", help="the baseline row (a study without a spec: default the first row)")
    ap.add_argument("--title", default=None)
    args = ap.parse_args()
    runs = pd.read_csv(args.study / "runs.csv")
    runs = runs.assign(eval_images=args.images, num_classes=args.classes, _flat=[{}] * len(runs))
    if args.experiment:
        with initialize_config_module("senet_ablate.conf", version_base=None):
            cfg = compose("config", overrides=[f"experiment={args.experiment}"])
        spec = OmegaConf.to_container(cfg.table, resolve=True)
    else:
        rows = list(dict.fromkeys(runs["row"]))
        spec = {"title": args.study.name, "rows": {r: {"label": r} for r in rows}, "baseline": rows[0]}
    if args.baseline:
        spec["baseline"] = args.baseline
    if args.title:
        spec["title"] = args.title
    table = study_table(runs, spec)
    write_atomic(args.study / "table.md", to_markdown(table, spec))
    write_atomic(args.study / "table.tex", to_latex(table, spec))
    write_atomic(args.study / "table.csv", table.frame.to_csv(index=False))
    print(to_markdown(table, spec))


if __name__ == "__main__":
    main()
