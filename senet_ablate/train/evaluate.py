"""Top-1 and top-5 error over an eval split: the error columns of the paper's tables, and (``keep``) what
the model predicted for every image, for ``predictions.npz``."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import nn

from ..distributed import Dist
from .runtime import Runtime


def topk_errors(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(top-1 errors, top-5 errors) of a batch, on its device (no host sync)."""
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hit5 = (top == y[:, None]).any(1)
    return torch.stack([(top[:, 0] != y).sum(), (~hit5).sum()])


def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    rt: Runtime,
    dist: Dist = Dist(),
    keep: bool = False,
) -> tuple[float, float] | tuple[float, float, tuple[np.ndarray, np.ndarray]]:
    """Top-1 and top-5 error (%) over the eval split (each rank scores its part; counts are summed).
    ``keep``: also (labels, top-5 classes) of every image in the split's order, as numpy arrays (on every rank)."""
    model.eval()
    wrong, n = torch.zeros(2, dtype=torch.int64, device=rt.device), 0
    parts = []
    with torch.inference_mode(), rt.autocast(rt.eval_bf16):
        for x, y in loader:
            if len(y) == 0:
                parts.append((np.zeros(0, np.int64), np.zeros((0, 5), np.int64)))
                continue
            x, y = rt.to(x, y)
            logits = model(x).float()
            wrong += topk_errors(logits, y)
            n += len(y)
            if keep:
                top = logits.topk(min(5, logits.shape[1]), dim=1).indices.cpu().numpy()
                pad = np.full((len(top), 5 - top.shape[1]), -1, np.int64)  # fewer than 5 classes
                parts.append((y.cpu().numpy(), np.concatenate([top, pad], 1)))
    wrong1, wrong5 = wrong.tolist()
    wrong1, wrong5, n = dist.all_sum(wrong1, wrong5, n)
    errors = (100 * wrong1 / n, 100 * wrong5 / n)
    return (*errors, _in_order(parts, dist)) if keep else errors


def _in_order(parts: list, dist: Dist) -> tuple[np.ndarray, np.ndarray]:
    """Per-batch (labels, top-5) of this rank -> the whole split's, in its order: each global batch is
    the ranks' contiguous parts in rank order (``data.sampling.Batches``)."""
    if dist.active:
        every = [None] * dist.world
        torch.distributed.all_gather_object(every, parts)
        parts = [p for batch in zip(*every) for p in batch]
    if not parts:
        return np.zeros(0, np.int64), np.zeros((0, 5), np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
