"""Top-1 and top-5 error over an eval split: the error columns of the paper's tables."""

from __future__ import annotations

import torch
from torch import nn

from ..launch import Dist
from .runtime import Runtime


def topk_errors(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(top-1 errors, top-5 errors) of a batch, on its device (no host sync)."""
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hit5 = (top == y[:, None]).any(1)
    return torch.stack([(top[:, 0] != y).sum(), (~hit5).sum()])


def evaluate(model: nn.Module, loader, rt: Runtime, dist: Dist = Dist()) -> tuple[float, float]:
    """Top-1 and top-5 error (%) over the eval split (each rank scores its part; counts are summed)."""
    model.eval()
    wrong, n = torch.zeros(2, dtype=torch.int64, device=rt.device), 0
    with torch.inference_mode(), rt.autocast(rt.eval_bf16):
        for x, y in loader:
            if len(y) == 0:
                continue
            x, y = rt.to(x, y)
            wrong += topk_errors(model(x).float(), y)
            n += len(y)
    wrong1, wrong5 = wrong.tolist()
    wrong1, wrong5, n = dist.all_sum(wrong1, wrong5, n)
    return 100 * wrong1 / n, 100 * wrong5 / n
