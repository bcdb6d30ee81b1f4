"""A researcher's own study: every sweep ends in its table (rows = the keys its runs differ in,
seeds aggregated), senet-report groups and filters any set of run dirs, rows that mix configs are
flagged, every printed command runs as printed, and a preset's table is what it was."""

import json
import shlex
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, clean_env, run_cli, run_job

from senet_ablate.errors import ConfigError

PROFILE = ["task=profile", "model=cifar_resnet20"]


def table_rows(text: str) -> list[str]:
    """The first cell of every body row of the first Markdown table in ``text``."""
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Row")]
    return [r.split(" | ")[0][2:].strip() for r in rows]


def test_an_adhoc_2x2_profile_sweep_prints_its_4_row_table_and_writes_it(tmp_path):
    out = run_cli("run.app", "-m", *PROFILE, "se.squeeze=avg,max", "se.reduction=4,8", cwd=tmp_path).stdout
    assert "**adhoc: se.squeeze × se.reduction**" in out
    assert table_rows(out) == [
        "se.squeeze=avg, se.reduction=4",
        "se.squeeze=avg, se.reduction=8",
        "se.squeeze=max, se.reduction=4",
        "se.squeeze=max, se.reduction=8",
    ]
    assert "belong to no study table" not in out
    where = tmp_path / "runs/adhoc"
    for name in ("table.md", "table.tex", "table.csv", "dashboard.html"):
        assert (where / name).is_file(), name
    t = pd.read_csv(where / "table.csv").set_index("row")
    # the squeeze adds no parameter; r = 4 adds more than r = 8 (ResNet-20: stage widths 16/32/64, 3 units each)
    assert t.loc["se.squeeze=avg, se.reduction=4", "params_m"] == t.loc["se.squeeze=max, se.reduction=4", "params_m"]
    extra4 = 3 * sum(2 * c * (c // 4) + c // 4 + c for c in (16, 32, 64))  # two FCs with biases per unit
    extra8 = 3 * sum(2 * c * (c // 8) + c // 8 + c for c in (16, 32, 64))
    diff = t.loc["se.squeeze=avg, se.reduction=4", "params_m"] - t.loc["se.squeeze=avg, se.reduction=8", "params_m"]
    assert diff == pytest.approx((extra4 - extra8) / 1e6, abs=1e-9)
    assert "Δ paper" not in out and "minus the paper" not in out  # no paper column, no word of one


@pytest.mark.slow
def test_a_train_sweep_aggregates_seeds_with_cis_power_and_bars(tmp_path):
    out = run_cli("run.app", "-m", "recipe.epochs=1", "se.squeeze=avg,max", "seed=0,1", cwd=tmp_path).stdout
    assert table_rows(out) == ["se.squeeze=avg", "se.squeeze=max"]
    where = tmp_path / "runs/adhoc"
    t = pd.read_csv(where / "table.csv").set_index("row")
    for squeeze in ("avg", "max"):
        errs = [
            json.loads((where / f"recipe.epochs=1,se.squeeze={squeeze},seed={s}/metrics.json").read_text())["top1_err"]
            for s in (0, 1)
        ]
        assert t.loc[f"se.squeeze={squeeze}", "top1_err_n"] == 2
        assert t.loc[f"se.squeeze={squeeze}", "top1_err_mean"] == pytest.approx(sum(errs) / 2)
    assert "n < 3 in se.squeeze=avg, se.squeeze=max" in out
    assert "Δ is vs se.squeeze=avg (the row of the first job launched" in out
    assert "seeds 0, 1" in out
    assert (where / "figures/forest_top1_err.png").is_file() and not (where / "figures/bars_se_squeeze.png").exists()


def test_a_sweep_with_a_failing_job_prints_its_table_and_exits_nonzero(tmp_path):
    proc = run_cli("run.app", "-m", *PROFILE, "se.stages=[2,3,4]", "se.reduction=4,1000", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert table_rows(proc.stdout) == ["se.reduction=4", "se.reduction=1000"]
    assert "0 done, 1 failed" in proc.stdout
    assert proc.stdout.count("too large") + proc.stderr.count("too large") == 1  # the error is printed once


def test_report_by_groups_two_sweeps_flags_mixed_rows_and_filters(tmp_path):
    run_cli("run.app", "-m", *PROFILE, "se.reduction=4,8", "runs_dir=a", cwd=tmp_path)
    run_cli("run.app", "-m", *PROFILE, "se.reduction=4", "se.squeeze=max", "runs_dir=b", cwd=tmp_path)
    both = run_cli("study.cli", "a/adhoc", "b/adhoc", cwd=tmp_path).stdout  # default: the keys that differ
    # two sweeps: each key's values in the order the jobs met them, rows nested in that order
    assert table_rows(both) == [
        "se.reduction=4, se.squeeze=avg",
        "se.reduction=4, se.squeeze=max",
        "se.reduction=8, se.squeeze=avg",
    ]
    assert "†" not in both
    by = run_cli("study.cli", "a/adhoc", "b/adhoc", "--by", "se.reduction", cwd=tmp_path).stdout
    assert table_rows(by) == ["se.reduction=4 †", "se.reduction=8"]
    assert "† se.reduction=4: its runs differ in se.squeeze (avg, max)" in by
    assert "2 done" in by  # flagged, and both runs counted
    assert (tmp_path / "by-se.reduction/table.md").is_file()  # never over a sweep's own table
    kept = run_cli("study.cli", "a/adhoc", "b/adhoc", "--filter", "se.squeeze=max", cwd=tmp_path).stdout
    assert table_rows(kept) == ["all runs"]
    bad = run_cli("study.cli", "a/adhoc", "--by", "se.nosuchkey", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "--by se.nosuchkey: no run has this key" in bad.stderr


def test_report_over_failed_only_records_exits_cleanly(tmp_path):
    with pytest.raises(ConfigError, match="row='se_mx' is not a row"):  # exit 1 as a process: tests/test_cli.py
        run_job("experiment=quickstart", "row=se_mx", "task=profile", cwd=tmp_path)
    rep = run_cli("study.cli", "runs/quickstart", cwd=tmp_path)
    assert "0 done, 1 failed" in rep.stdout and "Traceback" not in rep.stderr
    status = run_cli("study.cli", "--status", "runs/quickstart", cwd=tmp_path, check=False)
    assert "Traceback" not in status.stderr


def senet_ablate(command: str) -> list[str]:
    """A printed ``senet-ablate ...`` line as argv, run by this venv's console script."""
    argv = shlex.split(command)
    assert argv[0] == "senet-ablate", command
    return [str(Path(sys.executable).parent / "senet-ablate"), *argv[1:]]


def test_the_status_hint_of_a_config_dir_study_runs_as_printed(tmp_path):
    import subprocess

    mine = tmp_path / "my_configs/experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text(
        "# @package _global_\nstudy: mine\ntask: profile\nhydra:\n  sweeper:\n    params:\n      se.reduction: 4,8\n"
    )
    run_cli("run.app", "--config-dir", "my_configs", "-m", "experiment=mine", cwd=tmp_path)
    (tmp_path / "runs/mine/se.reduction=8/metrics.json").unlink()  # a job to relaunch
    status = run_cli("study.cli", "--status", "runs/mine", cwd=tmp_path).stdout
    lines = [line.strip() for line in status.splitlines() if line.strip().startswith("senet-ablate")]
    assert len(lines) == 2 and all(f"--config-dir {tmp_path / 'my_configs'}" in line for line in lines), status
    one = subprocess.run(
        senet_ablate(lines[0]), cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=600
    )
    assert one.returncode == 0, one.stderr
    assert json.loads((tmp_path / "runs/mine/se.reduction=8/metrics.json").read_text())["status"] == "completed"
    sweep = subprocess.run(
        senet_ablate(lines[1]), cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=600
    )
    assert sweep.returncode == 0 and "already completed" in sweep.stdout + sweep.stderr
    page = (tmp_path / "runs/mine/dashboard.html").read_text()
    assert f"--config-dir {tmp_path / 'my_configs'}" in page
    elsewhere = run_cli("study.cli", "--status", str(tmp_path / "runs/mine"), cwd=ROOT).stdout
    assert "completed" in elsewhere  # nothing to relaunch any more


def test_a_presets_table_is_byte_identical_to_before(tmp_path):
    """tests/golden/: the Table 10 profile table written by the code before any-sweep tables (400951f); its
    footnote since the tables count the test sample's uncertainty (a table without error columns no longer
    explains them)."""
    run_cli("run.app", "-m", "experiment=paper/table10_reduction", "task=profile", cwd=tmp_path)
    got = (tmp_path / "runs/paper/table10_reduction/table.md").read_text()
    assert got == (ROOT / "tests/golden/table10_reduction_profile.md").read_text()


# ---------------------------------------------------------------- statistics and grouping, by arithmetic
def test_cis_are_clipped_to_an_error_rates_bounds():
    from senet_ablate.study.cells import ci_bounds
    from senet_ablate.study.formats import to_markdown
    from senet_ablate.study.tables import study_table

    assert ci_bounds(1.45, 9.89) == (0.0, 11.34) and ci_bounds(99.0, 3.0) == (96.0, 100.0)
    runs = pd.DataFrame(
        {
            "run_dir": ["a", "b"],
            "study": "s",
            "row": "x",
            "task": "train",
            "status": "completed",
            "top1_err": [0.0, 2.9],
            "top5_err": [0.0, 0.0],
            "finished_at": ["1", "2"],
            "images_per_s": None,
            "speed_setup": None,
            **{c: None for c in ("params_m", "gflops", "mflops", "macs", "elementwise_ops")},
        }
    )
    md = to_markdown(study_table(runs, {"rows": {"x": {}}, "baseline": "x"}), {"rows": {"x": {}}}, wide=True)
    assert "[0.00, 19.87]" in md  # mean 1.45 ± t(0.975, 1) · 2.0506 / √2 = 1.45 ± 18.42: the lower end clipped at 0
    assert "95% CIs are clipped to [0, 100]" in md and "n < 3 in x" in md


def test_grouping_picks_the_baseline_by_label_by_key_or_se_off():
    from senet_ablate.study.grouping import pick_baseline, split_parts

    rows = {
        "se.stages=[2,3], se.reduction=4": {"values": {"se.stages": "[2,3]", "se.reduction": "4"}, "se_off": False},
        "se.stages=[], se.reduction=4": {"values": {"se.stages": "[]", "se.reduction": "4"}, "se_off": True},
        "se.stages=[2,3], se.reduction=8": {"values": {"se.stages": "[2,3]", "se.reduction": "8"}, "se_off": False},
    }
    assert pick_baseline(rows, None) == "se.stages=[], se.reduction=4"
    assert pick_baseline(rows, "se.reduction:8") == "se.stages=[2,3], se.reduction=8"
    assert pick_baseline(rows, "se.stages=[2,3], se.reduction=4") == "se.stages=[2,3], se.reduction=4"
    with pytest.raises(ValueError, match="matches 2 rows; valid values"):
        pick_baseline(rows, "se.reduction=4")
    assert split_parts("a=[1,2], b:x") == [("a", "[1,2]"), ("b", "x")]


def test_help_says_what_the_tool_does_with_examples_and_the_report(tmp_path):
    out = run_cli("run.app", "--help", cwd=tmp_path).stdout
    assert out.startswith("senet-ablate: Squeeze-and-Excitation ablations")
    assert "senet-ablate -m se.squeeze=avg,max seed=0,1,2" in out and "senet-report" in out
    assert "model: " in out  # the config groups and their options
    report = run_cli("study.cli", "--help", cwd=tmp_path).stdout
    assert "--by KEY,KEY" in report and "--filter" in report and "examples:" in report


def test_keys_that_do_not_change_a_result_are_never_rows(tmp_path):
    """Seeds of one config that ran with other thread counts and runs dirs make one row, not two."""
    for threads in (1, 2):
        run_job(*PROFILE, f"threads={threads}", f"seed={threads}", f"runs_dir=t{threads}", cwd=tmp_path)
    out = run_cli("study.cli", "t1", "t2", "--no-write", cwd=tmp_path).stdout
    assert table_rows(out) == ["all runs"] and "2 done" in out


def test_an_adhoc_studys_first_row_is_the_first_job_launched_of_the_earlier_sweep():
    """Two sweeps into one study: `recipe.epochs=1,8` and later `recipe.epochs=1 recipe.lr=1e-9`. Job 0 of both
    sweeps ties on the job number; the earlier sweep's comes first, so its row is the default baseline."""
    from senet_ablate.study.grouping import group

    def run(job: int, began: str, epochs: str, lr: str) -> dict:
        flat = {"recipe.epochs": epochs, "recipe.lr": lr}
        return {"run_dir": f"runs/adhoc/{began}", "task": "train", "job_num": job, "started_at": began,
                "seed": 0, "_flat": flat, "_choices": {}, "_typed": dict(flat)}  # fmt: skip

    runs = pd.DataFrame(
        [
            run(0, "2026-12-07T10:05:00", "1", "1e-09"),
            run(0, "2026-12-07T10:00:00", "1", "0.05"),
            run(1, "2026-12-07T10:01:00", "8", "0.05"),
        ]  # fmt: skip
    )
    _, spec = group(runs, "adhoc")
    assert list(spec["rows"])[0] == "recipe.epochs=1, recipe.lr=0.05" == spec["baseline"]
    assert spec["baseline_why"].startswith("the row of the first job launched")
