"""Verdicts end to end, on real runs (sklearn digits: 450 test images, 10 classes): every run writes the
predictions behind its error, a run at chance is set apart, and the table says per row what it may conclude."""

import re

import numpy as np
import pandas as pd
import pytest
from conftest import record, run_cli, run_job, squash, table_row
from test_results import trained

from senet_ablate.records import predictions, write_record
from senet_ablate.study.collect import collect
from senet_ablate.study.formats import to_latex, to_markdown
from senet_ablate.study.inference import settings
from senet_ablate.study.report import report
from senet_ablate.study.tables import study_table


@pytest.fixture(scope="module")
def lr_sweep(tmp_path_factory):
    """Two rows, two seeds, one epoch: lr 0.05 trains (13% error), lr 1e-9 does not (89.8%, chance is 90%)."""
    where = tmp_path_factory.mktemp("lr")
    out = run_cli("run.app", "-m", "recipe.epochs=1", "recipe.lr=0.05,1e-9", "seed=0,1", cwd=where).stdout
    return where, out


def test_every_trained_run_writes_predictions_that_give_its_recorded_errors(lr_sweep):
    where, _ = lr_sweep
    dirs = sorted((where / "runs/adhoc").glob("*recipe.lr=*"))
    assert len(dirs) == 4
    keys = set()
    for d in dirs:
        p, rec = predictions.read(d), record(d)
        assert p.top5.shape == (450, 5) and p.label.shape == (450,) and rec["eval_images"] == 450
        assert (p.error(1), p.error(5)) == pytest.approx((rec["top1_err"], rec["top5_err"]), abs=1e-9)
        assert (d / "predictions.npz").stat().st_size < 10_000
        keys.add(p.key)
    assert len(keys) == 1  # the same images in the same order, the same labels


def test_a_row_at_chance_did_not_train_and_is_left_out(lr_sweep):
    where, out = lr_sweep
    assert table_row(out, "recipe.lr=1e-09")[1:4] == ["–", "–", "did not train"]  # no mean, no Δ: its verdict
    assert table_row(out, "recipe.lr=1e-09")[-1] == "2 (2 untrained)"
    assert "Did not train (top-1 error not distinguishable from chance" in out
    [seed0] = (where / "runs/adhoc").glob("*recipe.lr=1e-09,seed=0")  # at chance: 89.78 or 90.00 by the thread count
    assert f"recipe.lr=1e-09 seed 0 ({record(seed0)['top1_err']:.2f}%)" in out  # named, with its error
    # one row of all four runs (--by a key they share): the mean is over the two that trained
    md = report([where / "runs/adhoc"], write=False, by=["recipe.epochs"], wide=True)["adhoc"]
    trained = [record(d)["top1_err"] for d in sorted((where / "runs/adhoc").glob("*recipe.lr=0.05,*"))]
    mean = f"{np.mean(trained):.2f} ± {np.std(trained, ddof=1):.2f} | 2 |"
    assert mean in md and "4 done (2 did not train)" in md


def _toy(tmp_path, spec, rows: dict, seeds=(0, 1, 2), n_img=1000, agree=0.95, with_predictions=True):
    """Records (and predictions) of runs whose per-image errors are drawn so that row r errs on a share
    rows[r] of the images; runs of one seed share most of their mistakes (``agree``)."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 10, n_img)
    base_wrong = rng.random(n_img)
    root = tmp_path / "runs/toy"
    for seed in seeds:
        noise = rng.random(n_img)
        for row, err in rows.items():
            u = np.where(rng.random(n_img) < agree, base_wrong, noise)
            wrong = u < err / 100
            top5 = np.tile(np.arange(5), (n_img, 1))
            top5[:, 0] = np.where(wrong, (label + 1) % 10, label)
            top5[:, 1:] = (label[:, None] + np.arange(2, 6)) % 10
            top5[wrong, 1] = label[wrong]  # top-5 error 0, as the record says
            d = root / f"row={row},seed={seed}"
            if with_predictions:
                predictions.write(d, label, top5, "toy-order")
            config = {"table": spec, "model": {"name": "m"}}
            rec = trained(row, seed, 100 * wrong.mean(), top5_err=0.0, eval_images=n_img, num_classes=10, config=config)
            write_record(d, rec)
    return root


def test_a_rows_own_baseline_is_named_in_its_delta_and_the_table_carries_verdicts_in_every_format(tmp_path):
    spec = {
        "title": "toy",
        "baseline": "plain",
        "rows": {
            "plain": {"label": "Plain", "set": ["se.stages=[]"]},
            "avg": {"label": "SE avg", "set": ["se.squeeze=avg"]},
            "max": {"label": "SE max", "set": ["se.squeeze=max"], "baseline": "avg"},
        },
    }
    root = _toy(tmp_path, spec, {"plain": 20.0, "avg": 10.0, "max": 10.0})
    report([root])
    md = (root / "table.md").read_text()
    t = pd.read_csv(root / "table.csv").set_index("row")
    assert t.loc["avg", "top1_err_verdict"] == "better" and t.loc["plain", "top1_err_verdict"] == "baseline"
    assert " vs SE avg |" in md  # SE max's Δ is measured against SE avg, and says so
    assert t.loc["max", "baseline"] == "avg" and isinstance(t.loc["max", "top1_err_verdict"], str)
    assert t.loc["avg", "top1_err_method"] == "seeds+images" and t.loc["avg", "top1_err_paired"]
    assert t.loc["avg", "top1_err_prob_better"] == 1.0 and 0 <= t.loc["avg", "top1_err_prob_better_lo"] <= 1
    assert "| better |" in squash(md) and "*" not in md.split("\n\n")[2]  # the verdict replaces the stars
    assert "better" in (root / "table.tex").read_text()
    assert "Comparisons paired by seed" in md and "seeds and the test images together" in md


def test_a_preset_without_a_baseline_compares_with_the_row_with_se_off_and_says_so(tmp_path):
    spec = {
        "title": "mine",
        "rows": {
            "se": {"label": "SE", "set": ["se.squeeze=avg"]},
            "plain": {"label": "plain", "set": ["se.stages=[]"]},
            "mine": {"label": "mine", "set": ["se.module=x"]},
        },
    }
    root = _toy(tmp_path, spec, {"se": 10.0, "plain": 20.0, "mine": 12.0})
    df, specs = collect([root])
    table = study_table(df, specs["toy"])
    md = to_markdown(table, specs["toy"])
    assert "Δ is vs plain (no table.baseline: the row with SE off)" in md
    assert table.frame.set_index("row").loc["se", "top1_err_delta"] == pytest.approx(-10.0, abs=1.5)
    assert "[verdict's CI]" in md and r"\toprule" in to_latex(table, specs["toy"])
    # the verdict is read from the printed interval: 2 comparisons share alpha, so it is a 97.5% CI
    se = table.frame.set_index("row").loc["se"]
    assert se["top1_err_delta_level"] == pytest.approx(0.975) and se["top1_err_delta_hi"] < 0
    assert se["top1_err_verdict"] == "better" and "at 97.5% (one budget" in md


def test_records_without_predictions_still_tabulate_and_say_what_their_uncertainty_leaves_out(tmp_path):
    spec = {"title": "old", "baseline": "plain", "rows": {"plain": {}, "se": {}}}
    root = _toy(tmp_path, spec, {"plain": 20.0, "se": 12.0}, with_predictions=False)
    df, specs = collect([root])
    table = study_table(df, specs["toy"])
    md = to_markdown(table, specs["toy"])
    assert "the uncertainty leaves out the test sample" in md and "from the seeds only" in md
    assert table.frame.set_index("row").loc["se", "top1_err_method"] == "seeds"


@pytest.mark.filterwarnings("error")  # any warning (scipy's "precision loss", numpy's) fails the test
@pytest.mark.parametrize("with_predictions", [True, False])
def test_a_constant_column_tabulates_without_a_warning(tmp_path, with_predictions):
    """Every run of both rows errs on the same images (agree=1): the error, Δ and top-5 columns are
    constant. The table states what it can (Δ 0, no spread) and nothing reaches the user as a warning."""
    spec = {"title": "flat", "baseline": "plain", "rows": {"plain": {}, "se": {}}}
    root = _toy(tmp_path, spec, {"plain": 20.0, "se": 20.0}, agree=1.0, with_predictions=with_predictions)
    df, specs = collect([root])
    table = study_table(df, specs["toy"])
    md, tex = to_markdown(table, specs["toy"], wide=True), to_latex(table, specs["toy"])
    row = table.frame.set_index("row").loc["se"]
    assert row["top1_err_delta"] == 0 and "unresolved (shown: Δ within ±0.00)" in md and "Δ" in md and tex
    table = study_table(df, {**specs["toy"], "margin": 0.5})  # a stated margin: the claim it allows
    assert table.frame.set_index("row").loc["se", "top1_err_verdict"] == "equivalent"


def test_one_budget_changes_a_verdict_in_a_table(tmp_path):
    """Seven rows vs one baseline, up to 1.5 points better with 3 seeds: one comparison alone would be
    `better` at p < 0.05 for some rows; one budget across the seven leaves fewer (table.correction=none vs
    bonferroni), and each adjusted p is 7 × the raw one."""
    rows = {"plain": 20.0, **{f"r{i}": 20.0 - 0.25 * i for i in range(7)}}
    spec = {"title": "seven", "baseline": "plain", "rows": {k: {"label": k} for k in rows}}
    root = _toy(tmp_path, spec, rows, seeds=(0, 1, 2), n_img=4000, agree=0.9)
    df, specs = collect([root])
    holm = study_table(df, {**specs["toy"], "correction": "bonferroni"}).frame.set_index("row")
    none = study_table(df, {**specs["toy"], "correction": "none"}).frame.set_index("row")
    raw = none["top1_err_p"].drop("plain")
    assert np.allclose(holm["top1_err_p_adj"].drop("plain"), np.minimum(1, 7 * holm["top1_err_p"].drop("plain")))
    better = lambda t: int((t["top1_err_verdict"] == "better").sum())  # noqa: E731
    assert better(none) > better(holm), (raw.tolist(), holm["top1_err_p_adj"].tolist())


def test_bad_inference_settings_fail_before_any_work_naming_the_key(tmp_path):
    proc = run_cli("run.app", "table.correction=sidak", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "table.correction='sidak': valid values: bonferroni, none" in proc.stderr
    (rec,) = [record(p.parent) for p in (tmp_path / "runs").rglob("metrics.json")]
    assert rec["status"] == "failed" and "epochs_done" not in rec  # nothing trained, nothing claims success
    for key, value, said in (
        ("margin", -1, "table.margin=-1 must be a positive number"),
        ("margin", {"top1": 0.5}, "table.margin.top1: valid metrics: top1_err, top5_err, ap, ap50"),
        ("margin", {"ap": 0}, "table.margin.ap=0 must be a positive number"),
        ("alpha", 0.5, "table.alpha=0.5 must be a level in (0, 0.5)"),
        ("test", "bootstrap", "table.test='bootstrap': valid values: joint"),
        ("resamples", 10, "table.resamples=10 must be an integer >= 100"),
    ):  # the same check app.validate runs, without another process
        with pytest.raises(ValueError, match=re.escape(said)):
            settings({key: value})
    with pytest.raises(ValueError, match="table.margin=0.0"):
        report([tmp_path / "runs"], write=False, settings={"margin": 0.0})  # senet-report --margin 0


def test_figures_follow_the_table_runs_at_chance_apart_and_no_figure_without_information(lr_sweep):
    """Rows that share one params/GFLOPs value get no Pareto plot (every point on one x), and no study gets
    a plot of speed from its runs' img/s; the error-by-key plot is drawn."""
    where, out = lr_sweep
    figures = {p.name for p in (where / "runs/adhoc/figures").glob("*.png")}
    assert "error_vs_recipe_lr.png" in figures and "training_curves.png" in figures
    assert not figures & {"pareto_gflops.png", "pareto_params.png", "overhead.png"}, figures


def test_task_eval_writes_predictions_of_the_weights_it_scores(lr_sweep, tmp_path):
    where, _ = lr_sweep
    (run,) = [d for d in (where / "runs/adhoc").glob("*recipe.lr=0.05,seed=0")]
    run_job("task=eval", f"model.weights='{run / 'last.pt'}'", cwd=tmp_path)
    (rec_path,) = list((tmp_path / "runs").rglob("metrics.json"))
    rec, p = record(rec_path.parent), predictions.read(rec_path.parent)
    assert rec["status"] == "completed" and rec["num_classes"] == 10
    assert (p.error(1), p.error(5)) == pytest.approx((rec["top1_err"], rec["top5_err"]), abs=1e-9)
    assert p.key == predictions.read(run).key  # the same digits test images as the trained run's
    assert p.error(1) == pytest.approx(record(run)["top1_err"], abs=0.5)  # its own weights, scored again


def test_a_default_baseline_that_did_not_train_gives_way_to_the_first_row_that_did(tmp_path):
    """The first row errs on 90% of the images, a 10-class guess: by default it is no baseline, and the notes
    say why; a baseline chosen by hand stays."""
    spec = {"title": "dead first", "rows": {"dead": {"label": "lr 1e-9"}, "one": {"label": "1 epoch"}, "eight": {}}}
    root = _toy(tmp_path, spec, {"dead": 90.0, "one": 13.0, "eight": 2.0})
    df, specs = collect([root])
    table = study_table(df, specs["toy"])
    assert table.baseline == "one" and "lr 1e-9, the default, did not train" in table.baseline_why
    assert table.frame.set_index("row").loc["eight", "top1_err_verdict"] == "better"
    assert "Δ is vs 1 epoch (lr 1e-9, the default, did not train" in to_markdown(table, specs["toy"])
    kept = study_table(df, {**specs["toy"], "baseline": "dead"})
    assert kept.baseline == "dead"  # by hand: kept, and its rows get no verdict
    assert kept.frame.set_index("row").loc["eight", "top1_err_verdict"] == "no verdict"
