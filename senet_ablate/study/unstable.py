"""Unstable training in the open: runs that did not train, runs far outside their row's spread, rows whose
seed outcomes are skewed, and whether a row fails more often than its baseline.

- **Did not train**: a classification run whose top-1 error a one-sided binomial test cannot tell from chance,
  the error of always predicting the most frequent class of the eval labels (``predictions.npz``; 1 - 1/K
  without them); a detector whose AP is below ``inference.AP_UNTRAINED`` points.
- **Outlier**: a trained run whose leave-one-out residual, against the mean of its row's other runs and the
  row's seed spread moderated across the study (``pooling.py``), has a two-sided t p below 0.01 / n.
- **Compared with the baseline**: the share of such runs in a row and in its baseline, by Fisher's exact test.
- **Skewed**: a row of at least 5 runs whose sample skewness exceeds 1 in magnitude: a t interval assumes
  seeds scatter symmetrically, and a few seeds cannot see a rare bad run (docs/statistics.md quotes the
  false-verdict rate this causes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..records import predictions
from . import distributions as dist
from . import inference as inf

OUTLIER_LEVEL = 0.01  # per row, Bonferroni over its runs
SKEW = 1.0


def _classes(run) -> int | None:
    flat = run.get("_flat") if isinstance(run.get("_flat"), dict) else {}
    for v in (run.get("num_classes"), *(flat.get(k) for k in ("data.num_classes", "model.num_classes"))):
        try:
            if v is not None and not pd.isna(v) and int(float(v)) > 1:
                return int(float(v))
        except (TypeError, ValueError):
            continue
    return None


def _untrained(run, p, alpha: float) -> bool:
    if run["task"] == "detect":
        ap = pd.to_numeric(pd.Series([run.get("ap")]), errors="coerce").iloc[0]
        return bool(not pd.isna(ap) and ap < inf.AP_UNTRAINED)
    if run["task"] not in ("train", "eval"):
        return False
    n_img = len(p.label) if p is not None else run.get("eval_images")
    err = run.get("top1_err")
    if err is None or pd.isna(err) or not n_img or pd.isna(n_img):
        return False
    chance = inf.chance_error(p.label if p is not None else None, 1, _classes(run))
    return inf.did_not_train(round(float(err) * float(n_img) / 100), int(n_img), chance, alpha)


def set_apart(trained: pd.DataFrame, alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs that trained, runs that did not), each run with its predictions (``_preds``) read once."""
    preds = [
        predictions.read(d) if t in ("train", "eval") else None for d, t in zip(trained["run_dir"], trained["task"])
    ]
    trained = trained.assign(_preds=preds)
    mask = np.array([_untrained(run, p, alpha) for (_, run), p in zip(trained.iterrows(), preds)], dtype=bool)
    return trained[~mask], trained[mask]


def outliers(values: np.ndarray, prior_var: float, prior_df: float) -> list[int]:
    """Indices of runs far outside the others of their row: leave-one-out t against the others' mean, the
    spread the others' variance moderated by the study's (``prior_var`` on ``prior_df``)."""

    from .pooling import NONE, Prior

    prior = Prior(prior_var, prior_df, math.inf) if prior_var > 0 else NONE
    n = len(values)
    out = []
    for i in range(n):
        rest = np.delete(values, i)
        var, df = prior.moderate(*((float(rest.var(ddof=1)), n - 2.0) if n >= 3 else (math.nan, 0.0)))
        if not df or not var > 0:
            continue
        t = (values[i] - rest.mean()) / math.sqrt(var * (1 + 1 / len(rest)))
        p = 2 * dist.t_sf(abs(t), min(df, 1e6))
        if p < OUTLIER_LEVEL / n:
            out.append(i)
    return out


@dataclass
class Unstable:
    """What the notes and the dashboard say of a study's unstable runs (the primary metric)."""

    outliers: dict = field(default_factory=dict)  # {row: [seed, ...]}
    untrained: dict = field(default_factory=dict)  # {row: count}
    runs: dict = field(default_factory=dict)  # {row: runs in all, trained or not}
    fisher: dict = field(default_factory=dict)  # {row: p of the same failure rate as its baseline}
    skewed: dict = field(default_factory=dict)  # {row: sample skewness}

    def bad(self, row: str) -> int:
        return self.untrained.get(row, 0) + len(self.outliers.get(row, []))


def report(
    kept: pd.DataFrame, untrained: pd.DataFrame, data: dict, rows: Iterable[str], bases: dict, col: str | None
) -> Unstable:
    """Outliers, skew and Fisher's exact test of failures (did not train or outlier) per row vs its baseline."""
    from scipy import stats

    from .pooling import fit

    out = Unstable()
    if col is None:
        return out
    samples = {k: data[k][col] for k in rows}
    prior = fit([inf.seed_unit(s) for s in samples.values()])
    for k, s in samples.items():
        idx = outliers(s.values, prior.var, prior.df) if s.n >= 3 else []  # two runs: neither is the odd one
        if idx:
            out.outliers[k] = [s.seeds[i] for i in idx]
        out.untrained[k] = int((untrained["row"] == k).sum())
        out.runs[k] = s.n + out.untrained[k]
        if s.n >= 5 and abs(stats.skew(s.values, bias=False)) > SKEW:
            out.skewed[k] = float(stats.skew(s.values, bias=False))
    for k, base in bases.items():
        if base is None or k == base or base not in out.runs or not (out.bad(k) or out.bad(base)):
            continue
        table = [[out.bad(k), out.runs[k] - out.bad(k)], [out.bad(base), out.runs[base] - out.bad(base)]]
        out.fisher[k] = float(stats.fisher_exact(table).pvalue)
    return out
