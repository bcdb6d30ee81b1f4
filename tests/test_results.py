"""The results layer: a collector that survives damaged runs, and table statistics checked
against scipy on known numbers."""

import json
import logging
import math

import pandas as pd
import pytest
from conftest import table_row
from scipy import stats

from senet_ablate.records import write_record
from senet_ablate.study.collect import collect, export
from senet_ablate.study.formats import to_latex, to_markdown
from senet_ablate.study.inference import Sample, compare
from senet_ablate.study.report import report
from senet_ablate.study.tables import study_table, summary

SPEC = {
    "title": "toy study",
    "baseline": "base",
    "rows": {
        "base": {"label": "Baseline", "set": ["se.stages=[]"], "paper": {"top1_err": 23.3}},
        "se": {"label": "SE", "set": ["se.squeeze=avg"], "paper": {"top1_err": 22.28}},
    },
}
ERRS = {"base": [20.0, 22.0, 27.0], "se": [10.0, 12.0, 14.0]}


def trained(row, seed, top1, finished="2026-01-01T00:00:00", **extra):
    return {
        "status": "completed",
        "task": "train",
        "study": "toy",
        "row": row,
        "seed": seed,
        "fingerprint": f"fp-{row}",
        "finished_at": finished,
        "params": 1000,
        "macs": 5000,
        "elementwise_ops": 10,
        "gflops": 5.01e-6,
        "params_m": 0.001,
        "input_size": 8,
        "top1_err": top1,
        "top5_err": top1 / 10,
        "epochs_done": 3,
        "images_per_s": 100.0,
        "overrides": [f"row={row}", f"seed={seed}"],
        "config": {"table": SPEC, "model": {"name": "m"}},
        **extra,
    }


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "runs/toy"
    for row, errs in ERRS.items():
        for seed, e in enumerate(errs):
            write_record(root / f"row={row},seed={seed}", trained(row, seed, e))
    return root


DAMAGED = {  # name -> what lands in <dir>/metrics.json (bytes), or a callable making the dir
    "empty_file": b"",
    "truncated_json": b'{"status": "completed", "task": "tra',
    "not_utf8": b"\xff\xfe\x00garbage\x81",
    "json_list": b"[1, 2, 3]",
    "no_status": json.dumps({"task": "train", "study": "toy"}).encode(),
    "unknown_status": json.dumps({**trained("se", 7, 1.0), "status": "done"}).encode(),
    "missing_metrics": json.dumps({k: v for k, v in trained("se", 8, 1.0).items() if k != "params"}).encode(),
    "wrong_type": json.dumps({**trained("se", 9, 1.0), "params": "lots"}).encode(),
    "non_finite": json.dumps({**trained("se", 10, 1.0), "top1_err": float("nan")}).encode(),
    "config_not_mapping": json.dumps({**trained("se", 11, 1.0), "config": [1, 2]}).encode(),
    "empty_run_dir": None,  # a job dir with Hydra's .hydra/ but no record
    "record_is_a_dir": "dir",
}


def test_collector_keeps_every_valid_run_and_warns_once_per_damaged_one(sweep, caplog):
    for name, content in DAMAGED.items():
        d = sweep / f"damaged_{name}"
        (d / ".hydra").mkdir(parents=True)
        if isinstance(content, bytes):
            (d / "metrics.json").write_bytes(content)
        elif content == "dir":
            (d / "metrics.json").mkdir()
    (sweep / "notes.txt").write_text("not a record")
    with caplog.at_level(logging.WARNING, logger="senet_ablate"):
        df, specs = collect([sweep])
    assert len(df) == 6 and set(df["status"]) == {"completed"}
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == len(DAMAGED)
    for name in DAMAGED:
        assert sum(f"damaged_{name}" in w for w in warned) == 1, name
    assert specs == {"toy": SPEC}
    assert df.loc[0, "set:row"] in ("base", "se")  # swept keys flattened


def test_duplicates_resolve_to_the_newest_completed_run(sweep):
    write_record(sweep / "rerun_new", trained("se", 0, 99.0, finished="2027-01-01T00:00:00"))
    write_record(
        sweep / "rerun_failed",
        {**trained("se", 1, 55.0, finished="2028-01-01T00:00:00"), "status": "failed", "reason": "x"},
    )
    df, _ = collect([sweep])
    se = df[df["row"] == "se"].sort_values("seed")
    assert se["top1_err"].tolist() == [99.0, 12.0, 14.0]
    assert len(df) == 6


def test_failed_and_running_runs_are_counted_not_averaged(sweep):
    write_record(sweep / "extra_fail", {**trained("se", 5, 0.0), "status": "failed", "reason": "diverged"})
    write_record(sweep / "extra_run", {**trained("se", 6, 0.0), "status": "running"})
    df, specs = collect([sweep])
    t = study_table(df, specs["toy"]).frame.set_index("row")
    assert t.loc["se", "top1_err_n"] == 3 and t.loc["se", "top1_err_mean"] == 12.0
    assert (t.loc["se", "failed"], t.loc["se", "running"]) == (1, 1)


def test_statistics_match_scipy_on_known_numbers(sweep):
    df, specs = collect([sweep])
    t = study_table(df, specs["toy"]).frame.set_index("row")
    se = t.loc["se"]
    # by hand: mean 12, sample std 2. The seed spread is pooled across the rows (pooling.py): variances 13 and
    # 4 on 2 df each; Smyth's moment excess log(13/4)²/2 - trigamma(1) = 0.69 - 1.64 < 0, so the prior df is
    # infinite and both rows take the pooled (2·13 + 2·4)/4 = 8.5 on 4 df: half-width t(0.975, 4)·√(8.5/3) =
    # 2.7764 × 1.6833 = 4.6735
    assert se["top1_err_mean"] == 12.0 and se["top1_err_std"] == pytest.approx(2.0)
    assert se["top1_err_ci95"] == pytest.approx(4.6735, abs=1e-4) and se["top1_err_seed_df"] == 4
    lo, hi = stats.t.interval(0.95, 4, loc=12.0, scale=math.sqrt(8.5 / 3))
    assert (12 - se["top1_err_ci95"], 12 + se["top1_err_ci95"]) == pytest.approx((lo, hi))
    assert se["top1_err_delta"] == pytest.approx(12.0 - 23.0)
    # both rows ran seeds 0, 1, 2 and the records have no predictions: the paired t-test on the seed values
    assert se["top1_err_paired"]
    assert se["top1_err_p"] == pytest.approx(stats.ttest_rel(ERRS["se"], ERRS["base"]).pvalue)
    # by hand: per-seed Δ -10, -10, -13: mean -11, std √3, SE 1, CI ± t(0.975, 2) = ± 4.303
    assert se["top1_err_delta_ci95"] == pytest.approx(4.3027, abs=1e-4)
    assert se["top1_err_verdict"] == "better" and t.loc["base", "top1_err_verdict"] == "baseline"
    assert math.isnan(t.loc["base", "top1_err_delta"])
    wide = to_markdown(study_table(df, specs["toy"]), specs["toy"], wide=True)
    assert "| SE | 12.00 ± 2.00 | 3 | [7.33, 16.67] | -11.00 | [-15.30, -6.70] | 0.008 | better (seeds only) |" in wide
    assert "paired t-test" in wide and "leaves out the test sample" in wide and "*" not in wide.split("\n\n")[2]
    md = to_markdown(study_table(df, specs["toy"]), specs["toy"])  # the brief table: mean ± 95% CI half-width
    assert table_row(md, "SE")[1:4] == ["12.00 ± 4.67", "-11.00 [-15.30, -6.70]", "better (seeds only)"]
    assert "- SE vs Baseline: better (seeds only) — Δ -11.00 [-15.30, -6.70] top-1 points, 3 seeds paired" in md
    tex = to_latex(study_table(df, specs["toy"]), specs["toy"])
    assert r"\toprule" in tex and r"12.00 $\pm$ 4.67" in tex and r"\bottomrule" in tex


def test_detection_runs_give_ap_columns_and_a_classification_table_has_none(sweep, tmp_path):
    """task=detect records (Table 7): AP and AP50 with n, CI, Δ and the paper's cell, the other COCO scores as
    mean ± std; no error column. The classification sweep's table has no AP column."""
    spec = {
        "title": "det",
        "baseline": "base",
        "rows": {"base": {"label": "R50", "paper": {"ap": 38.0}}, "se": {"label": "SE-R50", "paper": {"ap": 40.4}}},
    }
    root = tmp_path / "runs/det"
    for row, aps in {"base": [30.0, 32.0, 34.0], "se": [36.0, 37.0, 38.0]}.items():
        for seed, ap in enumerate(aps):
            rec = trained(
                row,
                seed,
                0.0,
                ap=ap,
                ap50=ap + 20,
                ap75=ap - 5,
                ap_small=float("nan"),
                ap_medium=ap,
                ap_large=ap + 1,
                task="detect",
                study="det",
                config={"table": spec, "model": {"name": "m"}},
            )
            del rec["top1_err"], rec["top5_err"]
            write_record(root / f"row={row},seed={seed}", rec)
    df, specs = collect([root])
    t = study_table(df, specs["det"]).frame.set_index("row")
    # by hand: SE mean 37, std 1; base mean 32, std 2; Δ +5
    assert (t.loc["se", "ap_mean"], t.loc["se", "ap_std"], t.loc["se", "ap_delta"]) == (37.0, 1.0, 5.0)
    assert t.loc["se", "ap_p"] == pytest.approx(stats.ttest_rel([36, 37, 38], [30, 32, 34]).pvalue)
    assert t.loc["se", "ap_verdict"] == "better"  # higher AP is better
    md = to_markdown(study_table(df, specs["det"]), specs["det"], wide=True)
    head = "| Row | AP | n | 95% CI | Δ | Δ CI (verdict's) | p (adj.) | AP verdict | AP paper | AP50 | n | 95% CI | Δ |"
    assert head in md
    row = (
        "| SE-R50 | 37.00 ± 1.00 | 3 | [34.47, 39.53] | +5.00 | [+2.52, +7.48] | 0.013 | better (seeds only) | 40.40 |"
    )
    assert row in md and "AP has no per-image form" in md
    assert "top-1" not in md.split("\n\n")[2] and "AP_S" not in md  # no error column; AP_S all NaN
    df, specs = collect([sweep])
    assert "| AP " not in to_markdown(study_table(df, specs["toy"]), specs["toy"])


def test_a_preset_that_gained_a_row_shows_it_beside_the_older_runs(sweep):
    """Runs of an older version of the preset keep their rows; the newest record's table spec decides."""
    spec = {**SPEC, "rows": {**SPEC["rows"], "sk": {"label": "SK", "set": ["attention=sk"]}}}
    rec = trained("sk", 0, 9.0, finished="2026-02-01T00:00:00", config={"table": spec, "model": {"name": "m"}})
    write_record(sweep / "row=sk,seed=0", rec)
    df, specs = collect([sweep])
    t = study_table(df, specs["toy"]).frame.set_index("row")
    assert list(t.index) == ["base", "se", "sk"] and t.loc["sk", "top1_err_mean"] == 9.0
    assert t.loc["se", "top1_err_n"] == 3


def test_single_run_cells_show_no_ci():
    s = summary([5.0])
    assert s["n"] == 1 and s["mean"] == 5.0 and math.isnan(s["ci95"]) and math.isnan(s["std"])
    assert math.isnan(compare(Sample([1.0], (0,)), Sample([2.0, 3.0], (0, 1))).p_value())


def test_report_writes_all_formats_and_is_byte_identical_when_rerun(sweep):
    report([sweep])
    files = {n: (sweep / n).read_bytes() for n in ("table.md", "table.tex", "table.csv", "runs.csv")}
    assert pd.read_parquet(sweep / "runs.parquet").shape[0] == 6
    report([sweep])
    assert {n: (sweep / n).read_bytes() for n in files} == files


def test_export_round_trips(sweep, tmp_path):
    df, _ = collect([sweep])
    csv, parquet = export(df, tmp_path / "out")
    back = pd.read_parquet(parquet)
    public = [c for c in df.columns if not c.startswith("_")]  # _flat, _choices, _typed: grouping's, not exported
    assert list(back.columns) == public and back["top1_err"].tolist() == df["top1_err"].tolist()


def test_error_vs_reduction_ratio_figure(tmp_path):
    spec = {
        "title": "r sweep",
        "baseline": "r16",
        "rows": {f"r{r}": {"label": f"r = {r}", "set": [f"se.reduction={r}"]} for r in (4, 8, 16, 32)},
    }
    for r in (4, 8, 16, 32):
        for seed in range(2):
            write_record(
                tmp_path / f"runs/r/row=r{r},seed={seed}",
                {
                    **trained(f"r{r}", seed, 20 + r / 8 + seed, params_m=25 + 8 / r),
                    "study": "r",
                    "config": {"table": spec, "data": {"name": "digits"}},
                },
            )
    report([tmp_path / "runs/r"])
    figs = {p.name for p in (tmp_path / "runs/r/figures").iterdir()}
    assert {"error_vs_se_reduction.png", "error_vs_se_reduction.svg", "pareto_params.png"} <= figs


@pytest.mark.parametrize(
    ("params_m", "gflops", "drawn"),
    [
        ([0.27, 0.272, 0.272], [2.5, 2.6, 2.6], {"pareto_gflops"}),  # one ranking: one picture
        ([0.27, 0.272, 0.28], [2.5, 2.6, 2.55], {"pareto_gflops", "pareto_params"}),  # a pair reversed
        ([0.27, 0.272, 0.28], [2.5, 2.6, 2.6], {"pareto_gflops", "pareto_params"}),  # tied by GFLOPs alone
        ([0.27, 0.27, 0.27], [2.5, 2.6, 2.7], {"pareto_gflops"}),  # params all one: no params plot
    ],
)
def test_pareto_params_is_drawn_only_where_params_rank_the_rows_otherwise_than_gflops(
    tmp_path, params_m, gflops, drawn
):
    from senet_ablate.study.plots import pareto
    from senet_ablate.study.tables import StudyTable

    frame = pd.DataFrame(
        {
            "row": ["a", "b", "c"],
            "label": ["A", "B", "C"],
            "top1_err_n": [2, 2, 2],
            "top1_err_mean": [10.0, 9.0, 9.5],
            "top1_err_ci95": [1.0, 1.0, 1.0],
            "params_m": params_m,
            "gflops": gflops,
        }
    )
    paths = pareto(StudyTable(frame), {"title": "t", "baseline": "a"}, None, tmp_path)
    assert {p.stem for p in paths} == drawn


def test_the_table_says_where_its_images_per_s_were_measured_and_warns_when_setups_mix(tmp_path):
    root = tmp_path / "runs/toy"
    h100 = {"device_name": "NVIDIA H100 80GB HBM3", "amp": "bf16", "channels_last": True, "compile": "default"}
    for row, errs in ERRS.items():
        for seed, e in enumerate(errs):
            write_record(root / f"row={row},seed={seed}", trained(row, seed, e, **h100))
    df, specs = collect([root])
    md = to_markdown(study_table(df, specs["toy"]), specs["toy"])
    assert "train img/s measured on: NVIDIA H100 80GB HBM3, bf16, channels_last=True, compile=default." in md
    write_record(
        root / "row=se,seed=9",
        trained("se", 9, 1.0, **{**h100, "device_name": "cpu: AMD EPYC", "amp": "fp32", "compile": False}),
    )
    df, specs = collect([root])
    md = to_markdown(study_table(df, specs["toy"]), specs["toy"])
    assert "train img/s mixes 2 setups, compare speeds within one only: " in md
    assert "cpu: AMD EPYC, fp32, channels_last=True, compile=False" in md and "NVIDIA H100 80GB HBM3, bf16" in md
