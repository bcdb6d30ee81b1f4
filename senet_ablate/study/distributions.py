"""The t, chi-square, F and normal distribution functions the study side reads its intervals, p-values and
boundaries from, as the scipy.special kernels that ``scipy.stats``' own ``_ppf``/``_cdf``/``_sf`` call: the same
values, without the generic wrapper's argument checks (about 40 µs a call against 1 µs; a simulated study calls
them some 10^5 times). Arguments are the statistics' own: probabilities in (0, 1), degrees of freedom > 0.
scipy is imported on first use, as everywhere on the study side (a job that writes no table never loads it)."""

from __future__ import annotations

import math

import numpy as np


def t_ppf(q: float, df: float) -> float:
    """Student t quantile (``scipy.stats.t.ppf``); ``df`` may be infinite (the normal)."""
    from scipy import special

    return special.stdtrit(df, q)


def t_cdf(x: float, df: float) -> float:
    """Student t distribution function (``scipy.stats.t.cdf``)."""
    from scipy import special

    return special.stdtr(df, x)


def t_sf(x: float, df: float) -> float:
    """Student t survival function, 1 - cdf (``scipy.stats.t.sf``)."""
    from scipy import special

    return special.stdtr(df, -x)


def chi2_ppf(q: float, df: float) -> float:
    """Chi-square quantile (``scipy.stats.chi2.ppf``)."""
    from scipy import special

    return 2 * special.gammaincinv(df / 2, q)


def f_ppf(q: float, dfn: float, dfd: float) -> float:
    """F quantile (``scipy.stats.f.ppf``)."""
    from scipy import special

    return special.fdtri(dfn, dfd, q)


def norm_ppf(q):
    """Standard normal quantile (``scipy.stats.norm.ppf``)."""
    from scipy import special

    return special.ndtri(q)


def norm_isf(q):
    """Standard normal upper quantile, ppf(1 - q) (``scipy.stats.norm.isf``)."""
    from scipy import special

    return -special.ndtri(q)


def norm_cdf(x):
    """Standard normal distribution function (``scipy.stats.norm.cdf``), elementwise on arrays."""
    from scipy import special

    return special.ndtr(x)


def norm_sf(x):
    """Standard normal survival function (``scipy.stats.norm.sf``)."""
    from scipy import special

    return special.ndtr(-x)


def norm_pdf(x):
    """Standard normal density (``scipy.stats.norm.pdf``), elementwise; as an array, so that a scalar takes
    numpy's array ``exp`` as scipy's does (numpy's scalar ``exp`` can differ in the last bit)."""
    z = np.asarray(x, dtype=float)
    return np.exp(-(z**2) / 2.0) / math.sqrt(2 * math.pi)
