"""Benchmark: the decoded-data cache across the jobs of a ``data=cifar10_jpeg`` sweep.

    python benchmarks/data_cache.py --root /path/to/cifar10-jpeg

Runs a real two-job sweep (``seed=0,1``, one job after the other) with an empty cache dir and
prints each job's ``data_load_s`` from its record: the first job decodes the tree (in parallel)
and writes the cache, the second loads it. The jobs are ``task=eval`` of a randomly initialised
SE-ResNet-20 (a job that loads the whole tree, both splits, then scores the 10,000 test images),
so that the benchmark takes a minute, not an epoch of CPU training. Also times the old way, a
sequential in-process decode of the same tree, in the same run.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, help="the CIFAR-10 JPEG tree (train/ and test/ class folders)")
    args = ap.parse_args()
    import torch

    from senet_ablate.models import build_model
    from senet_ablate.se import SESpec

    with tempfile.TemporaryDirectory() as tmp:
        cache, weights = Path(tmp) / "cache", Path(tmp) / "se_resnet20.pt"
        torch.save(build_model("cifar_resnet20", SESpec(), 10).state_dict(), weights)
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "senet_ablate.run.app",
                "-m",
                "task=eval",
                "data=cifar10_jpeg",
                f"data.root={args.root}",
                "model=cifar_resnet20",
                f"model.weights={weights}",
                "seed=0,1",
                f"cache_dir={cache}",
            ],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - t0
        recs = sorted((json.loads(p.read_text()) for p in Path(tmp).rglob("metrics.json")), key=lambda r: r["seed"])
        size = sum(p.stat().st_size for p in cache.rglob("*.pt"))

    from omegaconf import OmegaConf

    from senet_ablate import data

    conf = Path(__file__).resolve().parent.parent / "conf" / "data"
    cfg = OmegaConf.merge(
        OmegaConf.load(conf / "imagefolder.yaml"),
        {k: v for k, v in OmegaConf.load(conf / "cifar10_jpeg.yaml").items() if k != "defaults"},
    )
    cfg.root = args.root
    t0 = time.perf_counter()
    _, samples, _ = data.scan_imagefolder(cfg)
    n = sum(len(data.decode_split(items, 32, 0, False, Path(args.root))[1]) for items in samples.values())
    sequential = time.perf_counter() - t0

    print(
        f"{os.cpu_count()} cores; {n} images; sweep of 2 eval jobs took {wall:.0f} s; cache file {size / 2**20:.0f} MiB"
    )
    print(f"sequential in-process decode (no cache, no workers): {sequential:6.2f} s")
    for r in recs:
        print(f"job seed={r['seed']}: data_cache={r['data_cache']:<4}  data_load_s {r['data_load_s']:6.2f} s")
    first, second = (r["data_load_s"] for r in recs)
    print(f"second job / first job: {second / first:.3f} (target <= 0.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
