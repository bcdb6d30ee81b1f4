"""Main effects, interactions and the best setting (senet_ablate/study/factorial.py): contrast weights written
out by hand, estimates checked against arithmetic on the cell means and against scipy's one-sample t-test,
error rates and power by simulation with a known truth, and the tour's 2 × 2 sweep end to end."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from conftest import run_cli
from scipy import stats

from senet_ablate.study import factorial
from senet_ablate.study import inference as inf


def spec_of(levels: dict) -> dict:
    """An ad-hoc study's spec over the full grid of ``levels`` ({key: [values]})."""
    rows = {}
    for combo in itertools.product(*levels.values()):
        values = dict(zip(levels, combo))
        label = ", ".join(f"{k}={v}" for k, v in values.items())
        rows[label] = {"label": label, "values": values}
    return {"adhoc": True, "keys": list(levels), "rows": rows}


TOUR = spec_of({"se.squeeze": ["avg", "max"], "se.gate": ["sigmoid", "tanh"]})


def samples_for(spec: dict, truth: dict, seeds: int, rng, sd: float = 0.3, images: int | None = None) -> dict:
    """{row: Sample} with per-seed values truth[row] + a seed effect shared by the rows + noise."""
    shared = rng.normal(0, sd, seeds)
    out = {}
    for row in spec["rows"]:
        values = truth[row] + shared + rng.normal(0, sd, seeds)
        per_image = None
        if images:  # a per-image table whose image means equal the run's error exactly
            per_image = np.repeat(values[:, None], images, axis=1) + rng.normal(0, 1e-6, (seeds, images))
            per_image -= per_image.mean(1, keepdims=True) - values[:, None]
        out[row] = inf.Sample(values, tuple(range(seeds)), per_image)
    return out


def test_a_full_grid_is_found_and_a_partial_one_or_one_key_is_not():
    assert [f.key for f in factorial.grid(TOUR)] == ["se.squeeze", "se.gate"]
    assert factorial.grid(TOUR)[0].levels == ("avg", "max")
    partial = {**TOUR, "rows": dict(list(TOUR["rows"].items())[:3])}
    assert factorial.grid(partial) is None
    assert factorial.grid(spec_of({"se.reduction": ["4", "8", "16"]})) is None
    assert factorial.grid({**TOUR, "adhoc": False}) is None  # a preset's rows are not a grid of keys


def test_contrast_weights_are_the_textbook_ones():
    cons = factorial.contrasts(factorial.grid(TOUR), TOUR["rows"])
    assert [c.kind for c in cons] == ["main", "main", "interaction"]
    a = "se.squeeze=avg, se.gate=sigmoid"
    b = "se.squeeze=max, se.gate=sigmoid"
    c = "se.squeeze=avg, se.gate=tanh"
    d = "se.squeeze=max, se.gate=tanh"
    assert cons[0].weights == {a: -0.5, b: 0.5, c: -0.5, d: 0.5}  # squeeze: max − avg, averaged over gates
    assert cons[1].weights == {a: -0.5, b: -0.5, c: 0.5, d: 0.5}
    assert cons[2].weights == {a: 1, b: -1, c: -1, d: 1}  # (max − avg at tanh) − (max − avg at sigmoid)
    three = spec_of({"se.reduction": ["4", "8", "16"], "se.squeeze": ["avg", "max"]})
    cons3 = factorial.contrasts(factorial.grid(three), three["rows"])
    assert [c.kind for c in cons3].count("main") == 3 and [c.kind for c in cons3].count("interaction") == 2
    assert all(abs(sum(c.weights.values())) < 1e-12 for c in cons3)


def test_an_effect_is_the_cell_mean_arithmetic_and_a_lone_contrast_is_scipys_t_test():
    rng = np.random.default_rng(0)
    truth = dict(zip(TOUR["rows"], (10.0, 10.2, 11.0, 12.5)))
    data = samples_for(TOUR, truth, seeds=5, rng=rng)
    cons = factorial.contrasts(factorial.grid(TOUR), TOUR["rows"])
    m = {k: s.values.mean() for k, s in data.items()}
    a, b = m["se.squeeze=avg, se.gate=sigmoid"], m["se.squeeze=max, se.gate=sigmoid"]
    c, d = m["se.squeeze=avg, se.gate=tanh"], m["se.squeeze=max, se.gate=tanh"]
    found = factorial.effects(data, cons, "top1_err", 0.05, None)
    assert found[0].estimate.mean == pytest.approx(((b - a) + (d - c)) / 2)
    assert found[1].estimate.mean == pytest.approx(((c - a) + (d - b)) / 2)
    assert found[2].estimate.mean == pytest.approx((d - c) - (b - a))
    alone = factorial.effects(data, [cons[2]], "top1_err", 0.05, None)[0]  # one contrast: its own spread
    per_seed = sum(w * data[k].values for k, w in cons[2].weights.items())
    assert alone.estimate.p_value() == pytest.approx(stats.ttest_1samp(per_seed, 0).pvalue)
    lo, hi = stats.t.interval(0.95, 4, per_seed.mean(), stats.sem(per_seed))
    assert alone.interval == pytest.approx((lo, hi))


def test_no_effects_keep_the_family_error_within_alpha_and_a_large_one_is_found():
    """Simulated 2 × 2 studies, 3 seeds, seeds and images: with every effect 0 at most α of the studies make
    any false claim; a main effect of 6 seed-spreads is found in most."""
    rng = np.random.default_rng(1)
    cons = factorial.contrasts(factorial.grid(TOUR), TOUR["rows"])
    null = dict.fromkeys(TOUR["rows"], 10.0)

    def claims(data: dict) -> bool:
        return any(e.verdict != inf.UNRESOLVED for e in factorial.effects(data, cons, "top1_err", 0.05, None))

    false = sum(claims(samples_for(TOUR, null, 3, rng)) for _ in range(600))
    assert false / 600 <= 0.05 + 0.025  # 0.05 plus 2.8 binomial standard errors (docs/statistics.md: 3,000 reps)
    big = dict(zip(TOUR["rows"], (10.0, 10.0, 11.8, 11.8)))  # squeeze max: +1.8 = 6 × the seed sd of a contrast
    found = [
        factorial.effects(samples_for(TOUR, big, 3, rng, images=50), cons, "top1_err", 0.05, None)[0].verdict
        for _ in range(200)
    ]
    assert found.count(inf.WORSE) / 200 > 0.5


def test_the_best_row_and_those_not_distinguishable_from_it():
    spec = spec_of({"se.reduction": ["2", "4", "8", "16"]})
    rows = list(spec["rows"])
    truth = dict(zip(rows, (14.0, 10.0, 10.05, 10.1)))
    data = samples_for(spec, truth, seeds=5, rng=np.random.default_rng(2), sd=0.1)
    b = factorial.best(data, rows, "top1_err", 0.05)
    assert b.best == rows[1] and set(b.tied) <= {rows[2], rows[3]} and b.worse == [rows[0]]
    assert factorial.best(data, rows[:2], "top1_err", 0.05) is None  # two rows: a comparison, not a best


@pytest.mark.slow
def test_the_tour_sweep_answers_first_fits_120_columns_and_draws_its_effects(tmp_path):
    out = run_cli(
        "run.app", "-m", "recipe.epochs=1", "se.squeeze=avg,max", "se.gate=sigmoid,tanh", "seed=0,1", cwd=tmp_path
    ).stdout
    md = (tmp_path / "runs/adhoc/table.md").read_text()
    assert md in out  # what the sweep printed is table.md
    said = md.split("\n\n")[1]
    assert said.startswith("- se.squeeze=avg, se.gate=tanh vs se.squeeze=avg, se.gate=sigmoid: ")  # the order typed
    assert re.search(r"main effect se\.squeeze: max − avg: \w+ — Δ [+-]\d", said)
    assert re.search(r"interaction se\.squeeze × se\.gate: .*: \w+ — Δ [+-]\d", said)
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert max(len(line) for line in table) <= 120
    assert "| Main effect / interaction (top-1)" in md
    figures = tmp_path / "runs/adhoc/figures"
    assert (figures / "forest_top1_err.png").is_file()
    assert (figures / "interaction_se_squeeze_se_gate.png").is_file()


def test_a_presets_best_rows_are_answered_and_a_grid_of_three_levels_names_its_best_level():
    """Table 10's question as its preset asks it (``table.best``: the SE rows), and a 3 × 2 grid's key of three
    levels: its best level averaged over the other key."""
    spec = spec_of({"se.reduction": ["2", "4", "8", "16"]})
    rows = list(spec["rows"])
    preset = {"rows": {**spec["rows"], "plain": {}}, "best": rows}  # the baseline row is not among the candidates
    truth = dict(zip(rows, (14.0, 10.0, 10.05, 10.1)), plain=30.0)
    data = samples_for(preset, truth, seeds=5, rng=np.random.default_rng(3), sd=0.1)
    effects, bests = factorial.answers({k: {"top1_err": s} for k, s in data.items()}, preset, "top1_err", 0.05, None)
    assert effects == [] and bests[0][1].best == rows[1] and "plain" not in bests[0][1].worse
    grid = spec_of({"se.reduction": ["2", "4", "8"], "se.squeeze": ["avg", "max"]})
    truth = {k: 10.0 + 3 * (r["values"]["se.reduction"] == "2") for k, r in grid["rows"].items()}
    data = samples_for(grid, truth, seeds=4, rng=np.random.default_rng(4), sd=0.1)
    effects, bests = factorial.answers({k: {"top1_err": s} for k, s in data.items()}, grid, "top1_err", 0.05, None)
    assert len(effects) == 5 and [w for w, _ in bests] == ["se.reduction "]
    assert bests[0][1].worse == ["se.reduction=2"] and bests[0][1].best in ("se.reduction=4", "se.reduction=8")
