"""The command line as a user runs it: a profile sweep, its records, its table, and bad input."""

import json

from conftest import run_cli, run_job

STAGE_ROWS = ["resnet50", "se_stage2", "se_stage3", "se_stage4", "se_all"]


def records(root):
    return {p.parent.name: json.loads(p.read_text()) for p in root.rglob("metrics.json")}


def test_profile_sweep_writes_records_and_table(tmp_path):
    proc = run_cli("run.app", "-m", "experiment=paper/table13_stages", "task=profile", cwd=tmp_path)
    sweep = tmp_path / "runs/paper/table13_stages"
    recs = records(sweep)
    assert sorted(recs) == sorted(f"row={r},task=profile" for r in STAGE_ROWS)
    for name, rec in recs.items():
        assert rec["status"] == "completed" and rec["task"] == "profile"
        for key in ("params", "macs", "elementwise_ops", "gflops", "input_size", "config", "overrides"):
            assert key in rec, (name, key)
        assert rec["input_size"] == 224 and rec["config"]["model"]["name"] == "resnet50"
    se_all = recs["row=se_all,task=profile"]
    assert se_all["params"] == 28_088_024 and se_all["config"]["se"]["stages"] == [2, 3, 4, 5]
    assert "se.stages=[2,3,4,5]" in se_all["overrides"]
    # the end-of-sweep table, in the paper's row order, beside the sweep
    md = (sweep / "table.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.startswith("| SE") or ln.startswith("| ResNet")]
    assert [ln.split("|")[1].strip() for ln in lines] == [
        "ResNet-50",
        "SE Stage 2",
        "SE Stage 3",
        "SE Stage 4",
        "SE All",
    ]
    assert "| SE All | 22.28 | 6.03 | 28.088 | 28.1 | 0.0 | 3.8715 | 3.87 | 0.00 |" in md
    assert "Table 13" in proc.stdout
    csv = (sweep / "table.csv").read_text().splitlines()
    assert {"row", "label", "params_m", "params_m_paper", "params_m_delta", "gflops_delta"} <= set(csv[0].split(","))
    assert len(csv) == 6

    # senet-report rebuilds the same table from the records alone
    (sweep / "table.md").unlink()
    rep = run_cli("study.cli", str(sweep), cwd=tmp_path)
    assert (sweep / "table.md").read_text() == md
    assert "| SE Stage 4 | 22.68 | 6.22 | 26.350 | 26.4 | -0.1 |" in rep.stdout


def test_bad_value_exits_nonzero_with_message_and_no_success_record(tmp_path):
    proc = run_cli("run.app", "se.reduction=0", cwd=tmp_path, check=False)
    assert proc.returncode == 1  # a config error of a single job: Hydra's one line, exit 1
    assert "se.reduction=0 must be an integer >= 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    recs = records(tmp_path)
    assert [r["status"] for r in recs.values()] == ["failed"]
    assert "se.reduction=0" in next(iter(recs.values()))["reason"]


def test_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    proc = run_cli("run.app", "-m", "model=cifar_resnet20", "se.reduction=32,4", "study=mix", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "se.reduction=32 is too large for SE_2_1: it has C=16 channels" in proc.stderr
    recs = records(tmp_path / "runs/mix")
    status = {name: r["status"] for name, r in recs.items()}
    assert status == {
        "model=cifar_resnet20,se.reduction=32": "failed",
        "model=cifar_resnet20,se.reduction=4": "completed",
    }


def test_report_on_missing_dir_fails_clearly(tmp_path):
    proc = run_cli("study.cli", str(tmp_path / "nope"), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "no such run dir" in proc.stderr


def test_cfg_job_prints_config_without_running(tmp_path):
    proc = run_cli("run.app", "experiment=paper/table10_reduction", "--cfg", "job", cwd=tmp_path)
    assert "study: paper/table10_reduction" in proc.stdout and "reduction: 16" in proc.stdout
    assert not (tmp_path / "runs").exists()


def test_a_sweep_with_a_failed_job_still_ends_in_its_table_and_exits_nonzero(tmp_path):
    """Hydra skips on_multirun_end when a job failed; the table, figures note and dashboard come anyway,
    with the failed jobs counted in their rows."""
    proc = run_cli(
        "run.app",
        "-m",
        "experiment=quickstart",
        "task=profile",
        "hydra.sweeper.params.seed=0",
        "se.reduction=32",
        cwd=tmp_path,
        check=False,
    )  # r = 32 is too large for 16 channels
    assert proc.returncode == 1
    sweep = tmp_path / "runs/quickstart"
    md = (sweep / "table.md").read_text()
    assert "| ResNet-20 | 0.270 |" in md and md.count("0 done, 1 failed") == 2
    assert md in proc.stdout
    assert "dashboard: runs/quickstart/dashboard.html" in proc.stdout and (sweep / "dashboard.html").is_file()
    assert "senet-report --status runs/quickstart" in proc.stdout
    assert "se.reduction=32 is too large" in proc.stderr


def test_profile_of_an_imagenet_backbone_with_no_data_chosen_counts_at_224_px(tmp_path):
    """The default data are the 8 px digits; a profile of ResNet-50 used to count it there."""
    proc = run_cli("run.app", "task=profile", "model=resnet50", cwd=tmp_path)
    [rec] = records(tmp_path / "runs").values()
    assert (rec["input_size"], rec["num_classes"], rec["params"]) == (224, 1000, 28_088_024)
    assert round(rec["gflops"], 2) == 3.87  # the paper's SE-ResNet-50 cell
    assert "resnet50 at 224 px, 1000 classes" in proc.stdout and "no data chosen" in proc.stdout
    run_job("task=profile", "model=resnet50", "data=digits", cwd=tmp_path)  # asked for: counted there
    assert {r["input_size"] for r in records(tmp_path / "runs").values()} == {224, 8}


def test_cfg_job_shows_the_row_the_job_will_run(tmp_path):
    job = run_cli("run.app", "experiment=paper/table10_reduction", "row=r4", "--cfg", "job", cwd=tmp_path).stdout
    assert "row: r4" in job and "  reduction: 4\n" in job and "hydra:" not in job
    mine = run_cli(
        "run.app", "experiment=paper/table10_reduction", "row=r4", "se.reduction=8", "--cfg", "all", cwd=tmp_path
    ).stdout
    assert "  reduction: 8\n" in mine and "hydra:" in mine  # the command line still wins over the row
    table2 = run_cli(
        "run.app", "experiment=paper/table2_imagenet", "row=se_resnet101", "--cfg", "job", cwd=tmp_path
    ).stdout
    assert "name: resnet101" in table2  # a row may pick a config group
    assert not (tmp_path / "runs").exists()
