"""What a study table may conclude: every error and Δ with its uncertainty from both of its sources, the
seeds and the test images, a verdict per row, and the seeds a verdict would need.

The method, "seeds × images": a row's n runs are scored on the same N test images, a crossed design. The
variance of its mean error m is estimated without bias by a two-way random-effects decomposition,

    Var(m) = s_seed² / n  +  (s_image² - MS_interaction / n) / N

where s_seed² is the sample variance of the n run errors, s_image² the sample variance over the images of the
share of the row's runs that get an image wrong (in %), and MS_interaction the runs × images residual mean
square (counted by both other terms). A Δ between two rows scored on the same images takes the same form:
on the per-seed and per-image differences when both rows ran the same seeds (paired), else with both rows'
seed terms and the images always shared. The seed part has n - 1 degrees of freedom of its own, more when
the study's other rows lend theirs (``pooling.py``: empirical-Bayes moderated variances); the image part is
known to a fraction of a percent and taken as known. CIs and p-values use Student's t on Welch–Satterthwaite
degrees of freedom computed with the seed part at its one-sided 80% upper bound (``DF_QUANTILE``): plain
Welch–Satterthwaite is optimistic at 2-4 seeds. Without per-image predictions the image part is absent and
the tests are Student's, Welch's or the paired t-test on the seed values, which describe the test set rather
than the population. tests/test_inference.py and ``simulate.py`` measure coverage and error rates.

Verdicts (primary metric top-1 error, AP for detection) are read from one interval per row, Δ's two-sided
(1 - α/m) CI with m the comparisons of the table's metric (Bonferroni): ``better`` / ``worse`` when it
excludes 0, else ``equivalent`` when it lies inside ±margin, else ``unresolved``. Both kinds of claim share
the one budget α, as each row has at most one true null of the two. Plain numpy and scipy: the study side
never loads torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import distributions as dist

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

BETTER, WORSE, EQUIVALENT, UNRESOLVED = "better", "worse", "equivalent", "unresolved"
BASELINE, DID_NOT_TRAIN = "baseline", "did not train"


@dataclass
class Sample:
    """One row's trained runs in one metric: ``values`` (%) per run, their ``seeds``, and optionally
    ``per_image`` (runs × N, in %: 100 where a run is wrong on an image, else 0) on the shared test set."""

    values: np.ndarray
    seeds: tuple
    per_image: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.values)


# the degrees of freedom of a mean's t interval are Welch–Satterthwaite's with the seed variance taken at its
# one-sided 80% upper bound: plain Welch–Satterthwaite is optimistic at 2 degrees of freedom (its 95% CIs cover
# 91-93% when seeds and images both count); measured across regimes in tests/test_inference.py
DF_QUANTILE = 0.2


@dataclass
class Estimate:
    """A mean (of a row, or of a Δ) with the two parts of its variance: the seeds' (``seed_var``, on
    ``seed_df`` degrees of freedom) and the test images' (``image_var``, known to a fraction of a percent for
    thousands of images, so taken as known). Intervals and tests use Student's t on ``df``."""

    mean: float
    seed_var: float
    seed_df: float
    image_var: float = 0.0
    seed_parts: tuple = ()  # the variance of one run per row, per seed term: (s_a², s_b²), or (s_Δ²,) paired

    @property
    def se(self) -> float:
        return math.sqrt(self.seed_var + self.image_var) if not math.isnan(self.seed_var) else math.nan

    @property
    def df(self) -> float:
        """Welch–Satterthwaite degrees of freedom of seed + image variance, the seed part at its 80% upper
        bound (``DF_QUANTILE``); the seeds' own df without an image part, infinite without a seed part."""
        if math.isnan(self.seed_var) or not self.seed_df > 0:
            return math.nan
        if self.seed_var == 0:
            return math.inf
        up = self.seed_var * self.seed_df / dist.chi2_ppf(DF_QUANTILE, self.seed_df)
        return (up + self.image_var) ** 2 / (up * up / self.seed_df)

    def half_width(self, level: float = 0.95) -> float:
        """Half-width of the two-sided ``level`` interval (NaN without a seed spread, n < 2)."""
        if math.isnan(self.df):
            return math.nan
        return float(dist.t_ppf(0.5 + level / 2, self.df) * self.se)

    def interval(self, level: float) -> tuple[float, float]:
        """The two-sided (1 - ``level``) interval of the mean: (NaN, NaN) without a seed spread; a point
        without any spread."""
        h = self.half_width(1 - level)
        return self.mean - h, self.mean + h

    def p_value(self) -> float:
        """Two-sided p of mean = 0 (no spread at all: 1 when the mean is 0, else 0). Without an image part:
        Student's, Welch's or the paired t-test's p."""
        if math.isnan(self.df) or math.isnan(self.mean):
            return math.nan
        if self.se == 0:
            return 1.0 if self.mean == 0 else 0.0
        return float(2 * dist.t_sf(abs(self.mean) / self.se, self.df))

    def p_equivalent(self, margin: float) -> float:
        """TOST: the larger of the two one-sided p-values of |mean| >= ``margin``."""
        if math.isnan(self.df) or math.isnan(self.mean) or not margin > 0:
            return math.nan
        if self.se == 0:
            return 0.0 if abs(self.mean) < margin else 1.0
        lower = dist.t_sf((self.mean + margin) / self.se, self.df)
        upper = dist.t_cdf((self.mean - margin) / self.se, self.df)
        return float(max(lower, upper))


def satterthwaite(terms: Iterable[tuple[float, float]]) -> tuple[float, float]:
    """(total variance, Welch–Satterthwaite degrees of freedom) of a sum of variance terms [(v, df), ...]; a
    negative term (a mean square subtracted) counts in both; a total that is not positive keeps the positive
    terms alone (conservative)."""
    terms = [(v, d) for v, d in terms if v != 0 and d > 0]
    total = sum(v for v, _ in terms)
    if total <= 0:
        terms = [(v, d) for v, d in terms if v > 0]
        total = sum(v for v, _ in terms)
    if not terms:
        return 0.0, math.inf
    denom = sum(v * v / d for v, d in terms)
    return total, (total * total / denom if denom > 0 else math.inf)


def interaction(x: np.ndarray) -> float:
    """The runs × images interaction mean square of a (runs, images) table: two-way ANOVA, one value a cell."""
    n, n_img = x.shape
    if n < 2 or n_img < 2:
        return 0.0
    g = x.mean()
    ss = ((x - g) ** 2).sum() - n_img * ((x.mean(1) - g) ** 2).sum() - n * ((x.mean(0) - g) ** 2).sum()
    return max(0.0, float(ss) / ((n - 1) * (n_img - 1)))


def image_terms(per_image: np.ndarray | None, *tables: np.ndarray) -> list[tuple[float, float]]:
    """The test images' variance terms of a mean: s²(per-image values) / N, less each runs × images table's
    interaction mean square / (n N), which s² and the seed terms would otherwise both count."""
    if per_image is None or per_image.shape[-1] < 2:
        return []
    n_img = per_image.shape[-1]
    terms = [(float(per_image.var(ddof=1)) / n_img, n_img - 1.0)]
    for x in tables:
        n = x.shape[0]
        if n >= 2:
            terms.append((-interaction(x) / (n * n_img), (n - 1.0) * (n_img - 1)))
    return terms


def _estimate(mean: float, seed_terms, img_terms, parts) -> Estimate:
    seed_var, seed_df = satterthwaite(seed_terms)
    image_var = max(0.0, sum(v for v, _ in img_terms))  # the part more seeds do not shrink
    return Estimate(mean, seed_var, seed_df, image_var, parts)


def seed_unit(s: Sample) -> tuple[float, float]:
    """(variance of one run, its df) of a row: the seed unit that ``pooling`` moderates across rows."""
    return (float(np.var(s.values, ddof=1)), s.n - 1.0) if s.n >= 2 else (math.nan, 0.0)


def row_estimate(s: Sample, unit: tuple[float, float] | None = None) -> Estimate:
    """A row's mean with its uncertainty from seeds and, with predictions, test images (n < 2: no CI).
    ``unit``: the row's one-run seed variance and df as moderated across the study (default: its own)."""
    if s.n == 0:
        return Estimate(math.nan, math.nan, math.nan)
    mean = float(np.mean(s.values))
    if s.n < 2:
        return Estimate(mean, math.nan, math.nan)
    one, df = unit if unit is not None else seed_unit(s)
    img = [] if s.per_image is None else image_terms(s.per_image.mean(0), s.per_image)
    return _estimate(mean, [(one / s.n, df)], img, (one,))


def paired(a: Sample, b: Sample) -> bool:
    """Whether two rows ran the same seeds, each once (then Δ is paired by seed)."""
    return a.n >= 2 and len(set(a.seeds)) == a.n and set(a.seeds) == set(b.seeds) and b.n == a.n


def seed_order(s: Sample, seeds: Iterable[int]) -> list[int]:
    """Indices of ``s``'s runs in the order of ``seeds`` (rows that ran the same seeds: ``paired``)."""
    where = {seed: i for i, seed in enumerate(s.seeds)}
    return [where[seed] for seed in seeds]


def delta_units(a: Sample, b: Sample) -> list[tuple[float, float]]:
    """The seed units of Δ = a - b: [(s_Δ², n - 1)] of the per-seed differences when paired, else each row's
    [(s_a², n_a - 1), (s_b², n_b - 1)]."""
    if a.n < 2 or b.n < 2:
        return []
    if paired(a, b):
        return [(float(np.var(a.values - b.values[seed_order(b, a.seeds)], ddof=1)), a.n - 1.0)]
    return [seed_unit(a), seed_unit(b)]


def compare(a: Sample, b: Sample, units: list | None = None) -> Estimate:
    """Δ = mean(a) - mean(b), paired by seed where the design allows, by image whenever both have predictions.
    ``units``: ``delta_units`` as moderated across the study (default: the comparison's own)."""
    if a.n < 2 or b.n < 2:
        return Estimate(float(np.mean(a.values) - np.mean(b.values)) if a.n and b.n else math.nan, math.nan, math.nan)
    units = delta_units(a, b) if units is None else units
    both = a.per_image is not None and b.per_image is not None
    mean = float(np.mean(a.values) - np.mean(b.values))
    if paired(a, b):
        order = seed_order(b, a.seeds)
        d = a.per_image - b.per_image[order] if both else None
        img = image_terms(d.mean(0), d) if both else []
        (one, df), n = units[0], a.n
        return _estimate(mean, [(one / n, df)], img, (one,))
    img = image_terms(a.per_image.mean(0) - b.per_image.mean(0), a.per_image, b.per_image) if both else []
    terms = [(v / x.n, df) for (v, df), x in zip(units, (a, b))]
    return _estimate(mean, terms, img, tuple(v for v, _ in units))


def verdict(est: Estimate, level: float, margin: float | None, higher_is_better: bool = False) -> str:
    """better / worse / equivalent / unresolved read from one interval, Δ's two-sided (1 - ``level``) CI:
    better or worse when it excludes 0, else equivalent when it lies inside ±``margin`` (no margin: never),
    else unresolved. One interval carries both kinds of claim: at most one of Δ = 0 and |Δ| >= margin is true,
    so a row errs with probability at most ``level`` (the interval misses 0 with ``level``, and lies inside
    the margin for a Δ outside it with at most ``level`` / 2)."""
    lo, hi = est.interval(level)
    if math.isnan(lo):
        return UNRESOLVED
    if lo > 0 or hi < 0:
        return BETTER if (lo > 0) == higher_is_better else WORSE
    return EQUIVALENT if within(est, level, margin) else UNRESOLVED


def within(est: Estimate, level: float, margin: float | None) -> bool:
    """Whether Δ's (1 - ``level``) interval lies inside ±``margin`` (a significant Δ may also be negligible)."""
    lo, hi = est.interval(level)
    return margin is not None and not math.isnan(lo) and not math.isnan(margin) and -margin < lo and hi < margin


def shown_bound(est: Estimate, level: float) -> float:
    """The smallest margin the data show equivalence at: max(|lo|, |hi|) of Δ's (1 - ``level``) interval."""
    lo, hi = est.interval(level)
    return max(abs(lo), abs(hi))


def chance_error(labels: np.ndarray | None, k: int = 1, classes: int | None = None) -> float | None:
    """The top-``k`` error (0..1) of a model that always predicts the ``k`` most frequent classes of the eval
    labels (a majority-class guess); without labels, 1 - k / ``classes``; None when neither is known."""
    if labels is not None and len(labels):
        freq = np.sort(np.bincount(np.asarray(labels, dtype=int)))[::-1] / len(labels)
        return float(1 - freq[:k].sum())
    if classes and classes > k:
        return 1 - k / classes
    return None


def did_not_train(wrong: int, n_images: int, chance: float | None, alpha: float = 0.05) -> bool:
    """A run whose error cannot be told from chance: a one-sided binomial test of ``wrong`` errors in
    ``n_images`` against the ``chance`` error rate (``chance_error``) does not reject at ``alpha``."""
    if not (n_images and chance is not None and 0 < chance < 1):
        return False
    from scipy import stats

    return bool(stats.binomtest(int(wrong), int(n_images), chance, alternative="less").pvalue >= alpha)


AP_UNTRAINED = 0.1  # AP points: a detector below it is indistinguishable from an untrained one (0.0 AP)


def prob_improvement(a: ArrayLike, b: ArrayLike, higher_is_better: bool = False) -> float:
    """P(a run of row ``a`` beats a run of ``b``): the Mann–Whitney U of the seed values over n·m, ties
    counting one half (rliable; Bouthillier et al. 2021)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not len(a) or not len(b):
        return math.nan
    wins = (a[:, None] > b[None, :]) if higher_is_better else (a[:, None] < b[None, :])
    return float((wins + 0.5 * (a[:, None] == b[None, :])).mean())


def prob_improvement_ci(
    a: Sample, b: Sample, higher_is_better: bool = False, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of ``prob_improvement`` from a seeded bootstrap that resamples each row's seeds
    (once for both rows when paired) and, with predictions, the test images (one draw shared by every run)."""
    if a.n < 2 or b.n < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    pair = paired(a, b)
    if pair:  # b's runs in a's seed order
        order = seed_order(b, a.seeds)
        b = Sample(b.values[order], a.seeds, None if b.per_image is None else b.per_image[order])
    images = a.per_image is not None and b.per_image is not None
    out = []
    for start in range(0, resamples, 100):
        k = min(100, resamples - start)
        if images:
            n_img = a.per_image.shape[1]
            counts = np.stack([np.bincount(rng.integers(0, n_img, n_img), minlength=n_img) for _ in range(k)])
            va, vb = (counts @ a.per_image.T) / n_img, (counts @ b.per_image.T) / n_img
        else:
            va, vb = np.broadcast_to(a.values, (k, a.n)), np.broadcast_to(b.values, (k, b.n))
        ia = rng.integers(0, a.n, (k, a.n))
        ib = ia if pair else rng.integers(0, b.n, (k, b.n))
        xa, xb = np.take_along_axis(va, ia, 1), np.take_along_axis(vb, ib, 1)
        wins = (xa[:, :, None] > xb[:, None, :]) if higher_is_better else (xa[:, :, None] < xb[:, None, :])
        out.append((wins + 0.5 * (xa[:, :, None] == xb[:, None, :])).mean((1, 2)))
    lo, hi = np.percentile(np.concatenate(out), [2.5, 97.5])
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------- seeds needed
def power(delta: float, seed_parts: Sequence[float], image_var: float, n: int, alpha: float = 0.05) -> float:
    """Power of the table's two-sided test of Δ = 0 at ``n`` runs per row, for a true ``delta`` when one run per
    row gives the seed variances ``seed_parts`` ((s_a², s_b²) unpaired, (s_Δ²,) paired) and the test images
    add ``image_var`` (which more seeds do not shrink): the noncentral t on the table's degrees of freedom.
    Both tails through ``nct.sf`` (``nct.cdf`` of a large noncentrality is NaN in scipy 1.17)."""
    from scipy import stats

    seed_var, seed_df = satterthwaite([(v / n, n - 1.0) for v in seed_parts])
    est = Estimate(0.0, seed_var, seed_df if seed_parts else math.inf, image_var)
    if est.se == 0:
        return 1.0
    df = est.df if seed_var > 0 else math.inf
    ncp, crit = abs(delta) / est.se, dist.t_ppf(1 - alpha / 2, df)
    if math.isinf(df):
        return float(dist.norm_sf(crit - ncp) + dist.norm_sf(crit + ncp))
    return float(stats.nct.sf(crit, df, ncp) + stats.nct.sf(crit, df, -ncp))


def seeds_needed(
    delta: float,
    seed_parts: Iterable[float],
    image_var: float = 0.0,
    alpha: float = 0.05,
    target: float = 0.8,
    most: int = 1000,
) -> float:
    """The fewest runs per row (>= 2) at which ``power`` reaches ``target``: NaN when it cannot be said
    (Δ = 0, no spread), inf when not within ``most`` (or never: the test images alone leave Δ unresolved).
    Non-increasing in |Δ|. Cohen's d = 1 (Δ 1, stds of 1: ``seed_parts`` (1, 1)) needs 17, d = 0.5 needs 64."""
    seed_parts = tuple(seed_parts)
    if any(math.isnan(v) for v in (delta, *seed_parts, image_var)) or delta == 0 or sum(seed_parts) + image_var == 0:
        return math.nan
    if image_var > 0 and power(delta, (), image_var, 2, alpha) < target:
        return math.inf  # even infinitely many seeds leave the test sample's part
    lo, hi = 2, most
    if power(delta, seed_parts, image_var, hi, alpha) < target:
        return math.inf
    while lo < hi:  # power grows with n: bisect
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power(delta, seed_parts, image_var, mid, alpha) >= target else (mid + 1, hi)
    return float(lo)


def seeds_needed_range(delta: float, est: Estimate, alpha: float = 0.05) -> tuple:
    """(seeds needed, low, high): at the observed seed spread and at the ends of its 95% CI (a chi-square
    interval on the seed variance's ``seed_df`` degrees of freedom): what the runs so far can support."""
    if not est.seed_parts or not est.seed_df > 0:
        return math.nan, math.nan, math.nan
    df = est.seed_df
    scale = (df / dist.chi2_ppf(0.975, df), df / dist.chi2_ppf(0.025, df))
    return tuple(seeds_needed(delta, [v * f for v in est.seed_parts], est.image_var, alpha) for f in (1.0, *scale))


# ---------------------------------------------------------------------------------------------- settings
METRICS = ("top1_err", "top5_err", "ap", "ap50")  # the metrics with CIs and verdicts
DEFAULTS = {"alpha": 0.05, "margin": None, "correction": "bonferroni", "test": "joint", "resamples": 1000}
CORRECTIONS, TESTS = ("bonferroni", "none"), ("joint", "welch")
LEGACY = {"holm": "bonferroni"}  # records written before one budget covered both kinds of claim


def settings(table: dict | None) -> dict:
    """The inference keys of a study's ``table`` config (``table.alpha``, ``margin``, ``correction``, ``test``,
    ``resamples``) at their defaults where unset; ``margin`` as {metric: margin} (a number: every metric; a
    mapping: the metrics it names; none: no equivalence claims). Raises ValueError naming a bad key and its
    valid values."""
    given = {k: v for k, v in (table or {}).items() if k in DEFAULTS and v is not None}
    out = {**DEFAULTS, **given}
    out["correction"] = LEGACY.get(out["correction"], out["correction"])
    if out["correction"] not in CORRECTIONS:
        raise ValueError(f"table.correction={out['correction']!r}: valid values: {', '.join(CORRECTIONS)}")
    if out["test"] not in TESTS:
        raise ValueError(
            f"table.test={out['test']!r}: valid values: joint (seeds and test images), welch (seed values only)"
        )
    for key, ok, what in (
        ("alpha", lambda v: 0 < v < 0.5, "a level in (0, 0.5), e.g. 0.05"),
        ("resamples", lambda v: int(v) == v and v >= 100, "an integer >= 100, e.g. 1000"),
    ):
        try:
            valid = not isinstance(out[key], bool) and ok(float(out[key]))
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise ValueError(f"table.{key}={out[key]!r} must be {what}")
    return {**out, "alpha": float(out["alpha"]), "margin": margins(out["margin"]), "resamples": int(out["resamples"])}


def margins(given: float | Mapping[str, float] | None) -> dict[str, float]:
    """{metric: equivalence margin} from ``table.margin``: a number (every metric), a mapping such as
    {top1_err: 0.5, ap: 1.0}, or none ({}). Raises ValueError naming a bad entry."""
    if given is None or given == {}:
        return {}
    items = dict(given).items() if hasattr(given, "items") else ((m, given) for m in METRICS)
    out = {}
    for metric, v in items:
        where = "table.margin" + (f".{metric}" if hasattr(given, "items") else "")
        if metric not in METRICS:
            raise ValueError(f"{where}: valid metrics: {', '.join(METRICS)}")
        if v is None:
            continue
        try:
            valid = not isinstance(v, bool) and float(v) > 0
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise ValueError(
                f"{where}={v!r} must be a positive number of percentage points (AP points for detection), e.g. 0.5"
            )
        out[metric] = float(v)
    return out
