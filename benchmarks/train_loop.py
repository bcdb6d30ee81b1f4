"""Benchmark: the framework's CPU training loop against a plain hand-written loop (the
framework's overhead is to stay within 5%), same model, data and batches, alternating in one process.

    python benchmarks/train_loop.py [--reps 6] [--model cifar_resnet20]

Both train SE-ResNet-20 for one epoch on the same in-memory synthetic 32 px data (4,096 images,
batch 128, CIFAR augmentation, SGD with momentum). The framework's figure is its own epoch
images/s (history); the hand loop's is timed around its steps alike. Prints the medians and the ratio.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from senet_ablate import data
from senet_ablate.models import build_model
from senet_ablate.se import SESpec
from senet_ablate.train import runtime, train

CONF = Path(__file__).resolve().parent.parent / "conf"


def bench_overrides(model: str) -> list[str]:
    """One epoch of synthetic 32 px data at batch 128, nothing else running (shared with cpu_precision.py)."""
    return [
        f"model={model}",
        "data=synthetic",
        "recipe=cifar",
        "recipe.epochs=1",
        "recipe.batch_size=128",
        "train.progress=false",
        "train.preempt_signals=[]",
        "cache_dir=null",
    ]


def framework(cfg, seed: int) -> float:
    d = data.build(cfg.data, cfg.recipe.batch_size, cfg.recipe.eval_batch_size, torch.device("cpu"), seed)
    torch.manual_seed(seed)
    model = build_model(cfg.model.name, SESpec(), 10)
    with tempfile.TemporaryDirectory() as tmp:
        out = train(cfg, model, d, Path(tmp), lambda s, h: None, "bench")
    return out["images_per_s"]


def hand(cfg, seed: int) -> float:
    d = data.build(cfg.data, cfg.recipe.batch_size, cfg.recipe.eval_batch_size, torch.device("cpu"), seed)
    torch.manual_seed(seed)
    model = build_model(cfg.model.name, SESpec(), 10).train()
    r = cfg.recipe
    opt = torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay)
    d.train.set_epoch(0)
    seen, t0 = 0, time.perf_counter()
    for x, y in d.train:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(y)
    return seen / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--model", default="cifar_resnet20")
    args = ap.parse_args()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[*bench_overrides(args.model), "train.amp=false", "train.channels_last=false"],
        )  # the hand loop is plain fp32: compare loops, not precisions
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {runtime(cfg).setup()['device_name']}; "
        f"SE-{args.model}, synthetic 32 px, 4,096 images, batch 128; {args.reps} alternating reps, medians"
    )
    fw, hd = [], []
    hand(cfg, 99)  # warm-up (allocator, kernels)
    for rep in range(args.reps):  # alternate which goes first, so that drift favours neither
        if rep % 2:
            hd.append(hand(cfg, rep))
            fw.append(framework(cfg, rep))
        else:
            fw.append(framework(cfg, rep))
            hd.append(hand(cfg, rep))
    f, h = statistics.median(fw), statistics.median(hd)
    print(f"framework  {f:7.0f} img/s   {[round(v) for v in fw]}")
    print(f"hand loop  {h:7.0f} img/s   {[round(v) for v in hd]}")
    print(f"framework / hand: {f / h:.3f} (target >= 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
