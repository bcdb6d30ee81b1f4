"""The distribution of excitation activations (paper Sec. 7.2, Figs. 6 and 7) for any trained run:
what ``task=excitation`` draws.

For chosen classes (default: the first 4, 50 eval images each) record the activations of the
excitation (its gate's output, Eq. 3's s) of the last SE block of every stage and of every block of
the last stage; average per channel per class. Fig. 6: the class means of a sample of channels,
beside the mean over all evaluated images; Fig. 7: mean ± std within a class. NoSqueeze's
per-position gates are averaged over the map first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..records.atomic import write_atomic
from ..se import ChannelAttention


def blocks_of_interest(model: nn.Module) -> dict[str, ChannelAttention]:
    """Fig. 6's panels, by block name in stage and unit order: the blocks of the last unit of every
    stage and of every unit of the last stage (by the blocks' ``stage`` and ``index``). A unit with a
    block on each branch (the Shake nets' ``SE_2_4a``, ``SE_2_4b``) gives both."""
    blocks = [m for m in model.modules() if isinstance(m, ChannelAttention)]
    if not blocks:
        return {}
    last_stage = max(b.stage for b in blocks)
    last_unit = {s: max(b.index for b in blocks if b.stage == s) for s in {b.stage for b in blocks}}
    keep = [b for b in blocks if b.stage == last_stage or b.index == last_unit[b.stage]]
    return {b.name: b for b in sorted(keep, key=lambda b: (b.stage, b.index, b.name))}


@torch.no_grad()
def collect(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    classes: list[int],
    per_class: int,
    device: str | torch.device,
) -> dict:
    """{block: {"class_mean": {c: [C]}, "class_std": {c: [C]}, "all_mean": [C], "n": {c: k}}}."""
    blocks = blocks_of_interest(model)
    if not blocks:
        raise ConfigError("this model has no SE blocks: nothing to analyse")
    acts = {name: [] for name in blocks}
    hooks = [
        b.gate.register_forward_hook(
            lambda m, i, o, name=name: acts[name].append((o.float().mean((2, 3)) if o.ndim == 4 else o.float()).cpu())
        )
        for name, b in blocks.items()
    ]
    labels, taken = [], {c: 0 for c in classes}
    model.eval().to(device)
    try:
        for x, y in loader:
            keep = []
            for v in y.tolist():
                keep.append(v in taken and taken[v] < per_class)
                taken[v] = taken.get(v, 0) + keep[-1]
            keep = torch.tensor(keep, dtype=torch.bool)
            if keep.any():
                model(x[keep.to(x.device)].to(device))
                labels.append(y.cpu()[keep])
            if all(v >= per_class for v in taken.values()):
                break
    finally:
        for h in hooks:
            h.remove()
    y = torch.cat(labels)
    out = {}
    for name, parts in acts.items():
        a = torch.cat(parts)
        out[name] = {
            "all_mean": a.mean(0).tolist(),
            "class_mean": {c: a[y == c].mean(0).tolist() for c in classes},
            "class_std": {c: a[y == c].std(0, unbiased=len(a[y == c]) > 1).tolist() for c in classes},
            "n": {c: int((y == c).sum()) for c in classes},
        }
    return out


def draw(result: dict, out_dir: Path, channels: int, seed: int, title: str) -> list[Path]:
    """Fig. 6 (inter-class) and Fig. 7 (intra-class) style panels, PNG + SVG."""
    from ..study.plots import plt, save_figure

    names = list(result)
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    paths = []
    g = torch.Generator().manual_seed(seed)
    for kind in ("inter_class", "intra_class"):
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names):
            r = result[name]
            c_total = len(r["all_mean"])
            idx = sorted(torch.randperm(c_total, generator=g)[: min(channels, c_total)].tolist())
            if kind == "inter_class":
                ax.plot(range(len(idx)), [r["all_mean"][i] for i in idx], "k--", lw=1, label="all evaluated")
                for c, mean in r["class_mean"].items():
                    ax.plot(range(len(idx)), [mean[i] for i in idx], lw=1, label=str(c))
            else:
                for c in list(r["class_mean"])[:2]:
                    m = torch.tensor([r["class_mean"][c][i] for i in idx])
                    s = torch.tensor([r["class_std"][c][i] for i in idx])
                    ax.plot(range(len(idx)), m, lw=1, label=f"{c} (mean ± std)")
                    ax.fill_between(range(len(idx)), m - s, m + s, alpha=0.25)
            ax.set_title(name)
            ax.set_xlabel(f"channel index (sample of {len(idx)})")
            ax.set_ylabel("activation")
        for ax in axes.flat[len(names) :]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7, loc="best")
        fig.suptitle(f"{title}: excitation, {kind.replace('_', '-')}", fontsize=10)
        paths += save_figure(fig, out_dir, f"excitation_{kind}")
    return paths


def write(result: dict, out_dir: Path) -> Path:
    return write_atomic(out_dir / "excitation.json", json.dumps(result))
