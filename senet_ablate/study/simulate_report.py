"""The simulations docs/statistics.md quotes, printed as Markdown tables
(``python -m senet_ablate.study.simulate coverage|family|unstable|adaptive|factorial --reps N``; minutes of CPU
each)."""

from __future__ import annotations

import math
import time

import numpy as np

from . import inference as inf
from . import simulate as sm

FOUR = (17.0, 17.0, 17.0, 17.0)
REGIMES = {  # four rows of one population error; Δ of rows 1-3 vs row 0, spreads pooled across them
    "test images dominate (CIFAR-like)": sm.World(errs=FOUR, n_img=10000, s=4.0, tau=(0.01,)),
    "seeds and images": sm.World(errs=FOUR, s=1.5, tau=(0.1,)),
    "seeds dominate": sm.World(errs=FOUR, s=1.0, tau=(0.15,)),
    "spreads differ 3×": sm.World(errs=FOUR, s=1.0, tau=(0.05, 0.15, 0.05, 0.15)),
    "skewed seeds (rows 1-3: 10% of runs 2 points worse)": sm.World(errs=FOUR, s=1.0, tau=(0.1,), bad=(1, 2, 3)),
    "heavy-tailed seeds (t, 3 df)": sm.World(errs=FOUR, s=1.0, tau=(0.15,), seeds="heavy"),
    "each row its own image effects": sm.World(errs=FOUR, s=1.5, tau=(0.1,), gamma=0.3),
    "near-duplicate images (5 copies each)": sm.World(errs=FOUR, s=1.5, tau=(0.1,), copies=5),
}


def coverage(reps: int) -> list[str]:
    lines = ["| regime | n | row CI | Δ CI (pooled) | Δ CI (own spread) |", "|---|---:|---:|---:|---:|"]
    for name, world in REGIMES.items():
        for n in (2, 3, 5, 10):
            pooled = sm.coverage(world, n, reps, seed=n)
            own = sm.coverage(world, n, reps, seed=n, pooled=False)
            lines.append(f"| {name} | {n} | {pooled['row']:.3f} | {pooled['delta']:.3f} | {own['delta']:.3f} |")
    return lines


def family(reps: int) -> list[str]:
    mixed = sm.World(errs=(17.0,) * 4 + (17.5,) * 4, n_img=10000, s=6.0, tau=(0.01,))
    null = sm.World(errs=(17.0,) * 8, s=1.0, tau=(0.05, 0.15) * 4)
    lines = ["| study | n | one budget | two Holm budgets (before) |", "|---|---:|---:|---:|"]
    for name, world in (("3 rows at Δ 0, 4 at Δ = margin 0.5", mixed), ("7 rows at Δ 0, spreads differ 3×", null)):
        for n in (3, 5):
            r = sm.family_error(world, n, reps, 0.5, seed=n)
            lines.append(f"| {name} | {n} | {r['one budget']:.3f} | {r['two budgets']:.3f} |")
    return lines


def unstable(reps: int) -> list[str]:
    """Two rows of one population error, the second with 10% of its runs 2 points worse."""
    lines = ["| test images | n | false better/worse (95% CI of Δ misses 0) |", "|---|---:|---:|"]
    worlds = {
        "dominate (10,000, CIFAR-like)": sm.World(errs=(17.0, 17.0), n_img=10000, s=4.0, tau=(0.05,), bad=(1,)),
        "share with seeds (2,000)": sm.World(errs=(17.0, 17.0), s=1.5, tau=(0.1,), bad=(1,)),
    }
    for (name, world), n in ((w, n) for w in worlds.items() for n in (3, 5, 10)):
        rng = np.random.default_rng(n)
        false = 0
        for _ in range(reps):
            data = sm.draw(rng, world, n)
            lo, hi = inf.compare(data[1], data[0]).interval(0.05)
            false += not lo <= 0 <= hi
        lines.append(f"| {name} | {n} | {false / reps:.3f} |")
    return lines


def seed_sd(world: sm.World, reps: int = 200) -> float:
    """The SD of one seed's Δ (row 1 - row 0) in ``world`` at Δ = 0: the unit of the curve's x axis."""
    rng = np.random.default_rng(99)
    zero = sm.World(**{**world.__dict__, "errs": (world.errs[0], world.errs[0])})
    return math.sqrt(np.mean([inf.delta_units(*sm.draw(rng, zero, 5)[::-1])[0][0] for _ in range(reps)]))


def adaptive(reps: int) -> list[str]:
    base = sm.World(errs=(17.0, 17.0), s=1.0, tau=(0.15,))
    sd = seed_sd(base)
    head = "| Δ / σ | adaptive: runs per row | resolved | false | fixed n = 3 | n = 5 | n = 10 | matched n | saving |"
    lines = [f"σ (one seed's Δ) = {sd:.2f} points; max_seeds 10, first look at 3, margin 0.5, α 0.05.", "", head]
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for ratio in (0, 0.5, 1, 1.5, 2, 3, 4, 6, 10):
        world = sm.World(errs=(17.0, 17.0 + ratio * sd), s=1.0, tau=(0.15,))
        r = sm.adaptive_curve(world, reps, margin=0.5, seed=int(10 * ratio))
        f = r["fixed"]
        m = r["matched"]
        saving = f"{1 - r['runs'] / m:+.0%}" if m else "none resolves as often"
        lines.append(
            f"| {ratio:g} | {r['runs']:.2f} | {r['resolved']:.2f} | {r['false']:.3f} | {f[3]:.2f} | {f[5]:.2f} | "
            f"{f[10]:.2f} | {m if m else '> 10'} | {saving} |"
        )
    return lines


def factorial(reps: int) -> list[str]:
    """A 2 × 2 study's contrasts, seeds only (σ = 0.3 a cell): false claims with no effect, equal spreads and
    two rows' 3× the others'; then the power for a main effect of 2σ, 3σ and 6σ."""
    null = (10.0,) * 4
    lines = ["| seeds per row | no effect, equal spreads | no effect, spreads 3× apart |", "|---:|---:|---:|"]
    for n in (3, 5, 10):
        same = sm.factorial_error(null, n, reps)["false"]
        apart = sm.factorial_error(null, n, reps, spreads=(1, 1, 3, 3))["false"]
        lines.append(f"| {n} | {100 * same:.1f}% | {100 * apart:.1f}% |")
    lines += ["", "| main effect | seeds | found | false claims beside it |", "|---:|---:|---:|---:|"]
    for k in (2, 3, 6):
        for n in (3, 5):
            r = sm.factorial_error((10.0, 10.0, 10.0 + 0.3 * k, 10.0 + 0.3 * k), n, reps)
            lines.append(f"| {k}σ | {n} | {100 * r['found']:.1f}% | {100 * r['false']:.1f}% |")
    return lines


def run(what: str, reps: int) -> None:
    t = time.time()
    tables = {"coverage": coverage, "family": family, "unstable": unstable, "adaptive": adaptive}
    table = {**tables, "factorial": factorial}[what](reps)
    print("\n".join(table))
    print(f"\n({reps} simulated studies a cell, {time.time() - t:.0f} s)")
