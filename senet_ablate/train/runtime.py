"""Where and in what precision a job computes: the device, bf16 autocast, channels_last and
torch.compile, decided once per job from ``device``, ``train.*`` and ``eval.amp``."""

from __future__ import annotations

import dataclasses
import os
import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..errors import ConfigError

if TYPE_CHECKING:
    from omegaconf import DictConfig

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@dataclass
class Runtime:
    """Where and in what precision a job computes (:func:`runtime` decides it from the config)."""

    device: torch.device
    amp: bool
    channels_last: bool
    compile: str | None = None  # torch.compile mode, None: eager
    eval_amp: bool | None = None  # evaluation in bf16; None: as training

    @property
    def eval_bf16(self) -> bool:
        """Whether evaluation runs in bf16 autocast."""
        return self.amp if self.eval_amp is None else self.eval_amp

    @property
    def precision(self) -> str:
        """The training precision as records name it."""
        return "bf16" if self.amp else "fp32"

    def setup(self) -> dict:
        """What a timing depends on, for every training record: tables never mix setups silently."""
        return {
            "device_name": device_name(self.device),
            "amp": self.precision,
            "eval_amp": "bf16" if self.eval_bf16 else "fp32",
            "channels_last": self.channels_last,
            "compile": self.compile or False,
        }

    def to(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch on this device, in this memory format."""
        x = x.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device, non_blocking=True)

    def autocast(self, enabled: bool) -> torch.autocast:
        """bf16 autocast on this device, when ``enabled``."""
        return torch.autocast(self.device.type, torch.bfloat16, enabled=enabled)


def native_bf16(dev: torch.device) -> bool:
    """Whether ``dev`` computes bf16 natively, so that autocast pays: a GPU, Apple's GPU (``mps``),
    or a CPU with AVX-512 BF16 or AMX, as torch reports it (an emulated bf16 is slower than fp32)."""
    if dev.type in ("cuda", "mps"):
        return True
    cpu = getattr(torch, "cpu", None)
    return any(
        bool(getattr(cpu, probe, lambda: False)()) for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )


def pick_device(want: str) -> torch.device:
    """``device``: auto = CUDA (this process's GPU under torchrun), else Apple's GPU, else the CPU."""
    if want != "auto":
        return torch.device(want)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    mps = getattr(torch.backends, "mps", None)
    return torch.device("mps" if mps is not None and mps.is_available() else "cpu")


def _switch(key: str, value, auto: bool) -> bool:
    if value == "auto":
        return auto
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not valid; valid values: auto, true, false")
    return value


def device_name(dev: torch.device) -> str:
    """The GPU's name, or the CPU's model (``cpu: ...``), for the records' timings."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        model = ""
    return f"cpu: {model or platform.processor() or platform.machine()}"


def runtime(cfg: DictConfig) -> Runtime:
    """Device and precision of a job. ``train.amp: auto`` = bf16 autocast where the device computes
    bf16 natively (``native_bf16``), fp32 elsewhere; ``false`` is exact fp32. ``train.channels_last:
    auto`` = on a GPU or a CPU (faster on this CPU in fp32 and in bf16: benchmarks/cpu_precision.py),
    not on Apple's GPU. ``eval.amp: auto`` evaluates in the training precision."""
    dev = pick_device(cfg.get("device", "auto"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available; use device=auto or device=cpu")
    amp = _switch("train.amp", cfg.train.amp, native_bf16(dev))
    channels_last = _switch("train.channels_last", cfg.train.channels_last, dev.type in ("cuda", "cpu"))
    ev = (cfg.get("eval") or {}).get("amp", "auto")
    eval_amp = None if ev == "auto" else _switch("eval.amp", ev, amp)
    mode = cfg.train.get("compile_mode", "default")
    if mode not in COMPILE_MODES:
        raise ConfigError(f"train.compile_mode={mode!r} is not valid; valid values: {', '.join(COMPILE_MODES)}")
    compiled = _switch("train.compile", cfg.train.compile, False)  # auto: decided once the steps are known
    return Runtime(dev, amp, channels_last, mode if compiled else None, eval_amp)


# train.compile=auto compiles a CPU run of at least this many training steps. benchmarks/compile_auto.py on a
# 2-core AMD EPYC (SE-ResNet-20, batch 128, bf16): compiled steps x1.21 faster; a cold compile (64 s, an empty
# cache) pays for itself after ~1,900 steps, a cached one (2 s) after ~65. 3,000 leaves a margin for nets that
# compile longer; a 10-epoch CIFAR run (3,910 steps) compiles, the quickstart (220) does not.
AUTO_COMPILE_STEPS = 3000


def decide_compile(cfg: DictConfig, rt: Runtime, steps: int) -> tuple[Runtime, str]:
    """``train.compile: auto`` resolved for a run of ``steps`` training steps (this process's), and why:
    compiled on the CPU from ``AUTO_COMPILE_STEPS`` on (a shorter run would not earn the compile time
    back), eager elsewhere (a GPU: ``train.compile=true`` where you have measured it pays)."""
    setting = cfg.train.compile
    if setting != "auto":
        return rt, f"train.compile={str(setting).lower()}"
    if rt.device.type != "cpu":
        return rt, f"auto: eager on {rt.device.type} (auto compiles CPU runs only)"
    if steps < AUTO_COMPILE_STEPS:
        return rt, f"auto: eager, {steps} training steps < {AUTO_COMPILE_STEPS} (too short to earn the compile back)"
    mode = cfg.train.get("compile_mode", "default")
    return dataclasses.replace(rt, compile=mode), f"auto: compiled, {steps} training steps >= {AUTO_COMPILE_STEPS}"
