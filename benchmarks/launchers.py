"""Benchmark: one training sweep under each launcher, side by side, on this machine.

    python benchmarks/launchers.py [--epochs 2] [--data synthetic] [--only basic,joblib]

``--data synthetic`` trains on 32 px images (8,192 a job) instead of the 8 px digits: the cost per
image of a CIFAR study, where two threads in one job scale better than on digits (the CPU
studies chose their parallelism with it). ``--only`` runs the cases whose name starts with one of these.

Table 11's two rows (SE-ResNet-20 on digits, max vs avg squeeze) are trained as a user would run
them with: the basic launcher (one job after another), joblib with 2 jobs (``threads: auto`` =
cores // 2 each), joblib with 2 jobs forced to all cores each (``threads=<cores>``: the
oversubscription the automatic choice avoids), and submitit_local likewise (auto: cores // the
sweep's job count, as it starts them all at once). Prints wall time, the threads each job used and
the mean training img/s, with ratios to the basic launcher.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = {"digits": ["data=digits"], "synthetic": ["data=synthetic", "data.train_size=8192"]}


def run(extra: list[str], epochs: int, data: str = "digits") -> tuple[float, list[dict]]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "senet_ablate.run.app",
                "-m",
                "experiment=paper/table11_squeeze",
                "model=cifar_resnet20",
                *DATA[data],
                f"recipe.epochs={epochs}",
                *extra,
            ],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - t0
        recs = [json.loads(p.read_text()) for p in Path(tmp).rglob("metrics.json")]
    return wall, recs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--data", choices=list(DATA), default="digits")
    ap.add_argument("--only", default="", help="comma-separated name prefixes of the cases to run")
    args = ap.parse_args()
    epochs = args.epochs
    cores = len(os.sched_getaffinity(0))
    cases = {
        "basic (sequential)": [],
        "joblib n_jobs=2, threads=auto": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        f"joblib n_jobs=2, threads={cores} (oversubscribed)": [
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            f"threads={cores}",
        ],
        "submitit_local, threads=auto": ["hydra/launcher=submitit_local"],
        f"submitit_local, threads={cores} (oversubscribed)": ["hydra/launcher=submitit_local", f"threads={cores}"],
    }
    print(f"{cores} cores; Table 11 rows max+avg, SE-ResNet-20 on {args.data}, {epochs} epochs per job")
    base = None
    for name, extra in cases.items():
        if args.only and not name.startswith(tuple(args.only.split(","))):
            continue
        # OMP_NUM_THREADS from the caller's shell would decide for every case: drop it
        os.environ.pop("OMP_NUM_THREADS", None)
        wall, recs = run(extra, epochs, args.data)
        base = base or wall
        ips = sum(r["images_per_s"] for r in recs) / len(recs)
        threads = sorted(r["threads"] for r in recs)
        print(
            f"{name:<48} wall {wall:6.1f} s  ({wall / base:4.2f}x basic)  threads/job {threads}  "
            f"train {ips:6.0f} img/s per job"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
