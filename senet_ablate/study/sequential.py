"""A study that runs until it has an answer (issue 30): the looks, boundaries and decisions of
``hydra.sweeper.until=verdict``.

The plan: the first round runs the seeds the sweep names; after each round every comparison of a row with
its baseline is looked at on the first n seeds of the plan's seed sequence, and a row whose verdict is still
``unresolved`` gets the next seed (its baseline too, so the pair stays paired) until ``max_seeds``.

Looking after every round would inflate the error rate of a verdict, so each look tests at a nominal level
from a group-sequential boundary: α is spent by a Lan–DeMets
spending function (Lan & DeMets, Biometrika 1983) over t = (n − 1) / (max_seeds − 1), the seeds' degrees
of freedom (a t-statistic's looks are less correlated than a z-statistic's: this spends less α early),

    O'Brien–Fleming type ``obf``:  α(t) = 2 − 2·Φ(z_{1−α/2} / √t)     (spends almost nothing early)
    Pocock type ``pocock``:        α(t) = α·ln(1 + (e − 1)·t)

and the boundary c_k of look k is the z at which the chance, under no effect, of first crossing at look k
equals α(t_k) − α(t_{k−1}), for z-statistics with corr(Z_j, Z_k) = √(t_j / t_k) (computed by recursive
numerical integration, Armitage–McPherson–Rowe). A look tests the table's p-value of Δ = 0 at 2·Φ̄(c_k)
(better / worse) and TOST's p at the one-sided boundary of the same function (equivalent), both on the seeds'
own degrees of freedom (``looked``). tests/test_sequential.py measures the error rate of whole adaptive
studies. A family of rows sharing a baseline splits α equally (Bonferroni) when the
table corrects (``table.correction=holm``). numpy and scipy only.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..records.atomic import write_atomic
from . import inference as inf

SPENDING = ("obf", "pocock")
PLAN_FILE = "plan.json"
GRID = 801  # points of the integration grid per look


def spent(t: float, alpha: float, kind: str = "obf") -> float:
    """α spent by information fraction ``t`` (0..1) under the Lan–DeMets function ``kind``."""
    from scipy import stats

    t = min(max(float(t), 0.0), 1.0)
    if t == 0:
        return 0.0
    if kind == "obf":
        return float(2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 2) / math.sqrt(t)))
    if kind == "pocock":
        return float(alpha * math.log(1 + (math.e - 1) * t))
    raise ValueError(f"hydra.sweeper.spending={kind!r}: valid values: {', '.join(SPENDING)}")


def _crossing(f, x, sigma: float, b: float, sides: int) -> float:
    """P(a path continuing from sub-density ``f`` on grid ``x`` ends beyond ±b (or +b) after a step of sd
    ``sigma``)."""
    from scipy import stats

    tail = stats.norm.sf((b - x) / sigma) + (stats.norm.cdf((-b - x) / sigma) if sides == 2 else 0.0)
    return float(np.trapezoid(f * tail, x))


def _boundary_at(f, x, sigma: float, target: float, scale: float, sides: int) -> float:
    """The z (on the look's own scale ``scale`` = √t) whose crossing probability is ``target``."""
    from scipy import optimize

    if target <= 0:
        return math.inf
    g = lambda c: _crossing(f, x, sigma, c * scale, sides) - target  # noqa: E731 - decreasing in c
    if g(0.0) <= 0:
        return 0.0
    return float(optimize.brentq(g, 0.0, 40.0, xtol=1e-10))


@lru_cache(maxsize=256)
def boundaries(times: tuple, alpha: float, kind: str = "obf", sides: int = 2) -> tuple:
    """Nominal z boundaries of looks at information fractions ``times`` (increasing, in (0, 1]) that spend
    ``alpha`` by ``kind``; ``sides`` 2: reject on |Z| >= c, 1: on Z >= c. inf where a look spends nothing."""
    from scipy import stats

    out, prev_t, prev_a = [], 0.0, 0.0
    x = np.zeros(1)
    f = np.ones(1)  # a point mass at 0 before the first look (handled by sigma below)
    for t in times:
        a = spent(t, alpha, kind)
        sigma, scale = math.sqrt(t - prev_t), math.sqrt(t)
        if prev_t == 0:
            q = (a - prev_a) / sides
            c = float(stats.norm.isf(q)) if q > 0 else math.inf
        else:
            c = _boundary_at(f, x, sigma, a - prev_a, scale, sides)
        out.append(c)
        b = c * scale if math.isfinite(c) else 12.0 * math.sqrt(times[-1])
        lo = -b if sides == 2 else -12.0 * math.sqrt(times[-1])
        y = np.linspace(lo, b, GRID)
        if prev_t == 0:
            f = stats.norm.pdf(y / scale) / scale
        else:
            kernel = stats.norm.pdf((y[:, None] - x[None, :]) / sigma) / sigma
            f = np.trapezoid(kernel * f[None, :], x, axis=1)
        x, prev_t, prev_a = y, t, a
    return tuple(out)


def nominal_levels(first: int, max_seeds: int, alpha: float, kind: str) -> dict[int, tuple[float, float]]:
    """{n seeds: (two-sided level of Δ = 0, one-sided level of each TOST test)} for looks at n = first ..
    max_seeds (looks need n >= 2)."""
    from scipy import stats

    ns = list(range(max(first, 2), max_seeds + 1))
    times = tuple((n - 1) / (max_seeds - 1) for n in ns)
    two, one = boundaries(times, alpha, kind, 2), boundaries(times, alpha, kind, 1)
    return {n: (float(2 * stats.norm.sf(c2)), float(stats.norm.sf(c1))) for n, c2, c1 in zip(ns, two, one)}


# ---------------------------------------------------------------------------------------------- the plan
@dataclass
class Plan:
    """What an adaptive sweep promised before its first look: the seed sequence (the first round's seeds,
    then the next integers), ``max_seeds`` per row, the spending function, the table's ``alpha``, ``margin``
    and ``correction`` the looks test at, and the optional run cap."""

    seeds: tuple
    first: int
    max_seeds: int
    spending: str = "obf"
    max_runs: int | None = None
    alpha: float = inf.DEFAULTS["alpha"]
    margin: float = inf.DEFAULTS["margin"]
    correction: str = inf.DEFAULTS["correction"]

    @classmethod
    def make(
        cls, first_seeds, max_seeds: int, spending: str = "obf", max_runs: int | None = None, table=None
    ) -> "Plan":
        first = list(dict.fromkeys(int(s) for s in first_seeds))
        if not (isinstance(max_seeds, int) and max_seeds >= 2):
            raise ValueError(f"hydra.sweeper.max_seeds={max_seeds!r} must be an integer >= 2, e.g. 10")
        if len(first) > max_seeds:
            raise ValueError(
                f"the first round runs {len(first)} seeds but hydra.sweeper.max_seeds={max_seeds}: "
                "raise max_seeds or sweep fewer seeds"
            )
        if spending not in SPENDING:
            raise ValueError(f"hydra.sweeper.spending={spending!r}: valid values: {', '.join(SPENDING)}")
        if max_runs is not None and not (isinstance(max_runs, int) and max_runs >= 1):
            raise ValueError(f"hydra.sweeper.max_runs={max_runs!r} must be a positive integer or null")
        nxt = max(first) + 1 if first else 0
        seeds = tuple(first + list(range(nxt, nxt + max_seeds - len(first))))
        st = inf.settings(dict(table or {}))
        return cls(seeds, len(first), max_seeds, spending, max_runs, st["alpha"], st["margin"], st["correction"])

    def settings(self) -> dict:
        """The table settings the looks test at."""
        return {"alpha": self.alpha, "margin": self.margin, "correction": self.correction}

    def levels(self, alpha: float) -> dict[int, tuple[float, float]]:
        return nominal_levels(self.first, self.max_seeds, alpha, self.spending)

    def write(self, sweep_dir: Path) -> None:
        write_atomic(Path(sweep_dir) / PLAN_FILE, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def read(cls, sweep_dir: Path) -> "Plan | None":
        path = Path(sweep_dir) / PLAN_FILE
        if not path.is_file():
            return None
        d = json.loads(path.read_text())
        return cls(**{**d, "seeds": tuple(d["seeds"])})

    def design(self) -> dict:
        """The parts that fix the looks and their levels (``max_runs`` may change between launches)."""
        return {k: v for k, v in asdict(self).items() if k != "max_runs"}


def find_plan(run_dirs) -> Plan | None:
    """The plan of the sweep(s) the runs of a study came from (the first sweep dir that has one)."""
    for d in sorted({Path(r).parent for r in run_dirs}):
        plan = Plan.read(d)
        if plan is not None:
            return plan
    return None


# ---------------------------------------------------------------------------------------------- decisions
@dataclass
class Decision:
    """Where a comparison stands: its ``verdict`` at ``n`` seeds (the last look taken), why it stopped
    (``reason``: verdict, max_seeds, max_runs, did not train) or that it is still open, the seeds it used
    and the nominal levels it was tested at."""

    verdict: str
    n: int
    reason: str
    seeds: tuple = ()
    level: float = math.nan
    level_equiv: float = math.nan
    owed: list = field(default_factory=list)  # seeds its next look needs: [(row, seed), ...]
    alpha: float = math.nan  # its share of the table's alpha, spent over its looks

    @property
    def open(self) -> bool:
        return self.reason == "open"


def subset(s: inf.Sample, seeds) -> inf.Sample:
    """The runs of ``s`` with a seed among ``seeds``."""
    keep = [i for i, seed in enumerate(s.seeds) if seed in set(seeds)]
    return inf.Sample(
        s.values[keep], tuple(s.seeds[i] for i in keep), None if s.per_image is None else s.per_image[keep]
    )


def decide(a: inf.Sample, b: inf.Sample, plan: Plan, levels: dict, done: dict, higher: bool, margin: float):
    """Replay the looks of one comparison (row ``a`` vs its baseline ``b``). ``done`` maps "row" and
    "baseline" to the seeds whose runs ended (trained or not): a look at n seeds happens once both rows have
    the plan's first n seeds; the first look that reaches a verdict stops the comparison."""
    last = Decision(inf.UNRESOLVED, 0, "open")
    for n in sorted(levels):
        seeds = plan.seeds[:n]
        missing = [(who, s) for who in ("row", "baseline") for s in seeds if s not in done[who]]
        if missing:
            last.owed = missing
            return last
        est = looked(subset(a, seeds), subset(b, seeds))
        lvl, lvl_eq = levels[n]
        last = Decision(look(est, margin, lvl, lvl_eq, higher), n, "open", seeds, lvl, lvl_eq)
        if last.verdict != inf.UNRESOLVED:
            last.reason = "verdict"
            return last
    last.reason = "max_seeds" if last.n else "open"
    return last


def looked(a: inf.Sample, b: inf.Sample) -> inf.Estimate:
    """Δ of a look, on the seeds' own degrees of freedom: a few seeds that agree by chance make the seeds'
    part small and Welch–Satterthwaite's df large, which the far tail of an early look cannot afford."""
    est = inf.compare(a, b)
    est.df_cap = est.seed_df
    return est


def look(est: inf.Estimate, margin: float, level: float, level_equiv: float, higher: bool = False) -> str:
    """The verdict of one look: Δ = 0 rejected at the two-sided ``level`` (better / worse), else |Δ| >= margin
    rejected by both one-sided tests at ``level_equiv`` (equivalent), else unresolved."""
    return inf.verdict(est.mean, est.p_value(), est.p_equivalent(margin), level, higher, level_equiv)


def alpha_each(bases: dict, alpha: float, correction: str) -> dict:
    """{row: its share of α}: a family (the rows compared with one baseline) splits α equally (Bonferroni)
    when the table corrects, else each comparison is tested at α."""
    family: dict = {}
    for row, base in bases.items():
        if base is not None and row != base:
            family.setdefault(base, []).append(row)
    return {r: alpha / (len(rows) if correction == "holm" else 1) for rows in family.values() for r in rows}


def replay(data: dict, bases: dict, done: dict, plan: Plan, st: dict, higher: bool = False) -> dict[str, Decision]:
    """{row: Decision} for every row compared with a baseline: ``data`` {row: Sample} of the runs that
    trained (the primary metric), ``done`` {row: seeds whose runs completed}. A function of the records
    alone, so a relaunched sweep takes the same decisions. A row without any completed run (not in the sweep,
    or every run of it failed) is not in the plan."""
    total = sum(len(s) for s in done.values())
    live = {r: b for r, b in bases.items() if done.get(r)}
    out = {}
    for row, a in alpha_each(live, st["alpha"], st["correction"]).items():
        base = bases[row]
        empty = inf.Sample(np.zeros(0), ())
        d = decide(
            data.get(row, empty),
            data.get(base, empty),
            plan,
            plan.levels(a),
            {"row": done.get(row, set()), "baseline": done.get(base, set())},
            higher,
            st["margin"],
        )
        d.owed = [(row if who == "row" else base, s) for who, s in d.owed]
        d.alpha = a
        if d.open and plan.max_runs is not None and total >= plan.max_runs:
            d.reason = "max_runs"
        out[row] = d
    return out


def owed(decisions: dict) -> list[tuple[str, int]]:
    """The runs the next looks of the comparisons still open (or stopped by ``max_runs``) need, each once, in
    the plan's order."""
    return list(dict.fromkeys(x for d in decisions.values() if d.reason in ("open", "max_runs") for x in d.owed))


def stop_text(d: Decision) -> str:
    """Why a row stopped (or where it stands), in words for the table."""
    level = f" (p < {d.level:.2g})" if d.verdict in (inf.BETTER, inf.WORSE) else ""
    if d.reason == "verdict":
        return f"{d.verdict} at {d.n} seeds{level}"
    if d.reason in ("max_seeds", "max_runs"):
        return f"{d.reason} reached at {d.n} seeds"
    if d.reason == "did not train":
        return "did not train"
    return f"open after {d.n} seeds" if d.n else "open: no look yet"
