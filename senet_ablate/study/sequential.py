"""A study that runs until it has an answer: the looks, boundaries and decisions of
``hydra.sweeper.until=verdict``.

The plan: the first round runs the seeds the sweep names; after each round every planned comparison of a row
with its baseline is looked at on the first n seeds of the plan's seed sequence, and a row still
``unresolved`` gets the next seed (its baseline too, so the pair stays paired) until ``max_seeds``. The
compared rows and their shares of α are frozen in ``plan.json`` at the first look: other runs that share the
study dir never join the plan.

Looking after every round would inflate the error rate, so each look reads its verdict from a repeated
confidence interval (Jennison & Turnbull 1989) at the nominal level of a group-sequential boundary. The
boundary spends the row's α by a Lan–DeMets spending function (Lan & DeMets, Biometrika 1983) over the
information fraction t_n = V(max_seeds) / V(n), where V(n) = s²/n + v_image is the variance of Δ at n seeds
(the test images' part v_image does not shrink with seeds). The schedule is fixed at the row's first look from
that look's variance estimates: when the test images dominate, t is near 1 at once, the first look spends
nearly all of α, and a row still open stops there (``images``: more seeds cannot resolve it).

    Pocock type ``pocock`` (default):  α(t) = α·ln(1 + (e − 1)·t)     (spends evenly: large effects stop early)
    O'Brien–Fleming type ``obf``:      α(t) = 2 − 2·Φ(z_{1−α/2} / √t)   (spends almost nothing early)

The boundary c_k of look k is the z at which the chance, under no effect, of first crossing at look k equals
α(t_k) − α(t_{k−1}), for z-statistics with corr(Z_j, Z_k) = √(t_j / t_k) (recursive numerical integration,
Armitage–McPherson–Rowe). A look's interval is Δ's two-sided (1 − 2·Φ̄(c_k)) CI on the study's pooled seed
spread (``pooling.py``); better / worse when it excludes 0, equivalent when it lies inside ±margin. A family
of planned rows splits α equally (Bonferroni) when the table corrects. ``simulate.py`` measures the error
rates and the expected runs of whole adaptive studies. numpy and scipy only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..records.atomic import write_atomic
from . import distributions as dist
from . import inference as inf

if TYPE_CHECKING:
    import pandas as pd

SPENDING = ("pocock", "obf")
FUTILE = 0.9  # information fraction from which more seeds add too little to look again
PLAN_FILE = "plan.json"
GRID = 801  # points of the integration grid per look


def spent(t: float, alpha: float, kind: str = "obf") -> float:
    """α spent by information fraction ``t`` (0..1) under the Lan–DeMets function ``kind``."""
    t = min(max(float(t), 0.0), 1.0)
    if t == 0:
        return 0.0
    if kind == "obf":
        return float(2 - 2 * dist.norm_cdf(dist.norm_ppf(1 - alpha / 2) / math.sqrt(t)))
    if kind == "pocock":
        return float(alpha * math.log(1 + (math.e - 1) * t))
    raise ValueError(f"hydra.sweeper.spending={kind!r}: valid values: {', '.join(SPENDING)}")


def _crossing(f, x, sigma: float, b: float, sides: int) -> float:
    """P(a path continuing from sub-density ``f`` on grid ``x`` ends beyond ±b (or +b) after a step of sd
    ``sigma``)."""
    tail = dist.norm_cdf((x - b) / sigma) + (dist.norm_cdf((-b - x) / sigma) if sides == 2 else 0.0)
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


@lru_cache(maxsize=4096)
def boundaries(times: tuple, alpha: float, kind: str = "obf", sides: int = 2) -> tuple:
    """Nominal z boundaries of looks at information fractions ``times`` (increasing, in (0, 1]) that spend
    ``alpha`` by ``kind``; ``sides`` 2: reject on |Z| >= c, 1: on Z >= c. inf where a look spends nothing."""
    out, prev_t, prev_a = [], 0.0, 0.0
    x = np.zeros(1)
    f = np.ones(1)  # a point mass at 0 before the first look (handled by sigma below)
    for t in times:
        if t <= prev_t:  # no information since the last look: it spends nothing
            out.append(math.inf)
            continue
        a = spent(t, alpha, kind)
        sigma, scale = math.sqrt(t - prev_t), math.sqrt(t)
        if prev_t == 0:
            q = (a - prev_a) / sides
            c = float(dist.norm_isf(q)) if q > 0 else math.inf
        else:
            c = _boundary_at(f, x, sigma, a - prev_a, scale, sides)
        out.append(c)
        b = c * scale if math.isfinite(c) else 12.0 * math.sqrt(times[-1])
        lo = -b if sides == 2 else -12.0 * math.sqrt(times[-1])
        y = np.linspace(lo, b, GRID)
        if prev_t == 0:
            f = dist.norm_pdf(y / scale) / scale
        else:
            kernel = dist.norm_pdf((y[:, None] - x[None, :]) / sigma) / sigma
            f = np.trapezoid(kernel * f[None, :], x, axis=1)
        x, prev_t, prev_a = y, t, a
    return tuple(out)


def information(unit_var: float, image_var: float, ns: Iterable[int], max_seeds: int) -> tuple:
    """The information fractions t_n = V(max_seeds) / V(n) of looks at ``ns`` seeds, V(n) = ``unit_var`` / n +
    ``image_var`` (rounded to 3 decimals, so that boundaries are shared between rows); seeds alone
    (no variance known): (n - 1) / (max_seeds - 1)."""
    if not (unit_var >= 0 and image_var >= 0) or unit_var + image_var == 0:
        return tuple(round((n - 1) / (max_seeds - 1), 3) for n in ns)
    full = unit_var / max_seeds + image_var
    return tuple(min(1.0, round(full / (unit_var / n + image_var), 3)) for n in ns)


def nominal_levels(times: tuple, alpha: float, kind: str) -> tuple:
    """Two-sided nominal levels of looks at information fractions ``times`` spending ``alpha`` by ``kind``
    (0 where a look spends nothing)."""
    return tuple(float(2 * dist.norm_sf(c)) for c in boundaries(tuple(times), alpha, kind, 2))


# ---------------------------------------------------------------------------------------------- the plan
@dataclass
class Plan:
    """What an adaptive sweep promised before its first look: the seed sequence (the first round's seeds,
    then the next integers), ``max_seeds`` per row, the spending function, the table's ``alpha``, ``margin``
    ({metric: margin}) and ``correction`` the looks test at, the optional run cap, and, frozen at the first
    look, the compared rows ({row: baseline}) with their shares of α."""

    seeds: tuple
    first: int
    max_seeds: int
    spending: str = "pocock"
    max_runs: int | None = None
    alpha: float = inf.DEFAULTS["alpha"]
    margin: dict = field(default_factory=dict)
    correction: str = inf.DEFAULTS["correction"]
    compared: dict | None = None
    shares: dict | None = None
    runs: list | None = None  # the run dirs (names in the sweep dir) its jobs may write: no other run joins it
    command: str | None = None  # the command that launched it (later launches may rewrite multirun.yaml)

    @classmethod
    def make(
        cls,
        first_seeds: Iterable[int],
        max_seeds: int,
        spending: str = "pocock",
        max_runs: int | None = None,
        table: Mapping[str, object] | None = None,
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
        return {"alpha": self.alpha, "margin": dict(self.margin), "correction": self.correction}

    def freeze(self, bases: dict) -> bool:
        """Fix the compared rows ({row: baseline}, from the first look) and their α shares; False when
        already frozen (a relaunch keeps what the first look fixed)."""
        if self.compared is not None:
            return False
        self.compared = {r: b for r, b in bases.items() if b is not None and r != b}
        m = len(self.compared) if self.correction == "bonferroni" else 1
        self.shares = {r: self.alpha / max(m, 1) for r in self.compared}
        return True

    def looks(self) -> list[int]:
        return list(range(max(self.first, 2), self.max_seeds + 1))

    def write(self, sweep_dir: Path) -> None:
        write_atomic(Path(sweep_dir) / PLAN_FILE, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def read(cls, sweep_dir: Path) -> "Plan | None":
        path = Path(sweep_dir) / PLAN_FILE
        if not path.is_file():
            return None
        d = json.loads(path.read_text())
        d["correction"] = inf.LEGACY.get(d.get("correction"), d.get("correction"))
        d["margin"] = inf.margins(d.get("margin"))
        return cls(**{**d, "seeds": tuple(d["seeds"])})

    def design(self) -> dict:
        """The parts that fix the looks and their levels (``max_runs`` may change between launches, and the
        compared rows are fixed by the first look)."""
        return {k: v for k, v in asdict(self).items() if k not in ("max_runs", "compared", "shares", "runs", "command")}

    def own(self, runs: pd.DataFrame) -> pd.DataFrame:
        """The runs (a DataFrame with ``run_dir``) that belong to this plan: all of them when it names none."""
        if not self.runs:
            return runs
        mine = set(self.runs)
        return runs[[Path(str(d)).name in mine for d in runs["run_dir"]]]


def find_plan(run_dirs: Iterable[str | Path]) -> Plan | None:
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
    (``reason``: verdict, images, max_seeds, max_runs, did not train) or that it is still open, the seeds it
    used, the nominal level of that look with its repeated interval (``estimate`` read at ``level``)."""

    verdict: str
    n: int
    reason: str
    seeds: tuple = ()
    level: float = math.nan
    owed: list = field(default_factory=list)  # seeds its next look needs: [(row, seed), ...]
    alpha: float = math.nan  # its share of the table's alpha, spent over its looks
    estimate: inf.Estimate | None = None
    times: tuple = ()  # the information fractions of its looks, fixed at its first look

    @property
    def open(self) -> bool:
        return self.reason == "open"


def subset(s: inf.Sample, seeds: Collection[int]) -> inf.Sample:
    """The runs of ``s`` with a seed among ``seeds``."""
    keep = [i for i, seed in enumerate(s.seeds) if seed in set(seeds)]
    return inf.Sample(
        s.values[keep], tuple(s.seeds[i] for i in keep), None if s.per_image is None else s.per_image[keep]
    )


def look_estimates(data: dict, compared: dict, seeds: Sequence[int], done: dict) -> dict:
    """{row: Δ estimate} of every compared row on those of ``seeds`` both it and its baseline completed, the
    seed spread pooled across the comparisons (``pooling.moderated_deltas``)."""
    from .pooling import moderated_deltas

    empty = inf.Sample(np.zeros(0), ())
    pairs = {}
    for row, base in compared.items():
        mine = [s for s in seeds if s in done.get(row, ()) and s in done.get(base, ())]
        pairs[row] = (subset(data.get(row, empty), mine), subset(data.get(base, empty), mine))
    return moderated_deltas(pairs, compared)


def _schedule(est: inf.Estimate, plan: Plan) -> tuple:
    unit = sum(est.seed_parts) if est.seed_parts else math.nan
    return information(unit, est.image_var, plan.looks(), plan.max_seeds)


def replay(data: dict, done: dict, plan: Plan, higher: bool = False, metric: str = "top1_err") -> dict:
    """{row: Decision} for every compared row of the (frozen) plan: ``data`` {row: Sample} of the runs that
    trained (the primary ``metric``), ``done`` {row: seeds whose runs completed}. A function of the records
    alone, so a relaunched sweep takes the same decisions."""
    margin = plan.margin.get(metric)
    out = {r: Decision(inf.UNRESOLVED, 0, "open", alpha=plan.shares[r]) for r in plan.compared}
    waiting: set = set()
    for k, n in enumerate(plan.looks()):
        seeds = plan.seeds[:n]
        ests = look_estimates(data, plan.compared, seeds, done)
        for row, base in plan.compared.items():
            d = out[row]
            if not d.open or row in waiting:
                continue
            missing = [(who, s) for who in (row, base) for s in seeds if s not in done.get(who, ())]
            if missing:
                d.owed = missing
                waiting.add(row)
                continue
            _look(d, ests[row], plan, k, n, seeds, margin, higher)
    total = sum(len(s) for r, s in done.items() if r in plan.compared or r in plan.compared.values())
    for d in out.values():
        if d.reason == "open" and not d.owed and d.n:
            d.reason = "max_seeds"
        if d.open and plan.max_runs is not None and total >= plan.max_runs:
            d.reason = "max_runs"
    return out


def _look(d: Decision, est: inf.Estimate, plan: Plan, k: int, n: int, seeds, margin, higher: bool) -> None:
    """Take look ``k`` (at ``n`` seeds) of one comparison: its verdict from the repeated interval."""
    if not d.times:
        d.times = _schedule(est, plan)
    level = nominal_levels(d.times, d.alpha, plan.spending)[k]
    d.verdict, d.n, d.seeds, d.level, d.estimate, d.owed = (
        inf.verdict(est, level, margin, higher), n, tuple(seeds), level, est, [],
    )  # fmt: skip
    if d.verdict != inf.UNRESOLVED:
        d.reason = "verdict"
    elif d.times[k] >= FUTILE and n < plan.max_seeds:
        d.reason = "images"


def owed(decisions: dict) -> list[tuple[str, int]]:
    """The runs the next looks of the comparisons still open (or stopped by ``max_runs``) need, each once, in
    the plan's order."""
    return list(dict.fromkeys(x for d in decisions.values() if d.reason in ("open", "max_runs") for x in d.owed))


def stop_text(d: Decision) -> str:
    """Why a row stopped (or where it stands), in words for the table."""
    if d.reason == "verdict":
        return f"{d.verdict} at {d.n} seeds"
    if d.reason == "images":
        return f"stopped at {d.n} seeds: more seeds cannot resolve it (the test images' part)"
    if d.reason in ("max_seeds", "max_runs"):
        return f"{d.reason} reached at {d.n} seeds"
    if d.reason == "did not train":
        return "did not train"
    return f"open after {d.n} seeds" if d.n else "open: no look yet"
