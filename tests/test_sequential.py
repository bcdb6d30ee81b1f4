"""The group-sequential looks of an adaptive study (issue 30): boundaries checked against published values and
a Monte Carlo of the statistics they assume, and whole adaptive studies simulated with a known truth to show the
error rate held across looks where the naive scheme (α at every look) inflates it.

The simulated study is tests/test_inference.py's (N test images with a difficulty each; a run errs on an image
with probability Φ(a_r + s·z_i + u_rj), seeds shared by the rows that ran them), drawn for ``max_seeds`` seeds
at once: the looks read the first n seeds, so later seeds cannot change an earlier look, as in a real sweep.
"""

import math

import numpy as np
import pytest
from scipy import stats

from senet_ablate.study import inference as inf
from senet_ablate.study import sequential as seq

FIVE = tuple(k / 5 for k in range(1, 6))


def test_boundaries_equal_the_published_lan_demets_values():
    # five equally spaced looks (Reboussin, DeMets, Kim, Lan: ldbounds, Control. Clin. Trials 2000, the
    # package's O'Brien–Fleming-type example, one-sided α = 0.025; and the Pocock-type, two-sided α = 0.05)
    obf = seq.boundaries(FIVE, 0.025, "obf", sides=1)
    pocock = seq.boundaries(FIVE, 0.05, "pocock", sides=2)
    assert obf == pytest.approx((4.8769, 3.3569, 2.6803, 2.2898, 2.0310), abs=2e-4)
    assert pocock == pytest.approx((2.4380, 2.4268, 2.4101, 2.3966, 2.3859), abs=2e-4)


@pytest.mark.parametrize("kind", seq.SPENDING)
def test_each_look_spends_what_the_function_says_by_monte_carlo(kind):
    """Brownian motion at the looks of a plan (3..10 seeds of 10): the share of paths first crossing at look k
    equals α(t_k) - α(t_{k-1}), two-sided, independently of the recursive integration."""
    times = tuple(n / 10 for n in range(3, 11))
    c = np.array(seq.boundaries(times, 0.05, kind, sides=2))
    rng = np.random.default_rng(0)
    reps = 400_000
    steps = np.diff((0.0, *times))
    b = np.cumsum(rng.standard_normal((reps, len(times))) * np.sqrt(steps), axis=1)
    z = b / np.sqrt(times)
    crossed = np.abs(z) >= c
    first = np.where(crossed.any(1), crossed.argmax(1), -1)
    spent = np.diff([0.0, *(seq.spent(t, 0.05, kind) for t in times)])
    for k, want in enumerate(spent):
        got = (first == k).mean()
        assert abs(got - want) < 4 * math.sqrt(want / reps) + 2e-5, (k, got, want)
    assert (first >= 0).mean() == pytest.approx(0.05, abs=0.002)


def test_spending_functions_spend_alpha_by_the_last_look_and_never_give_back():
    for kind in seq.SPENDING:
        vals = [seq.spent(t, 0.05, kind) for t in np.linspace(0, 1, 21)]
        assert vals[0] == 0 and vals[-1] == pytest.approx(0.05) and np.all(np.diff(vals) >= 0)
    assert seq.spent(0.3, 0.05, "obf") < seq.spent(0.3, 0.05, "pocock")  # O'Brien–Fleming spends little early


def test_a_plan_says_what_is_wrong_before_any_work():
    with pytest.raises(ValueError, match=r"max_seeds=2.*raise max_seeds"):
        seq.Plan.make([0, 1, 2], 2)
    with pytest.raises(ValueError, match=r"spending='lin'.*obf, pocock"):
        seq.Plan.make([0], 10, "lin")
    with pytest.raises(ValueError, match=r"max_runs=0"):
        seq.Plan.make([0], 10, max_runs=0)
    plan = seq.Plan.make([5, 2], 5)
    assert plan.seeds == (5, 2, 6, 7, 8) and plan.first == 2


# ---------------------------------------------------------------------------------------------- simulation
def _offset(err: float, s: float, tau: float) -> float:
    return stats.norm.ppf(err / 100) * math.sqrt(1 + s * s + tau * tau)


def study(rng, errs: dict, n: int, n_img: int, s: float, tau: float, rho: float = 0.8) -> dict:
    z = rng.standard_normal(n_img)
    v = rng.standard_normal(n)
    out = {}
    for name, err in errs.items():
        u = tau * (math.sqrt(rho) * v + math.sqrt(1 - rho) * rng.standard_normal(n))
        p = stats.norm.cdf(_offset(err, s, tau) + s * z[None, :] + u[:, None])
        wrong = 100.0 * (rng.random(p.shape) < p)
        out[name] = inf.Sample(wrong.mean(1), tuple(range(n)), wrong)
    return out


def adaptive_rates(delta: float, reps: int, max_seeds: int = 10, s: float = 1.5, tau: float = 0.1):
    """Over ``reps`` simulated adaptive studies (3 seeds first, one more a look up to ``max_seeds``): the share
    ending in a false verdict under the O'Brien–Fleming plan and under the naive one (α at every look); a false
    verdict is better/worse when ``delta`` = 0 and equivalent when |delta| >= the margin."""
    plan = seq.Plan.make(range(3), max_seeds)
    st = {"alpha": 0.05, "margin": 0.5, "correction": "holm"}
    naive = {n: (0.05, 0.05) for n in range(3, max_seeds + 1)}
    done = {"row": set(range(max_seeds)), "baseline": set(range(max_seeds))}
    rng = np.random.default_rng(7)
    false = {"planned": 0, "naive": 0}
    for _ in range(reps):
        data = study(rng, {"b": 17.0, "a": 17.0 + delta}, max_seeds, 1000, s, tau)
        for name, levels in (("planned", plan.levels(0.05)), ("naive", naive)):
            d = seq.decide(data["a"], data["b"], plan, levels, done, False, st["margin"])
            false[name] += d.verdict in (inf.BETTER, inf.WORSE) if delta == 0 else d.verdict == inf.EQUIVALENT
    return {k: v / reps for k, v in false.items()}


@pytest.mark.slow
def test_looking_after_every_seed_holds_the_error_rate_where_the_naive_scheme_inflates_it():
    reps = 1000
    rates = adaptive_rates(0.0, reps)
    se = math.sqrt(0.05 * 0.95 / reps)
    assert rates["planned"] <= 0.05 + 2 * se, rates  # held (within Monte Carlo error)
    assert rates["naive"] >= 0.10, rates  # 8 looks at α each: about 3× the promised rate


def test_a_look_happens_once_both_rows_have_the_plans_first_n_seeds():
    rng = np.random.default_rng(3)
    data = study(rng, {"b": 17.0, "a": 17.0}, 5, 500, 1.5, 0.1)
    plan = seq.Plan.make(range(3), 5)
    levels = plan.levels(0.05)
    d = seq.decide(data["a"], data["b"], plan, levels, {"row": {0, 1, 2, 3}, "baseline": {0, 1, 2}}, False, 0.1)
    assert d.open and d.n == 3 and d.owed == [("baseline", 3)]
    d = seq.decide(data["a"], data["b"], plan, levels, {"row": {0, 1}, "baseline": {0, 1}}, False, 0.1)
    assert d.open and d.n == 0 and d.owed == [("row", 2), ("baseline", 2)]
    all5 = {"row": set(range(5)), "baseline": set(range(5))}
    d = seq.decide(data["a"], data["b"], plan, levels, all5, False, 0.1)
    assert d.reason == "max_seeds" and d.n == 5 and d.verdict == inf.UNRESOLVED


def test_a_family_splits_alpha_and_a_lone_comparison_keeps_it():
    bases = {"plain": None, "avg": "plain", "max": "plain", "ecA": "avg"}
    assert seq.alpha_each(bases, 0.05, "holm") == {"avg": 0.025, "max": 0.025, "ecA": 0.05}
    assert seq.alpha_each(bases, 0.05, "none") == {"avg": 0.05, "max": 0.05, "ecA": 0.05}
