"""The group-sequential looks of an adaptive study: boundaries checked against published values and
a Monte Carlo of the statistics they assume, and whole adaptive studies simulated with a known truth to show the
error rate held across looks where the naive scheme (α at every look) inflates it.

The simulated study is ``simulate.py``'s (N test images with a difficulty each; a run errs on an image
with probability Φ(a_r + s·z_i + u_rj), seeds shared by the rows that ran them), drawn for ``max_seeds`` seeds
at once: the looks read the first n seeds, so later seeds cannot change an earlier look, as in a real sweep.
"""

import math

import numpy as np
import pytest

from senet_ablate.study import inference as inf
from senet_ablate.study import sequential as seq
from senet_ablate.study import simulate

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
    with pytest.raises(ValueError, match=r"spending='lin'.*pocock, obf"):
        seq.Plan.make([0], 10, "lin")
    with pytest.raises(ValueError, match=r"max_runs=0"):
        seq.Plan.make([0], 10, max_runs=0)
    plan = seq.Plan.make([5, 2], 5)
    assert plan.seeds == (5, 2, 6, 7, 8) and plan.first == 2 and plan.spending == "pocock"


def test_the_information_fraction_counts_the_test_images_that_more_seeds_do_not_shrink():
    """V(n) = s²/n + v_image: seeds alone give t = n / max; a test-image part makes the first look carry most
    of the information (here 0.57 at 3 of 10 seeds), so it spends more of α."""
    assert seq.information(1.0, 0.0, [3, 5, 10], 10) == (0.3, 0.5, 1.0)
    t = seq.information(1.0, 0.2, [3, 5, 10], 10)
    assert t[0] == pytest.approx((0.1 + 0.2) / (1 / 3 + 0.2), abs=1e-3) and t[-1] == 1.0
    early = seq.nominal_levels(seq.information(1.0, 0.2, range(3, 11), 10), 0.05, "pocock")[0]
    seeds_only = seq.nominal_levels(seq.information(1.0, 0.0, range(3, 11), 10), 0.05, "pocock")[0]
    assert early > 1.5 * seeds_only and early < 0.05  # measured: 0.034 vs 0.021


# ---------------------------------------------------------------------------------------------- simulation
def study(rng, errs: dict, n: int, n_img: int, s: float, tau: float, rho: float = 0.8) -> dict:
    world = simulate.World(errs=tuple(errs.values()), n_img=n_img, s=s, tau=(tau,), rho=rho)
    return dict(zip(errs, simulate.draw(rng, world, n)))


def adaptive_rates(delta: float, reps: int, max_seeds: int = 10, s: float = 1.5, tau: float = 0.1):
    """Over ``reps`` simulated adaptive studies (3 seeds first, one more a look up to ``max_seeds``): the share
    ending in a false verdict under the plan and under the naive scheme (each look at α); a false verdict is
    better/worse when ``delta`` = 0 and equivalent when |delta| >= the margin."""
    world = simulate.World(errs=(17.0, 17.0 + delta), n_img=500, s=s, tau=(tau,))
    plan = seq.Plan.make(range(3), max_seeds)
    rng = np.random.default_rng(7)
    false = {"planned": 0, "naive": 0}
    for _ in range(reps):
        out = simulate.adaptive_run(rng, world, plan, 0.5)
        naive = next((v for n, v in sorted(out.fixed.items()) if n >= 3 and v != inf.UNRESOLVED), inf.UNRESOLVED)
        for name, v in (("planned", out.verdict), ("naive", naive)):
            false[name] += simulate.false_claim([v], [delta], 0.5)
    return {k: v / reps for k, v in false.items()}


@pytest.mark.slow
def test_looking_after_every_seed_holds_the_error_rate_where_the_naive_scheme_inflates_it():
    reps = 400
    rates = adaptive_rates(0.0, reps, s=1.0, tau=0.15)
    se = math.sqrt(0.05 * 0.95 / reps)
    assert rates["planned"] <= 0.05 + 2 * se, rates  # held (within Monte Carlo error)
    assert rates["naive"] >= 0.10, rates  # 8 looks at α each: about 3× the promised rate


def test_a_look_happens_once_both_rows_have_the_plans_first_n_seeds():
    rng = np.random.default_rng(3)
    data = study(rng, {"b": 17.0, "a": 17.0}, 5, 500, 1.5, 0.1)
    plan = seq.Plan.make(range(3), 5, table={"margin": 0.1})
    plan.freeze({"a": "b", "b": None})
    d = seq.replay(data, {"a": {0, 1, 2, 3}, "b": {0, 1, 2}}, plan)["a"]
    assert d.open and d.n == 3 and d.owed == [("b", 3)]
    d = seq.replay(data, {"a": {0, 1}, "b": {0, 1}}, plan)["a"]
    assert d.open and d.n == 0 and d.owed == [("a", 2), ("b", 2)]
    d = seq.replay(data, {"a": set(range(5)), "b": set(range(5))}, plan)["a"]
    assert d.reason in ("max_seeds", "images") and d.verdict == inf.UNRESOLVED


def test_a_plan_freezes_its_rows_and_splits_alpha_over_them_once():
    plan = seq.Plan.make([0, 1, 2], 10)
    assert plan.freeze({"plain": None, "avg": "plain", "max": "plain", "ecA": "avg"})
    assert plan.shares == {"avg": 0.05 / 3, "max": 0.05 / 3, "ecA": 0.05 / 3}
    assert not plan.freeze({"plain": None, "avg": "plain", "other": "plain"})  # a later look keeps the first
    assert set(plan.compared) == {"avg", "max", "ecA"}
    lone = seq.Plan.make([0, 1, 2], 10, table={"correction": "none"})
    lone.freeze({"plain": None, "avg": "plain", "max": "plain"})
    assert lone.shares == {"avg": 0.05, "max": 0.05}
