"""Time the README's test command as an AVX2-only CPU would run it, on a CPU with AVX-512 and native bf16.

    python benchmarks/suite_as_avx2.py [pytest args ...]      # default: the whole suite, -q

The fleet has 2-core machines with AVX-512 BF16/AMX and machines with AVX2 only, and the suite must fit its
time on both. Three things make a machine of the second kind, and this script sets all three for every
process the suite starts:

- ``ATEN_CPU_CAPABILITY=avx2``: ATen's vectorised kernels use AVX2 (torch's own switch);
- ``ONEDNN_MAX_CPU_ISA=AVX2``: oneDNN's convolutions and matmuls use AVX2 (oneDNN's own switch);
- torch reports no native bf16 (``torch.cpu._is_avx512_bf16_supported`` and ``_is_amx_tile_supported`` give
  False), so ``train.amp: auto`` picks fp32 as it does there, and an explicit ``train.amp=true`` runs emulated.

The third needs code at interpreter start in every process (forked jobs, torchrun ranks, submitit jobs), so
the script puts a one-line ``.pth`` file in this interpreter's site-packages for the run and removes it after.
Clock speed and core design are not emulated: compare with a real AVX2 machine's time when one is at hand
(CONTRIBUTING.md keeps both).
"""

import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOOK = "senet_ablate_no_native_bf16"
HOOK_CODE = '''"""Written by benchmarks/suite_as_avx2.py for one run: torch.cpu reports no native bf16."""
import sys


class _NoNativeBf16:
    def find_spec(self, name, path, target=None):
        if name != "torch.cpu":
            return None
        others = (f for f in sys.meta_path if f is not self and hasattr(f, "find_spec"))
        spec = next((s for s in (f.find_spec(name, path, target) for f in others) if s is not None), None)
        if spec is not None:
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                module._is_avx512_bf16_supported = module._is_amx_tile_supported = lambda: False

            spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _NoNativeBf16())
'''


def main(args: list[str]) -> int:
    site = Path(sysconfig.get_paths()["purelib"])
    module, pth = site / f"{HOOK}.py", site / f"{HOOK}.pth"
    module.write_text(HOOK_CODE)
    pth.write_text(f"import {HOOK}\n")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    try:
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, "-m", "pytest", *(args or ["-q"])], cwd=ROOT, env=env)
        wall = time.perf_counter() - start
    finally:
        module.unlink()
        pth.unlink()
    print(f"suite as on an AVX2-only CPU: {wall // 60:.0f}:{wall % 60:02.0f} (exit {rc})")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
