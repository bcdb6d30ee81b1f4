"""Benchmark: CPU training speed by precision and memory format, side by side in one run (the
defaults, bf16 autocast where the CPU computes bf16 natively, must train SE-ResNet-20 at
>= 1.5x the images/s of exact fp32).

    python benchmarks/cpu_precision.py [--reps 3] [--model cifar_resnet20]

Each setting trains one epoch of the framework's own loop on the same in-memory synthetic 32 px
data (4,096 images, batch 128, CIFAR augmentation); settings alternate within each rep so that
drift favours none. Prints each setting's median images/s and its ratio to fp32.
"""

import argparse
import statistics
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_loop import CONF, bench_overrides, framework  # noqa: E402

from senet_ablate.train import (
    native_bf16,
    runtime,  # noqa: E402
)

SETTINGS = {
    "fp32": ["train.amp=false", "train.channels_last=false"],
    "fp32 + channels_last": ["train.amp=false", "train.channels_last=true"],
    "bf16": ["train.amp=true", "train.channels_last=false"],
    "bf16 + channels_last": ["train.amp=true", "train.channels_last=true"],
    "defaults (auto)": [],
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--model", default="cifar_resnet20")
    args = ap.parse_args()
    cfgs = {}
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for name, extra in SETTINGS.items():
            cfgs[name] = compose(config_name="config", overrides=[*bench_overrides(args.model), *extra])
    rt = runtime(cfgs["defaults (auto)"])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {rt.setup()['device_name']}; native bf16: "
        f"{native_bf16(rt.device)}; defaults = {rt.setup()['amp']}, channels_last={rt.channels_last}; "
        f"SE-{args.model}, synthetic 32 px, 4,096 images, batch 128; {args.reps} reps, medians"
    )
    framework(cfgs["fp32"], 99)  # warm-up
    seen = {name: [] for name in SETTINGS}
    for rep in range(args.reps):
        order = list(SETTINGS) if rep % 2 == 0 else list(reversed(SETTINGS))
        for name in order:
            seen[name].append(framework(cfgs[name], rep))
    base = statistics.median(seen["fp32"])
    for name, values in seen.items():
        m = statistics.median(values)
        print(f"{name:<22} {m:7.0f} img/s  x{m / base:.2f} vs fp32   {[round(v) for v in values]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
