"""Benchmark: ``train.compile`` on the CPU, compiled against eager training side by side in one
process, and what ``train.compile: auto`` chooses from it.

    python benchmarks/compile_auto.py [--steps 40] [--model cifar_resnet20]

SE-ResNet-20 training steps on synthetic 32 px data (batch 128, SGD, the job's threads, this
machine's default precision): the first compile (an empty inductor cache), the compile again from
the cache, then eager and compiled steps alternating in blocks (medians after warm-up). Prints the
speed ratio, the steps after which each compile has paid for itself, and auto's choice
(``train.runtime.AUTO_COMPILE_STEPS``) for a 10-epoch CIFAR run and for the quickstart.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

from senet_ablate.models import build_model
from senet_ablate.se import SESpec
from senet_ablate.train.runtime import AUTO_COMPILE_STEPS, native_bf16


def steps(net, opt, x, y, n: int, amp: bool) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return times


def first_call(net, opt, x, y, amp: bool) -> float:
    t0 = time.perf_counter()
    steps(net, opt, x, y, 2, amp)  # the forward and the backward graphs
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40, help="timed steps per engine (in 4 alternating blocks)")
    ap.add_argument("--model", default="cifar_resnet20")
    args = ap.parse_args()
    amp = native_bf16(torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 3, 32, 32, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (128,), generator=g)
    torch.manual_seed(0)
    model = build_model(args.model, SESpec(), 10).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        compiled = torch.compile(model)
        cold = first_call(compiled, opt, x, y, amp)
        torch._dynamo.reset()  # the same graphs again, now from the on-disk cache
        compiled = torch.compile(model)
        warm = first_call(compiled, opt, x, y, amp)
        steps(model, opt, x, y, 3, amp)  # eager warm-up
        eager_t, compiled_t = [], []
        for _ in range(4):
            eager_t += steps(model, opt, x, y, args.steps // 4, amp)
            compiled_t += steps(compiled, opt, x, y, args.steps // 4, amp)
    e, c = statistics.median(eager_t), statistics.median(compiled_t)
    saved = e - c
    threads, precision = torch.get_num_threads(), "bf16" if amp else "fp32"
    print(f"{args.model}, batch 128, 32 px, {precision}, {threads} threads, torch {torch.__version__}")
    print(f"{'engine':<10}{'step (ms, median)':>20}{'img/s':>10}")
    print(f"{'eager':<10}{1e3 * e:>20.1f}{128 / e:>10.0f}")
    print(f"{'compiled':<10}{1e3 * c:>20.1f}{128 / c:>10.0f}")
    print(f"compiled / eager speed: x{e / c:.2f}")
    print(f"compile: {cold:.1f} s cold (empty cache), {warm:.1f} s from the cache (steps included)")
    for what, t in (("cold", cold), ("cached", warm)):
        paid = f"after {t / saved:,.0f} steps" if saved > 0 else "never (compiled is not faster here)"
        print(f"  the {what} compile pays for itself {paid}")
    runs = {"a 10-epoch CIFAR-10 run (batch 128)": 10 * 391, "the quickstart (digits, 10 epochs, batch 64)": 10 * 22}
    for what, n in runs.items():
        choice = "compile" if n >= AUTO_COMPILE_STEPS else "eager"
        print(f"train.compile=auto on the CPU, {what}: {n:,} steps -> {choice} (threshold {AUTO_COMPILE_STEPS:,})")


if __name__ == "__main__":
    sys.exit(main())
