"""Benchmark: wall time to profile every row of the paper's ablation Tables 10-16.

    python benchmarks/profile_tables.py     # target: <= 2x the time of 7 bare `import torch` starts

Runs each preset exactly as a user would (``senet-ablate -m experiment=... task=profile``) in a
scratch directory and prints the time per study and in total. Beside it, in the same run, the
time of a bare ``python -c "import torch"`` per study: the part of each command that is only
interpreter + torch start-up, a yardstick for how fast this machine is right now.
"""

import subprocess
import sys
import tempfile
import time

STUDIES = [
    "table10_reduction",
    "table11_squeeze",
    "table12_excitation",
    "table13_stages",
    "table14_integration",
    "table15_se3x3",
    "table16_nosqueeze",
]


def main() -> int:
    total = bare = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for study in STUDIES:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import torch"], check=True)
            bare += time.perf_counter() - t0
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "senet_ablate.run.app", "-m", f"experiment=paper/{study}", "task=profile"],
                cwd=tmp,
                check=True,
                capture_output=True,
            )
            dt = time.perf_counter() - t0
            total += dt
            print(f"{study:22s} {dt:6.1f} s")
    print(f"{'all rows, Tables 10-16':22s} {total:6.1f} s")
    print(f"{'bare torch start x7':22s} {bare:6.1f} s  (the yardstick, measured beside it)")
    print(f"{'ratio':22s} {total / bare:6.2f}    (target <= 2)")
    return 0 if total <= 2 * bare else 1


if __name__ == "__main__":
    sys.exit(main())
