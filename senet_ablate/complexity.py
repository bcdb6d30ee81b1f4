"""Params, multiply-adds, SE elementwise ops and latency, in the paper's GFLOPs convention.

The paper's "GFLOPs" are multiply-adds. The convention that reproduces its ResNet-50 cells
(3.86 baseline, 3.87 SE, 4.27 NoSqueeze; Tables 2, 13, 15, 16):

    gflops = (conv + linear multiply-adds  +  SE elementwise ops) / 1e9

where SE elementwise ops count one op per input element for the squeeze pooling (none for
NoSqueeze) and one per element for the channel rescale; a user's module (``se.module``) reports
its own through ``elementwise_ops(x)``, and ``unreported_blocks`` counts the blocks that do not. Multiply-adds come from
``torch.utils.flop_counter.FlopCounterMode`` (which reports 2 FLOPs per MAC and ignores
pooling, BN and other elementwise work), run on the meta device: shapes only, no arithmetic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.utils.benchmark as benchmark
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .errors import ConfigError
from .models.sk import SKConv
from .se import ChannelAttention, PluggedAttention
from .se.between import BETWEEN

# blocks that report their paper-convention elementwise ops: SE-space blocks, the modules between stages
# (BAM) and selective-kernel convs (model.sk)
COUNTED = (ChannelAttention, PluggedAttention, SKConv, *(m for m in BETWEEN.values() if m is not None))


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int
    elementwise_ops: int
    input_size: int
    unreported_blocks: int = 0  # se.module blocks without an elementwise_ops method: their ops are not in gflops

    @property
    def gflops(self) -> float:
        return (self.macs + self.elementwise_ops) / 1e9

    def as_dict(self) -> dict:
        """The record's complexity fields (``unreported_blocks`` only where a module did not report)."""
        d = {**asdict(self), "gflops": self.gflops, "mflops": self.gflops * 1e3, "params_m": self.params / 1e6}
        if not self.unreported_blocks:
            del d["unreported_blocks"]
        return d


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count(model: nn.Module, input_size: int) -> Complexity:
    """Count one forward pass of a single ``3 x input_size x input_size`` image."""
    device = next(model.parameters()).device
    x = torch.zeros(1, 3, input_size, input_size, device=device)
    se_ops = []
    hooks = [
        m.register_forward_pre_hook(lambda m, args: se_ops.append(m.elementwise_ops(args[0])))
        for m in model.modules()
        if isinstance(m, COUNTED)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    except RuntimeError as e:  # e.g. VGG's five pools below 32 px, Inception-ResNet-v2 below 75 px
        raise ConfigError(
            f"{type(model).__name__} cannot run on a {input_size} px input ({str(e).splitlines()[0]}); "
            "use a larger data.image_size (model.input_size)"
        ) from None
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    ops = [n for n in se_ops if n is not None]
    return Complexity(count_params(model), counter.get_total_flops() // 2, sum(ops), input_size, len(se_ops) - len(ops))


def cpu_latency_ms(model: nn.Module, input_size: int, runs: int = 20, warmup: int = 5) -> float:
    """Median wall time (ms) of a batch-1 forward on the CPU over ``runs`` timed passes, after
    ``warmup`` untimed ones (``torch.utils.benchmark``, with the job's thread count)."""
    model = model.eval()
    x = torch.randn(1, 3, input_size, input_size)
    timer = benchmark.Timer("model(x)", globals={"model": model, "x": x}, num_threads=torch.get_num_threads())
    with torch.inference_mode():
        timer.timeit(warmup)
        passes = benchmark.Measurement.merge([timer.timeit(1) for _ in range(runs)])[0]
    return passes.median * 1e3
