"""``data.subset``: a class-stratified part of a dataset, the same for every row and seed of a study.

``data.subset`` is null (all of it), a fraction in (0, 1] of both splits, or ``{train: N | f, eval:
N | f}`` (an image count or a fraction per split; a missing or null split is whole). Each class keeps
its share of the split (largest remainder, so 5,000 of CIFAR-10's balanced train split is 500 per
class), and which images it keeps is drawn from ``data.subset_seed``, never the run's seed: every row
and seed of a study trains and is scored on the same images. The choice is part of the run's
fingerprint (the keys) and its record (``data_subset``, written by ``Data.describe_subset``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ..errors import ConfigError

if TYPE_CHECKING:
    from omegaconf import DictConfig

SPLITS = ("train", "eval")


def _size(key: str, v) -> float | int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{key}={v!r} must be an image count (an integer >= 1) or a fraction in (0, 1]")
    if isinstance(v, int) and v < 1 or isinstance(v, float) and not 0 < v <= 1:
        raise ConfigError(f"{key}={v!r} must be an image count (an integer >= 1) or a fraction in (0, 1]")
    return v


def sizes(cfg: DictConfig) -> dict[str, float | int | None] | None:
    """``data.subset`` checked: {split: count | fraction | None}, or None for the whole dataset."""
    value = cfg.get("subset")
    if value is None:
        return None
    seed = cfg.get("subset_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"data.subset_seed={seed!r} must be an integer")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {s: _size("data.subset", value) for s in SPLITS}
    if not hasattr(value, "keys") or set(value) - set(SPLITS):
        raise ConfigError(
            f"data.subset={value!r} must be null, a fraction in (0, 1], or {{train: N, eval: N}} "
            f"(keys: {', '.join(SPLITS)}; a count or a fraction each)"
        )
    return {s: _size(f"data.subset.{s}", value.get(s)) for s in SPLITS}


def per_class(labels: Sequence[int], want: float | int, split: str) -> dict[int, int]:
    """How many images each class keeps: its share of ``want`` (largest remainder)."""
    counts: dict[int, int] = {}
    for y in labels:
        counts[int(y)] = counts.get(int(y), 0) + 1
    n = len(labels)
    total = round(want * n) if isinstance(want, float) else want
    if total > n:
        raise ConfigError(f"data.subset.{split}={want} but the {split} split has {n} images")
    exact = {c: total * k / n for c, k in counts.items()}
    keep = {c: int(e) for c, e in exact.items()}
    for c in sorted(exact, key=lambda c: (keep[c] - exact[c], c))[: total - sum(keep.values())]:
        keep[c] += 1
    return keep


def choose(labels: Sequence[int], want: float | int | None, seed: int, split: str) -> list[int] | None:
    """The indices (in the split's order) of a class-stratified subset; None keeps the whole split."""
    if want is None or want == 1.0:
        return None
    keep = per_class(labels, want, split)
    digest = hashlib.blake2b(f"subset {seed} {split}".encode(), digest_size=8).digest()
    g = torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
    chosen: list[int] = []
    for c in sorted(keep):
        members = [i for i, y in enumerate(labels) if int(y) == c]
        order = torch.randperm(len(members), generator=g)[: keep[c]]
        chosen += [members[i] for i in order.tolist()]
    return sorted(chosen)
