"""Training and evaluation (``task=train``, ``task=eval``), one concern per module:

runtime.py     device and precision (bf16 autocast, channels_last, compile mode)
schedule.py    the recipe's checks, the learning rate at any point, the optimiser
checkpoint.py  last.pt: where a run stands, saved and resumed; seeds and random state
compiled.py    torch.compile's announcement, shared cache, warm-up and recompile count
evaluate.py    top-1 / top-5 error over an eval split
loop.py        the loop as named steps: set_up, run_epoch, end_epoch, train
"""

from .checkpoint import CHECKPOINT, Progress, rng_state, save_checkpoint, seed_everything, set_rng_state
from .compiled import announce_compile, compile_warm_up, compiled_graphs, share_compile_cache
from .evaluate import evaluate, topk_errors
from .loop import CHECK_EVERY, Diverged, end_epoch, run_epoch, set_up, summarise, train
from .runtime import (
    AUTO_COMPILE_STEPS,
    COMPILE_MODES,
    Runtime,
    decide_compile,
    device_name,
    native_bf16,
    pick_device,
    runtime,
)
from .schedule import OPTIMIZERS, SCHEDULES, WARMUPS, check_recipe, is_scheduler, lr_at, make_optimizer, make_scheduler

__all__ = [
    "CHECKPOINT",
    "CHECK_EVERY",
    "COMPILE_MODES",
    "Diverged",
    "Progress",
    "Runtime",
    "OPTIMIZERS",
    "SCHEDULES",
    "WARMUPS",
    "announce_compile",
    "check_recipe",
    "compile_warm_up",
    "compiled_graphs",
    "device_name",
    "end_epoch",
    "evaluate",
    "lr_at",
    "make_optimizer",
    "make_scheduler",
    "is_scheduler",
    "native_bf16",
    "decide_compile",
    "AUTO_COMPILE_STEPS",
    "pick_device",
    "rng_state",
    "run_epoch",
    "runtime",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
    "set_up",
    "share_compile_cache",
    "summarise",
    "topk_errors",
    "train",
]
