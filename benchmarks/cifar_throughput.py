"""Benchmark P2: CIFAR SE-ResNet-56 training images/s through the framework, against a
plain fp32 DataLoader loop of the same model on the same device, measured in one run.

    python benchmarks/cifar_throughput.py                        # GPU: compiled + CUDA graphs, 1 job
    python benchmarks/cifar_throughput.py --jobs 4               # 4 jobs sharing the GPU (joblib)
    python benchmarks/cifar_throughput.py --root ~/data/cifar10-jpeg   # the real JPEG tree, not synthetic
    python benchmarks/cifar_throughput.py --smoke                # CPU check of the script

Framework: ``senet-ablate`` itself (``model=cifar_resnet56 recipe=cifar``, data held on the device,
bf16, channels_last, ``train.compile=true train.compile_mode=reduce-overhead`` on CUDA), ``--jobs``
seeds at once under ``hydra/launcher=joblib``; a job's figure is the median images/s of its
epochs after the first (its record's history), the aggregate their sum (the jobs run together).
Baseline: a hand-written loop, torchvision transforms per image in DataLoader workers (crop with
4 px padding, flip, normalise), fp32, no channels_last, no compile, batch 128. Targets: >= 40,000
images/s on one H100, >= 10x the baseline.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def framework(args) -> list[float]:
    gpu = torch.cuda.is_available()
    size = (
        ["data.train_size=2048", "data.eval_size=512"]
        if args.smoke
        else ["data.train_size=50000", "data.eval_size=10000"]
    )
    data = ["data=cifar10_jpeg", f"data.root={args.root}"] if args.root else ["data=synthetic", *size]
    fast = ["train.compile=true", f"train.compile_mode={args.compile_mode}"] if gpu and not args.smoke else []
    seeds = ",".join(str(s) for s in range(args.jobs))
    launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}"] if args.jobs > 1 else []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "senet_ablate.run.app",
                "-m",
                "model=cifar_resnet56",
                "recipe=cifar",
                *data,
                f"recipe.epochs={args.epochs}",
                f"recipe.batch_size={args.batch}",
                f"seed={seeds}",
                *fast,
                *launcher,
            ],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        per_job = []
        for rec in Path(tmp).rglob("metrics.json"):
            lines = (rec.parent / "history.csv").read_text().splitlines()
            col = lines[0].split(",").index("images_per_s")
            ips = [float(line.split(",")[col]) for line in lines[1:]]
            per_job.append(statistics.median(ips[1:] or ips))
            r = json.loads(rec.read_text())
            print(
                f"  job seed={r['seed']}: {per_job[-1]:9.0f} img/s  compile_s={r.get('compile_s', 0):.1f}  "
                f"{r['device_name']}, {r['amp']}, channels_last={r['channels_last']}, compile={r['compile']}"
            )
    return per_job


def baseline(args) -> float:
    from torchvision.transforms import v2

    from senet_ablate.models import build_model
    from senet_ablate.se import SESpec

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    norm = v2.Normalize([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])
    if args.root:
        from torchvision.datasets import ImageFolder

        ds = ImageFolder(
            os.path.join(args.root, "train"),
            v2.Compose(
                [
                    v2.RandomCrop(32, padding=4),
                    v2.RandomHorizontalFlip(),
                    v2.ToImage(),
                    v2.ToDtype(torch.float32, True),
                    norm,
                ]
            ),
        )
    else:
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (50000, 3, 32, 32), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, 10, (50000,), generator=g)
        tf = v2.Compose(
            [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, True), norm]
        )

        class Synthetic(torch.utils.data.Dataset):
            def __len__(self):
                return len(labels)

            def __getitem__(self, i):
                return tf(images[i]), labels[i]

        ds = Synthetic()
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=128,
        shuffle=True,
        drop_last=True,
        pin_memory=dev.type == "cuda",
        num_workers=min(8, len(os.sched_getaffinity(0))),
        persistent_workers=True,
    )
    model = build_model("cifar_resnet56", SESpec(), 10).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    seen, t0 = 0, None
    for i, (x, y) in enumerate(loader):
        if i == args.baseline_warmup:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            seen, t0 = 0, time.perf_counter()
        if i == args.baseline_warmup + args.baseline_steps:
            break
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(y)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", help="CIFAR-10 JPEG tree; default synthetic 32 px data")
    ap.add_argument("--jobs", type=int, default=1, help="framework jobs at once on the device (joblib)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=512, help="framework batch (the baseline uses 128)")
    ap.add_argument("--compile-mode", default="reduce-overhead")
    ap.add_argument("--baseline-steps", type=int, default=200)
    ap.add_argument("--baseline-warmup", type=int, default=20)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run: checks the script, no figures")
    args = ap.parse_args()
    if args.smoke:
        args.epochs, args.batch, args.baseline_steps, args.baseline_warmup = 1, 256, 3, 1
    from senet_ablate.train import device_name

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(
        f"torch {torch.__version__}; {device_name(dev)}; SE-ResNet-56, "
        f"{'CIFAR-10 JPEG tree' if args.root else 'synthetic 32 px'}; "
        f"framework batch {args.batch}, {args.jobs} job(s), {args.epochs} epochs each"
    )
    base = baseline(args)
    print(f"baseline    plain fp32 DataLoader loop (batch 128): {base:9.0f} img/s")
    jobs = framework(args)
    total = sum(jobs)
    print(f"framework   {len(jobs)} job(s) at once: {total:9.0f} img/s aggregate (target >= 40,000 on one H100)")
    print(f"ratio       framework / baseline: x{total / base:.1f} (target >= x10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
