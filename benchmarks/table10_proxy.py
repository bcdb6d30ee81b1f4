"""Benchmark P3: paper Table 10 (reduction ratio r) as a CIFAR-10 proxy, end to end:
the six rows x 3 seeds of SE-ResNet-56, 30 epochs each, the sweep, its records, the table, the
figures and the dashboard, timed as a user runs it (target <= 15 minutes on one H100).

    python benchmarks/table10_proxy.py --root ~/data/cifar10-jpeg --jobs 6     # on a GPU
    python benchmarks/table10_proxy.py --smoke                                 # CPU check (digits, 1 epoch)

One command: ``senet-ablate -m experiment=paper/table10_reduction model=cifar_resnet56 se.min_hidden=1
data=cifar10_jpeg recipe=cifar recipe.epochs=30 seed=0,1,2`` with ``--jobs`` jobs sharing the GPU
through ``hydra/launcher=joblib`` and, on CUDA, ``train.compile=true`` (reduce-overhead: CUDA
graphs) with one compile cache for all jobs. The sweep prints its table and writes
table.md/.csv/.tex, the figures and dashboard.html at its end (the report callback), all inside
the timed command. Prints the wall time, the jobs' mean images/s and compile_s, and the table.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", help="the CIFAR-10 JPEG tree (train/ and test/)")
    ap.add_argument("--jobs", type=int, default=6, help="jobs at once on the device (joblib n_jobs)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--compile-mode", default="reduce-overhead")
    ap.add_argument("--smoke", action="store_true", help="CPU check: digits, ResNet-20, 1 epoch, 1 seed")
    args = ap.parse_args()
    import torch

    gpu = torch.cuda.is_available()
    if args.smoke:
        cmd = ["model=cifar_resnet20", "data=digits", "recipe.epochs=1", "seed=0"]
    else:
        if not args.root:
            ap.error("--root is required (or --smoke)")
        cmd = [
            "model=cifar_resnet56",
            "data=cifar10_jpeg",
            f"data.root={args.root}",
            "recipe=cifar",
            f"recipe.epochs={args.epochs}",
            "seed=0,1,2",
        ]
        if gpu:
            cmd += ["train.compile=true", f"train.compile_mode={args.compile_mode}"]
    if args.jobs > 1:
        cmd += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}"]
    with tempfile.TemporaryDirectory() as tmp:
        # se.min_hidden=1: a CIFAR ResNet's first stage has 16 channels, so r = 32 floors C // r at 1
        full = [
            sys.executable,
            "-m",
            "senet_ablate.run.app",
            "-m",
            "experiment=paper/table10_reduction",
            *cmd,
            "se.min_hidden=1",
            f"cache_dir={tmp}/cache",
        ]
        print("$", " ".join(full[2:]))
        t0 = time.perf_counter()
        proc = subprocess.run(full, cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        sweep = Path(tmp) / "runs/paper/table10_reduction"
        recs = [json.loads(p.read_text()) for p in sweep.rglob("metrics.json")]
        done = [r for r in recs if r["status"] == "completed"]
        table = (sweep / "table.md").read_text() if (sweep / "table.md").exists() else "(no table)"
        outputs = sorted(p.name for p in sweep.iterdir() if p.is_file())
    print(table)
    print(f"exit {proc.returncode}; {len(done)}/{len(recs)} jobs completed; files: {', '.join(outputs)}")
    if done:
        ips = statistics.mean(r["images_per_s"] for r in done)
        comp = statistics.mean(r.get("compile_s", 0.0) for r in done)
        print(
            f"per job: {ips:.0f} img/s (mean), compile_s {comp:.1f} (mean); {done[0]['device_name']}, "
            f"{done[0]['amp']}, compile={done[0]['compile']}"
        )
    print(f"P3 wall time, sweep + table + figures + dashboard: {wall / 60:.1f} min (target <= 15 on one H100)")
    if proc.returncode:
        print(proc.stderr[-3000:])
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
