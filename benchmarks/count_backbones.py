"""Benchmark: seconds of counting (params, MACs, SE ops on the meta device) per backbone, with SE.

    python benchmarks/count_backbones.py     # target: every backbone under 2 s on a 2-core CPU

Per backbone, at its native input: build on the meta device, then count; median of 3 after one
warm-up (the first count of a process also imports torch's flop-counting machinery, printed apart).
"""

import statistics
import time

from senet_ablate.complexity import count
from senet_ablate.models import MODELS, build_model
from senet_ablate.se import SESpec

NATIVE = {"inception_resnet_v2": 299}


def main() -> int:
    t0 = time.perf_counter()
    count(build_model("resnet18", None, 1000, device="meta"), 224)
    print(f"first count of the process (imports included): {time.perf_counter() - t0:.2f} s")
    worst = 0.0
    for name in MODELS:
        size = 32 if name.startswith("cifar") else NATIVE.get(name, 224)
        times = []
        for _ in range(4):
            t = time.perf_counter()
            count(build_model(name, SESpec(), 1000, device="meta"), size)
            times.append(time.perf_counter() - t)
        med = statistics.median(times[1:])
        worst = max(worst, med)
        print(f"{name:22s} {size:4d} px  build + count {med:.2f} s")
    print(f"slowest: {worst:.2f} s (target < 2 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
