"""Studies with a known truth, to measure what the table's statistics promise: coverage, false verdicts, and
the runs an adaptive study spends, a factorial sweep's contrasts (``python -m senet_ablate.study.simulate``;
docs/statistics.md quotes it).

A simulated study: N test images, each with a difficulty z_i ~ N(0, 1); a run of row r with seed j errs on
image i with probability Φ(a_r + s·(z_i + γ·z'_ri) + u_rj), where u_rj is the seed's effect (normal by default,
``seeds``: heavy-tailed; ``bad`` rows: 10% of runs 2 points worse, a skewed law), τ_r its scale (rows may
differ), shared across the rows that ran seed j with correlation ρ (pairing), and γ a row's own image effects.
Near-duplicate images (``copies`` > 1) repeat one image's difficulty and outcome ``copies`` times. A row's
population error is the expectation over images and seeds, computed in closed form (normal seeds) or by a large
Monte Carlo (other seed laws, once per row).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from . import distributions as dist
from . import inference as inf
from . import sequential as seq
from .pooling import moderated_deltas


@dataclass(frozen=True)
class World:
    """The truth of a simulated study: population errors (%) per row, seed and image parameters."""

    errs: tuple = (17.0, 17.0)
    n_img: int = 2000
    s: float = 1.5  # image difficulty scale (large: the images decide; small: runs disagree on images)
    tau: tuple = (0.1,)  # seed scale per row (one value: every row)
    rho: float = 0.8  # seed effects shared by rows that ran the same seed
    seeds: str = "normal"  # normal | heavy (Student t, 3 df)
    bad: tuple = ()  # rows whose runs are 2 points worse with probability 0.1 (skewed; the same mean error)
    gamma: float = 0.0  # a row's own image effects
    copies: int = 1  # near-duplicates per image

    def scale(self, r: int) -> float:
        return self.tau[r] if len(self.tau) > 1 else self.tau[0]


def _seed_draws(rng, world: World, n: int):
    """Seed effects of ``n`` runs in units of τ, mean 0, variance 1 (before the skewed law's shift)."""
    if world.seeds == "heavy":
        return rng.standard_t(3, size=n) / math.sqrt(3.0)
    return rng.standard_normal(n)


def _shift(world: World, r: int) -> float:
    """A bad run's extra offset in a row of ``bad``: about 2 points of error."""
    return 0.02 / _density(world, r) if r in world.bad else 0.0


def _density(world: World, r: int) -> float:
    """d(error)/d(offset) at the row's error: the normal density at its probit, scaled."""
    sd = math.sqrt(1 + world.s**2 * (1 + world.gamma**2) + world.scale(r) ** 2)
    return float(dist.norm_pdf(dist.norm_ppf(world.errs[r] / 100)) / sd)


@lru_cache(maxsize=512)
def offset(world: World, r: int) -> float:
    """a_r giving row r its population error, with the skewed law's bad runs counted in the mean."""
    from scipy import optimize

    sd_img = world.s * math.sqrt(1 + world.gamma**2)
    if world.seeds == "normal" and r not in world.bad:
        return float(dist.norm_ppf(world.errs[r] / 100) * math.sqrt(1 + sd_img**2 + world.scale(r) ** 2))
    rng = np.random.default_rng(12345)
    u = world.scale(r) * _seed_draws(rng, world, 200_000)
    u = u + _shift(world, r) * (rng.random(len(u)) < 0.1)
    target = world.errs[r] / 100

    def gap(a: float) -> float:
        return float(dist.norm_cdf((a + u) / math.sqrt(1 + sd_img**2)).mean()) - target

    return float(optimize.brentq(gap, -20, 20))


def draw(rng: np.random.Generator, world: World, n: int) -> list[inf.Sample]:
    """One study: a Sample per row, ``n`` seeds each (per-image values in %)."""
    unique = world.n_img // world.copies
    z = rng.standard_normal(unique)
    v = _seed_draws(rng, world, n)
    out = []
    for r in range(len(world.errs)):
        own = _seed_draws(rng, world, n)
        u = world.scale(r) * (math.sqrt(world.rho) * v + math.sqrt(1 - world.rho) * own) / 1.0
        u = u + _shift(world, r) * (rng.random(n) < 0.1)
        zr = z + world.gamma * rng.standard_normal(unique)
        p = dist.norm_cdf(offset(world, r) + world.s * zr[None, :] + u[:, None])
        wrong = 100.0 * (rng.random(p.shape) < p)
        if world.copies > 1:
            wrong = np.repeat(wrong, world.copies, axis=1)
        out.append(inf.Sample(wrong.mean(1), tuple(range(n)), wrong))
    return out


# ---------------------------------------------------------------------------------------------- coverage
def coverage(world: World, n: int, reps: int, seed: int = 0, pooled: bool = True) -> dict:
    """Share of ``reps`` studies whose 95% CIs cover the truth: each row's error and each row's Δ vs row 0
    (the spreads moderated across the rows when ``pooled``)."""
    rng = np.random.default_rng(seed)
    rows = deltas = 0
    k = len(world.errs)
    for _ in range(reps):
        data = draw(rng, world, n)
        pairs = {i: (data[i], data[0]) for i in range(1, k)}
        ests = moderated_deltas(pairs) if pooled else {i: inf.compare(*pairs[i]) for i in pairs}
        for i, est in ests.items():
            lo, hi = est.interval(0.05)
            deltas += lo <= world.errs[i] - world.errs[0] <= hi
        est = inf.row_estimate(data[0])
        rows += abs(est.mean - world.errs[0]) <= est.half_width()
    return {"row": rows / reps, "delta": deltas / (reps * (k - 1))}


# ---------------------------------------------------------------------------------------------- fixed tables
def table_verdicts(data: list[inf.Sample], margin: float | None, alpha: float = 0.05, pooled: bool = True) -> list[str]:
    """The verdicts of rows 1.. vs row 0 as a table gives them: one budget, Bonferroni over the rows."""
    pairs = {i: (data[i], data[0]) for i in range(1, len(data))}
    ests = moderated_deltas(pairs) if pooled else {i: inf.compare(*pairs[i]) for i in pairs}
    level = alpha / len(pairs)
    return [inf.verdict(ests[i], level, margin) for i in sorted(ests)]


def two_budgets(data: list[inf.Sample], margin: float, alpha: float = 0.05) -> list[str]:
    """The verdicts of the earlier method, for comparison: Holm over the tests of Δ = 0 and, separately, Holm
    over the TOST tests, each family at α, unpooled spreads."""
    ests = [inf.compare(r, data[0]) for r in data[1:]]
    p = _holm([e.p_value() for e in ests])
    q = _holm([e.p_equivalent(margin) for e in ests])
    out = []
    for e, pi, qi in zip(ests, p, q):
        if pi < alpha:
            out.append(inf.WORSE if e.mean > 0 else inf.BETTER)
        else:
            out.append(inf.EQUIVALENT if qi < alpha else inf.UNRESOLVED)
    return out


def _holm(p) -> np.ndarray:
    p = np.asarray(p, float)
    order = np.argsort(p)
    adj = np.maximum.accumulate(np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order]))
    out = np.empty_like(adj)
    out[order] = adj
    return out


def false_claim(verdicts: Iterable[str], deltas: Iterable[float], margin: float | None) -> bool:
    """Whether any verdict is false: better / worse where Δ = 0 (or of the wrong sign), equivalent where
    |Δ| >= margin."""
    for v, d in zip(verdicts, deltas):
        if v in (inf.BETTER, inf.WORSE) and (d == 0 or (v == inf.WORSE) != (d > 0)):
            return True
        if v == inf.EQUIVALENT and margin is not None and abs(d) >= margin:
            return True
    return False


def family_error(world: World, n: int, reps: int, margin: float, seed: int = 0) -> dict:
    """Share of studies with any false claim: one budget (this table) vs two Holm budgets (the earlier one)."""
    rng = np.random.default_rng(seed)
    deltas = [e - world.errs[0] for e in world.errs[1:]]
    one = two = 0
    for _ in range(reps):
        data = draw(rng, world, n)
        one += false_claim(table_verdicts(data, margin), deltas, margin)
        two += false_claim(two_budgets(data, margin), deltas, margin)
    return {"one budget": one / reps, "two budgets": two / reps}


# ---------------------------------------------------------------------------------------------- adaptive
@dataclass
class Outcome:
    """One comparison's adaptive course: its verdict, the seeds it used, and the fixed designs' verdicts at
    every n on the same draws."""

    verdict: str
    n: int
    fixed: dict = field(default_factory=dict)  # {n: verdict of a fixed n-seed table}


def adaptive_run(rng: np.random.Generator, world: World, plan: seq.Plan, margin: float | None) -> Outcome:
    """One two-row adaptive study (row 1 vs row 0), every seed drawn at once: a look at n reads the first n."""
    data = draw(rng, world, plan.max_seeds)
    done = {"a": set(range(plan.max_seeds)), "b": set(range(plan.max_seeds))}
    plan = replace(plan, margin={"top1_err": margin} if margin else {}, compared={"a": "b"}, shares={"a": plan.alpha})
    d = seq.replay({"a": data[1], "b": data[0]}, done, plan)["a"]
    fixed = {}
    for n in range(2, plan.max_seeds + 1):
        pair = {"a": (seq.subset(data[1], range(n)), seq.subset(data[0], range(n)))}
        fixed[n] = inf.verdict(moderated_deltas(pair)["a"], plan.alpha, margin)
    return Outcome(d.verdict, d.n, fixed)


def adaptive_curve(
    world: World, reps: int, max_seeds: int = 10, first: int = 3, margin: float | None = None, seed: int = 0
) -> dict:
    """For one truth: the adaptive design's false-verdict and resolution rates and expected runs per row, with
    the fixed designs' resolution rates at every n (a fixed n-seed table spends n runs per row)."""
    rng = np.random.default_rng(seed)
    plan = seq.Plan.make(range(first), max_seeds)
    outs = [adaptive_run(rng, world, plan, margin) for _ in range(reps)]
    delta = world.errs[1] - world.errs[0]
    resolved = np.mean([o.verdict != inf.UNRESOLVED for o in outs])
    fixed = {n: float(np.mean([o.fixed[n] != inf.UNRESOLVED for o in outs])) for n in outs[0].fixed}
    matched = next((n for n in sorted(fixed) if fixed[n] >= resolved - 1e-9), None)
    return {
        "delta": delta,
        "runs": float(np.mean([o.n for o in outs])),
        "resolved": float(resolved),
        "false": float(np.mean([false_claim([o.verdict], [delta], margin) for o in outs])),
        "fixed": fixed,
        "fixed_false": {n: float(np.mean([false_claim([o.fixed[n]], [delta], margin) for o in outs])) for n in fixed},
        "matched": matched,
    }


def grid_draw(
    rng: np.random.Generator, truth: tuple, n: int, sd: float = 0.3, spreads: tuple = (1, 1, 1, 1)
) -> list[inf.Sample]:
    """The four rows of a 2 × 2 study, seeds only: row r's run with seed j is truth[r] + spreads[r]·(u_j + e_rj),
    u_j a seed effect shared by the rows (pairing) and e_rj the row's own, both N(0, sd²)."""
    shared = rng.normal(0, sd, n)
    rows = [t + shared + rng.normal(0, sd, n) for t in truth]
    return [inf.Sample(t + f * (v - t), tuple(range(n))) for t, f, v in zip(truth, spreads, rows)]


def factorial_error(truth: tuple, n: int, reps: int, spreads: tuple = (1, 1, 1, 1), seed: int = 0) -> dict:
    """2 × 2 studies (rows (a1,b1), (a1,b2), (a2,b1), (a2,b2) with population errors ``truth``), read by
    ``factorial.py``: the share of studies with a false claim among the contrasts whose truth is 0 (or of the
    wrong sign), and the share that find the first main effect (factor a) when it is not 0."""
    from . import factorial

    spec = {"adhoc": True, "keys": ["a", "b"], "rows": {}}
    for a, b in ((1, 1), (1, 2), (2, 1), (2, 2)):
        spec["rows"][f"a{a}b{b}"] = {"values": {"a": str(a), "b": str(b)}}
    cons = factorial.contrasts(factorial.grid(spec), spec["rows"])
    true = [sum(w * truth[list(spec["rows"]).index(k)] for k, w in c.weights.items()) for c in cons]
    rng = np.random.default_rng(seed)
    false = found = 0
    for _ in range(reps):
        data = dict(zip(spec["rows"], grid_draw(rng, truth, n, spreads=spreads)))
        said = [e.verdict for e in factorial.effects(data, cons, "top1_err", 0.05, None)]
        false += any(v != inf.UNRESOLVED and (t == 0 or (v == inf.WORSE) != (t > 0)) for v, t in zip(said, true))
        found += true[0] != 0 and said[0] == (inf.WORSE if true[0] > 0 else inf.BETTER)
    return {"false": false / reps, "found": found / reps}


def main() -> None:  # pragma: no cover - the docs' figures, minutes of CPU
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("coverage", "family", "adaptive", "unstable", "factorial"))
    ap.add_argument("--reps", type=int, default=1000)
    args = ap.parse_args()
    from . import simulate_report

    simulate_report.run(args.what, args.reps)


if __name__ == "__main__":  # pragma: no cover
    main()
