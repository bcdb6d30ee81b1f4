"""The questions an ablation asks beyond "row vs baseline": main effects and interactions of a factorial sweep,
and which setting is best.

**Contrasts.** When a study's rows form a full grid of two or more factors (``se.squeeze=avg,max
se.gate=sigmoid,tanh``: 2 × 2), each factor's main effect is the mean over the other factors' settings of
(row at a level − row at the factor's first level), and the interaction of two factors is a difference of
differences: how much the first factor's effect changes between the second's first level and another
(Montgomery, *Design and Analysis of Experiments*, ch. 5–6). A contrast Σ w_r · row_r (Σ w_r = 0) is read as
Δ = A − B with A = Σ_{w>0} w·row and B = Σ_{w<0} |w|·row, built per seed and per test image from the runs, so
its uncertainty is ``inference.compare``'s: seeds × images, paired by seed (every cell must have run the
seeds used), the seed spread moderated across the family (``pooling.py``), one budget α over the family's
contrasts (Bonferroni), and the same verdicts as a table row.

**The best setting.** Among k rows (or a factor's k levels), a row is *not distinguishable from the best*
unless some other row is better than it by the verdict rule at level α / (k(k−1)/2): every pair, Bonferroni.
This is multiple comparisons with the best in the manner of Hsu (1984) with a Bonferroni bound in place of
his Dunnett-type constant: conservative, so the set it names may be larger than Hsu's.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from . import inference as inf
from .compare import WITH_CI
from .pooling import moderated_deltas


@dataclass(frozen=True)
class Factor:
    """A config key the sweep varied, with its levels in the order the rows show them."""

    key: str
    levels: tuple[str, ...]


@dataclass(frozen=True)
class Contrast:
    """Σ weights[row] · row over the grid: a main effect (``kind`` "main") or a two-factor interaction."""

    name: str
    kind: str
    weights: dict


@dataclass
class Effect:
    """One contrast read in one metric: Δ, the interval its verdict uses (at ``level``), the verdict."""

    contrast: Contrast
    metric: str
    estimate: inf.Estimate
    level: float
    verdict: str
    seeds: int

    @property
    def interval(self) -> tuple[float, float]:
        return self.estimate.interval(self.level)


def grid(spec: dict) -> list[Factor] | None:
    """The factors of an ad-hoc study whose rows are every combination of two or more keys' values, else None."""
    keys = spec.get("keys") or []
    rows = spec.get("rows") or {}
    if len(keys) < 2 or not spec.get("adhoc"):
        return None
    values = [r.get("values") or {} for r in rows.values()]
    factors = [Factor(k, tuple(dict.fromkeys(v.get(k) for v in values))) for k in keys]
    cells = {tuple(v.get(k) for k in keys) for v in values}
    full = set(itertools.product(*(f.levels for f in factors)))
    if cells != full or len(values) != len(full) or any(len(f.levels) < 2 for f in factors):
        return None
    return factors


def contrasts(factors: list[Factor], rows: dict) -> list[Contrast]:
    """Main effects (each level vs the first) and two-factor interactions over ``rows`` ({row: its spec}).

    A main effect averages over the other factors' cells; an interaction (f: l vs first) × (g: m vs first)
    is (f's effect at g = m) − (f's effect at g's first level), averaged over the remaining factors."""
    values = {k: r["values"] for k, r in rows.items()}
    out = []
    for f in factors:
        share = 1 / (len(values) / len(f.levels))
        for lv in f.levels[1:]:
            w = {k: share * ((v[f.key] == lv) - (v[f.key] == f.levels[0])) for k, v in values.items()}
            out.append(Contrast(f"{f.key}: {lv} − {f.levels[0]}", "main", _nonzero(w)))
    for f, g in itertools.combinations(factors, 2):
        share = 1 / (len(values) / (len(f.levels) * len(g.levels)))
        for lf, lg in itertools.product(f.levels[1:], g.levels[1:]):
            w = {
                k: share * _sign(v[f.key], lf, f.levels[0]) * _sign(v[g.key], lg, g.levels[0])
                for k, v in values.items()
            }
            name = f"{f.key} × {g.key}: {lf} − {f.levels[0]}, {lg} vs {g.levels[0]}"
            out.append(Contrast(name, "interaction", _nonzero(w)))
    return out


def _sign(value: str, level: str, first: str) -> int:
    return 1 if value == level else -1 if value == first else 0


def _nonzero(weights: dict) -> dict:
    return {k: w for k, w in weights.items() if w != 0}


def combine(samples: dict, weights: dict) -> tuple[inf.Sample, inf.Sample] | None:
    """(A, B) of a contrast: per seed (the seeds every weighted row ran, each once) Σ w·row over the positive
    and the negative weights; per image too when every row has predictions. None with fewer than 2 seeds."""
    used = [samples[k] for k in weights]
    if any(s.n == 0 or len(set(s.seeds)) != s.n for s in used):
        return None
    seeds = sorted(set.intersection(*(set(s.seeds) for s in used)))
    if len(seeds) < 2:
        return None
    images = all(s.per_image is not None for s in used)

    def side(sign: int) -> inf.Sample:
        values, per_image = np.zeros(len(seeds)), 0.0
        for k, w in weights.items():
            if np.sign(w) != sign:
                continue
            s = samples[k]
            order = inf.seed_order(s, seeds)
            values = values + abs(w) * s.values[order]
            per_image = per_image + abs(w) * s.per_image[order] if images else None
        return inf.Sample(values, tuple(seeds), per_image if images else None)

    return side(1), side(-1)


def effects(samples: dict, cons: list[Contrast], col: str, alpha: float, margin: float | None) -> list[Effect]:
    """Each contrast in ``col`` ({row: Sample}), its verdict at level α / m over the m contrasts that have an
    estimate (one family)."""
    higher = WITH_CI[col][1]
    norm = {c.name: math.sqrt(sum(w * w for w in c.weights.values())) for c in cons}
    # pooled on one scale: a contrast of unit norm has the seed variance of one cell, whatever its weights
    pairs = {c.name: combine(samples, {k: w / norm[c.name] for k, w in c.weights.items()}) for c in cons}
    pairs = {k: v for k, v in pairs.items() if v is not None}
    if not pairs:
        return []
    ests = {k: _scaled(est, norm[k]) for k, est in moderated_deltas(pairs).items()}
    level = alpha / len(pairs)
    return [
        Effect(c, col, ests[c.name], level, inf.verdict(ests[c.name], level, margin, higher), pairs[c.name][0].n)
        for c in cons
        if c.name in pairs
    ]


def _scaled(est: inf.Estimate, k: float) -> inf.Estimate:
    """The estimate of ``k`` times a contrast: its mean times k, its variances times k²."""
    parts = tuple(p * k * k for p in est.seed_parts)
    return inf.Estimate(est.mean * k, est.seed_var * k * k, est.seed_df, est.image_var * k * k, parts)


@dataclass
class Best:
    """Which of ``rows`` is best in ``metric``, which are not distinguishable from it, which are worse."""

    metric: str
    best: str
    tied: list
    worse: list
    level: float


def best(samples: dict, rows: list, col: str, alpha: float) -> Best | None:
    """Multiple comparisons with the best over ``rows`` (at least 3 with runs enough for an interval): a row is
    worse than the best when another row beats it at level α over the k(k−1)/2 pairs."""
    rows = [r for r in rows if r in samples and samples[r].n >= 2]
    if len(rows) < 3:
        return None
    higher = WITH_CI[col][1]
    pairs = {(a, b): (samples[a], samples[b]) for a, b in itertools.combinations(rows, 2)}
    ests = moderated_deltas(pairs)
    level = alpha / len(pairs)
    said = {ab: inf.verdict(est, level, None, higher) for ab, est in ests.items()}
    beaten = {a for (a, _), v in said.items() if v == inf.WORSE} | {b for (_, b), v in said.items() if v == inf.BETTER}
    mean = {r: float(np.mean(samples[r].values)) for r in rows}
    top = max(rows, key=mean.get) if higher else min(rows, key=mean.get)
    tied = [r for r in rows if r != top and r not in beaten]
    return Best(col, top, tied, [r for r in rows if r in beaten and r != top], level)


def p_adjusted(effect: Effect, alpha: float) -> float:
    """The contrast's p of Δ = 0, Bonferroni-adjusted to its family (NaN without an interval)."""
    p = effect.estimate.p_value()
    return p if math.isnan(p) else min(1.0, p * alpha / effect.level)


def level_samples(samples: dict, factor: Factor, rows: dict) -> dict:
    """{"key=level": Sample}: each level of ``factor`` averaged over the grid's other cells, per seed and
    image (the rows at that level, equal weights); levels whose cells share fewer than 2 seeds are left out."""
    out = {}
    for lv in factor.levels:
        mine = [k for k, r in rows.items() if r["values"][factor.key] == lv]
        both = combine(samples, {k: 1 / len(mine) for k in mine})
        if both is not None:
            out[f"{factor.key}={lv}"] = both[0]
    return out


def answers(samples: dict, spec: dict, col: str, alpha: float, margin: float | None) -> tuple[list, list]:
    """(effects, [(what, Best)]) of a study in ``col``: a full grid's main effects and interactions and, for
    each factor of 3 or more levels, its best level; a one-key sweep of 3 or more rows, or a preset's
    ``best`` rows, its best row."""
    mine = {k: v[col] for k, v in samples.items() if col in v}
    factors = grid(spec)
    if factors:
        found = effects(mine, contrasts(factors, spec["rows"]), col, alpha, margin)
        bests = [(f"{f.key} ", best(lv, list(lv), col, alpha)) for f in factors
                 for lv in [level_samples(mine, f, spec["rows"])] if len(f.levels) >= 3]  # fmt: skip
        return found, [(w, b) for w, b in bests if b is not None]
    wanted = spec.get("best")
    if wanted is True or (wanted is None and spec.get("adhoc") and len(spec.get("keys") or []) == 1):
        wanted = list(spec.get("rows") or {})
    found = best(mine, list(wanted), col, alpha) if wanted else None
    return [], [("", found)] if found is not None else []
