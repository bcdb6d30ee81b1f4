"""Seed spreads that borrow strength from the study's other rows: empirical-Bayes moderated variances in the
manner of Smyth (2004, *Linear models and empirical Bayes methods for assessing differential expression*,
limma's ``squeezeVar``).

A study's comparisons (or rows) each estimate a seed variance s_g² on d_g degrees of freedom, 2-4 at a few
seeds. Taking the true variances as draws from a scaled inverse chi-square prior (s0², d0), the posterior
estimate of each is

    s̃_g² = (d0·s0² + d_g·s_g²) / (d0 + d_g)   on   d0 + d_g   degrees of freedom (at most Σ d_g),

with s0² and d0 fitted to the s_g² by the method of moments on log s_g² (Smyth's eq. 7-8). Variances that
agree give d0 = ∞: one pooled variance. Variances that differ give a small d0 and little pooling. Before a
full pooling, a unit whose spread clearly differs from the others' (two-sided F test against the pooled
variance, ``OWN_LEVEL``) keeps its own variance and df, and the prior is fitted without it. Units that share a
row (Δs against one baseline) are correlated: they pool fewer df than their sum (``effective_df``), and their
log-variances scatter less than independent ones would (the moments allow for it). A lone unit is not
moderated. numpy and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from . import distributions as dist

OWN_LEVEL = 0.25  # a unit whose s² lies outside the prior's two-sided 75% F range keeps its own spread


@dataclass(frozen=True)
class Prior:
    """The study's prior for one seed variance: ``var`` (s0²) on ``df`` (d0; inf: one pooled spread, 0: none),
    ``total_df`` the units' df together (the most a moderated variance may claim), and the units kept apart."""

    var: float = math.nan
    df: float = 0.0
    total_df: float = 0.0
    own: tuple = ()  # indices of units that keep their own spread

    def moderate(self, var: float, df: float, index: int | None = None) -> tuple[float, float]:
        """(moderated variance, its df) of a unit with ``var`` on ``df``; unchanged without a prior, for a
        unit kept apart (``index`` in ``own``), and for a unit without a variance."""
        if not self.df > 0 or not df > 0 or math.isnan(var) or (index is not None and index in self.own):
            return var, df
        if math.isinf(self.df):
            return self.var, self.total_df
        return (self.df * self.var + df * var) / (self.df + df), min(self.df + df, self.total_df)


NONE = Prior()


def _trigamma_inverse(x: float) -> float:
    """y > 0 with trigamma(y) = x (x > 0), by bisection on log y: trigamma falls from ∞ to 0."""
    from scipy import optimize, special

    return float(math.exp(optimize.brentq(lambda u: float(special.polygamma(1, math.exp(u))) - x, -30.0, 30.0)))


SHARED_CORR = 0.5  # corr(s_i², s_k²) of two Δs that share a row (corr(Δ_i, Δ_k) = ±1/2 at equal spreads)


def _moments(var: np.ndarray, df: np.ndarray, rho: float = 0.0) -> tuple[float, float]:
    """(s0², d0) of Smyth's method of moments; d0 = inf when the spread of log s² is no more than sampling.
    ``rho``: the units' mean pairwise correlation, which shrinks their sample variance by 1 - rho."""
    from scipy import special

    e = np.log(var) - special.digamma(df / 2) + np.log(df / 2)
    excess = float(e.var(ddof=1) - (1 - rho) * special.polygamma(1, df / 2).mean())
    if excess <= 0:
        return float((df * var).sum() / df.sum()), math.inf  # one spread: the classical pooled variance
    d0 = 2 * _trigamma_inverse(excess)
    return float(math.exp(e.mean() + special.digamma(d0 / 2) - math.log(d0 / 2))), d0


def fit(units: Iterable[tuple[float, float]], members: Sequence[tuple[str, str | None]] | None = None) -> Prior:
    """The prior of ``units`` [(s², df), ...] (units with df <= 0 or no variance are left out); fewer than
    two usable units: no prior. Units with s² = 0 (runs that agree to the digit) count in the pooled variance
    but not in the log-moments. ``members``: the rows each unit involves; units that share a row are
    correlated (a Δ's baseline is another Δ's too), which lowers the df they pool (``effective_df``)."""
    usable = [(i, float(v), float(d)) for i, (v, d) in enumerate(units) if d > 0 and not math.isnan(v)]
    if len(usable) < 2:
        return Prior(total_df=sum(d for _, _, d in usable))
    prior = _fit(usable, members, ())
    if not math.isinf(prior.df):  # a finite prior df already moderates each unit in proportion
        return prior
    outside = tuple(i for i, v, d in usable if _outside(v, d, prior))
    if outside and len(usable) - len(outside) >= 2:
        prior = _fit([u for u in usable if u[0] not in outside], members, outside)
    elif outside:
        return Prior(total_df=sum(d for _, _, d in usable), own=tuple(i for i, _, _ in usable))
    return prior


def shared_pairs(index: Iterable[int], members: Sequence[tuple[str, str | None]] | None) -> tuple[int, int]:
    """(pairs of units that share a row, all pairs) among the units ``index``."""
    if members is None:
        return 0, 1
    sets = [set(members[i]) for i in index]
    pairs = [(j, k) for j in range(len(sets)) for k in range(j + 1, len(sets))]
    return sum(1 for j, k in pairs if sets[j] & sets[k]), max(len(pairs), 1)


def effective_df(df: np.ndarray, shared: int) -> float:
    """The df of the df-weighted mean of unit variances when ``shared`` pairs of them correlate at
    ``SHARED_CORR`` (equal df: m·d / (1 + 2·shared·SHARED_CORR / m)); Σ df without sharing."""
    m, d = len(df), float(df.mean())
    return m * m * d / (m + 2 * shared * SHARED_CORR)


def _fit(usable, members, own: tuple) -> Prior:
    var = np.array([v for _, v, _ in usable])
    df = np.array([d for _, _, d in usable])
    shared, pairs = shared_pairs([i for i, _, _ in usable], members)
    total = effective_df(df, shared)
    positive = var > 0
    if positive.sum() < 2:
        return Prior(float((df * var).sum() / df.sum()), math.inf, total, own)
    s0, d0 = _moments(var[positive], df[positive], SHARED_CORR * shared / pairs)
    if math.isinf(d0):
        s0 = float((df * var).sum() / df.sum())
    return Prior(s0, d0, total, own)


def _outside(var: float, df: float, prior: Prior) -> bool:
    """Whether s² on ``df`` lies outside the two-sided ``OWN_LEVEL`` range of s0²·F(df, d0)."""
    if not prior.df > 0 or not prior.var > 0:
        return False
    if math.isinf(prior.df):
        lo, hi = (dist.chi2_ppf(q, df) / df for q in (OWN_LEVEL / 2, 1 - OWN_LEVEL / 2))
    else:
        lo, hi = (dist.f_ppf(q, df, prior.df) for q in (OWN_LEVEL / 2, 1 - OWN_LEVEL / 2))
    return not lo <= var / prior.var <= hi


def moderated_rows(samples: dict) -> dict:
    """{row: its Estimate} with each row's seed variance moderated across the rows of ``samples``
    ({row: inference.Sample} in one metric)."""
    from . import inference as inf

    keys = list(samples)
    units = [inf.seed_unit(samples[k]) for k in keys]
    prior = fit(units)
    return {k: inf.row_estimate(samples[k], prior.moderate(*u, i)) for i, (k, u) in enumerate(zip(keys, units))}


def moderated_deltas(pairs: dict, baselines: dict | None = None) -> dict:
    """{row: Estimate of Δ} for ``pairs`` {row: (its Sample, its baseline's Sample)}: the per-seed Δ variances
    of paired comparisons moderated across the paired comparisons, and the row variances of unpaired ones
    across the rows they involve. ``baselines`` {row: its baseline}: which Δs share a row (default: all do,
    as in a table whose rows share one baseline)."""
    from . import inference as inf

    units = {k: inf.delta_units(a, b) for k, (a, b) in pairs.items()}
    paired = [k for k, u in units.items() if len(u) == 1]
    members = [(k, baselines[k]) if baselines else (k, None) for k in paired]
    delta_prior = fit([units[k][0] for k in paired], members)
    rows = {id(s): s for k, (a, b) in pairs.items() if len(units[k]) == 2 for s in (a, b)}
    row_ids = list(rows)
    row_prior = fit([inf.seed_unit(rows[i]) for i in row_ids])
    out = {}
    for k, (a, b) in pairs.items():
        if len(units[k]) == 1:
            mod = [delta_prior.moderate(*units[k][0], paired.index(k))]
        elif len(units[k]) == 2:
            mod = [row_prior.moderate(*u, row_ids.index(id(s))) for u, s in zip(units[k], (a, b))]
        else:
            mod = None
        out[k] = inf.compare(a, b, mod)
    return out
