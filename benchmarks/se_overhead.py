"""Benchmark P1 + P5: SE-ResNet-50's wall-clock cost over ResNet-50, and its training
throughput, measured side by side in one process.

    python benchmarks/se_overhead.py                 # on a GPU: batch 256, 224 px, bf16, channels_last
    python benchmarks/se_overhead.py --compile       # the same, both models under torch.compile
    python benchmarks/se_overhead.py --smoke         # CPU check of the script (tiny sizes, no figures)
    python benchmarks/se_overhead.py --cpu-only      # the CPU batch-1 inference ratio alone (any machine)
    python benchmarks/se_overhead.py --cifar         # CIFAR ResNet-20: plain vs SE avg vs SE max (any machine)

Training: both models get the framework's settings (bf16 autocast, channels_last, SGD with
momentum, fused on CUDA), warm up, then alternate rounds of ``--steps`` steps each; every round
gives a per-step time, and the figures are medians over rounds. P1: SE / plain step time
(paper x1.10, target <= x1.05). P5: SE-ResNet-50 images/s = batch / median step (target >= 3,500
on one H100). Inference: batch-1 CPU forward at 224 px, fp32, rounds alternating likewise
(paper x1.018, target <= x1.02).

``--cifar``: training steps only, of CIFAR ResNet-20 (32 px, 10 classes, batch 128) plain, with SE
(average squeeze) and with SE (max squeeze), in the same alternating rounds; each SE model's ratio is
the median of its per-round ratios to the plain model of the same round, with their quartiles, next
to its FLOPs ratio. ``--json PATH`` writes the settings and every round's step times.
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from senet_ablate.complexity import count
from senet_ablate.models import build_model
from senet_ablate.se import SESpec
from senet_ablate.train import Runtime, device_name, make_optimizer

PAPER_TRAIN, PAPER_CPU = 1.10, 1.018  # paper §6 / Table 2 text: GPU training time, CPU inference time


def models(cifar: bool = False) -> dict:
    """The models timed against each other, the plain one first."""
    if cifar:
        return {
            "ResNet-20": build_model("cifar_resnet20", None, 10),
            "SE-ResNet-20 avg": build_model("cifar_resnet20", SESpec(), 10),
            "SE-ResNet-20 max": build_model("cifar_resnet20", SESpec(squeeze="max"), 10),
        }
    return {"ResNet-50": build_model("resnet50", None, 1000), "SE-ResNet-50": build_model("resnet50", SESpec(), 1000)}


# the paper's ImageNet SGD settings, for make_optimizer (a recipe node, as a job's config has it)
RECIPE = OmegaConf.create(
    {
        "lr": 0.1,
        "batch_size": 256,
        "base_batch_size": 256,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 1e-4,
        "warmup_epochs": 0,
        "schedule": "constant",
    }
)


def train_steps(args, rt: Runtime) -> dict[str, list[float]]:
    """Per-step seconds of each model, one entry per round (rounds alternate between the models)."""
    fmt = torch.channels_last if rt.channels_last else torch.contiguous_format
    x = torch.randn(args.batch, 3, args.size, args.size, device=rt.device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10 if args.cifar else 1000, (args.batch,), device=rt.device)
    steps = {}
    for name, m in models(args.cifar).items():
        m = m.to(rt.device, memory_format=fmt).train()
        opt = make_optimizer(m, RECIPE, rt)
        net = torch.compile(m) if args.compile else m

        def step(net=net, opt=opt):
            with torch.autocast(rt.device.type, torch.bfloat16, enabled=rt.amp):
                loss = F.cross_entropy(net(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        steps[name] = step
    sync = (lambda: torch.cuda.synchronize()) if rt.device.type == "cuda" else (lambda: None)
    for step in steps.values():  # warm-up: compile, cudnn autotuning, allocator
        for _ in range(args.warmup):
            step()
    sync()
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            sync()
            times[name].append((time.perf_counter() - t0) / args.steps)
    return times


def cpu_inference(args) -> dict[str, list[float]]:
    x = torch.randn(1, 3, 224, 224)
    ms = {name: m.eval() for name, m in models().items()}
    times = {name: [] for name in ms}
    with torch.inference_mode():
        for m in ms.values():
            for _ in range(args.cpu_warmup):
                m(x)
        for _ in range(args.cpu_runs):
            for name, m in ms.items():
                t0 = time.perf_counter()
                m(x)
                times[name].append(time.perf_counter() - t0)
    return times


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, help="default 256 (128 with --cifar)")
    ap.add_argument("--size", type=int, help="default 224 (32 with --cifar)")
    ap.add_argument("--steps", type=int, default=10, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=15)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--cpu-runs", type=int, default=30)
    ap.add_argument("--cpu-warmup", type=int, default=5)
    ap.add_argument("--cpu-only", action="store_true", help="only the CPU batch-1 inference ratio (no training)")
    ap.add_argument("--cifar", action="store_true", help="CIFAR ResNet-20 plain / SE avg / SE max, training only")
    ap.add_argument("--json", help="also write the settings and every round's times here")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run: checks the script, no figures")
    args = ap.parse_args()
    if args.cifar and args.cpu_only:
        ap.error("--cifar times training only; --cpu-only times ResNet-50 inference only")
    args.batch = args.batch or (128 if args.cifar else 256)
    args.size = args.size or (32 if args.cifar else 224)
    if args.smoke:
        args.batch, args.size, args.steps, args.rounds, args.warmup, args.cpu_runs, args.cpu_warmup = (
            4,
            32 if args.cifar else 64,
            1,
            2,
            1,
            2,
            1,
        )
    return args


def train_report(args, rt: Runtime) -> dict:
    """Time the training steps, print each model's median and each SE model's ratio to the plain one."""
    rounds = train_steps(args, rt)
    base, *others = rounds
    gflops = {name: count(m, args.size).gflops for name, m in models(args.cifar).items()}
    for name, v in rounds.items():
        s = statistics.median(v)
        print(f"train step  {name:16s} {s * 1e3:8.1f} ms   {args.batch / s:8.0f} img/s")
    for name in others:
        per_round = [se / plain for se, plain in zip(rounds[name], rounds[base])]
        q1, _, q3 = statistics.quantiles(per_round, n=4, method="inclusive") if len(per_round) > 1 else per_round * 3
        print(
            f"train ratio {name:16s} / {base}: x{statistics.median(per_round):.3f} "
            f"(quartiles of {len(per_round)} rounds x{q1:.3f}-x{q3:.3f}); "
            f"FLOPs x{gflops[name] / gflops[base]:.4f}"
        )
    if not args.cifar:
        t = {k: statistics.median(v) for k, v in rounds.items()}
        ratio, ips = t["SE-ResNet-50"] / t["ResNet-50"], args.batch / t["SE-ResNet-50"]
        print(f"P1 train    SE / plain      x{ratio:.3f}   (paper x{PAPER_TRAIN:.2f}, target <= x1.05)")
        print(f"P5 train    SE-ResNet-50  {ips:8.0f} img/s (target >= 3,500 on one H100)")
    return {"train_step_s": rounds, "gflops": gflops}


def cpu_report(args) -> dict:
    cpu = cpu_inference(args)
    c = {k: statistics.median(v) for k, v in cpu.items()}
    for name, s in c.items():
        print(f"CPU b=1     {name:13s} {s * 1e3:8.1f} ms   ({torch.get_num_threads()} threads)")
    ratio = c["SE-ResNet-50"] / c["ResNet-50"]
    print(f"P1 CPU      SE / plain      x{ratio:.3f}   (paper x{PAPER_CPU}, target <= x1.02)")
    return {"cpu_b1_s": cpu}


def main() -> int:
    args = parse_args()
    gpu = torch.cuda.is_available()
    dev = torch.device("cuda" if gpu else "cpu")
    rt = Runtime(dev, amp=gpu, channels_last=gpu)
    if args.cpu_only:
        print(
            f"torch {torch.__version__}; {device_name(torch.device('cpu'))}; batch 1, 224 px, fp32, eval; "
            f"medians of {args.cpu_runs} alternating runs after {args.cpu_warmup} warm-up runs"
        )
    else:
        print(
            f"torch {torch.__version__}; {device_name(dev)}; batch {args.batch}, {args.size} px, "
            f"{rt.precision}, channels_last={rt.channels_last}, compile={args.compile}; "
            f"medians of {args.rounds} rounds x {args.steps} steps after {args.warmup} warm-up steps"
        )
    report = {"torch": torch.__version__, "device": device_name(dev), "precision": rt.precision}
    report.update(channels_last=rt.channels_last, threads=torch.get_num_threads(), settings=vars(args))
    if not args.cpu_only:
        if not gpu and not args.smoke and not args.cifar:
            print("no GPU: the training figures below are CPU figures, not P1/P5")
        report.update(train_report(args, rt))
    if not args.cifar:
        report.update(cpu_report(args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
