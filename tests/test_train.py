"""Training as a user runs it: real data, records, exact resume after SIGKILL, skip when done,
divergence, bad input, and the offline wandb run read back."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import run_cli
from wandb_offline import history_and_summary

SHORT = ["recipe.epochs=2"]


def record(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def history(run_dir):
    lines = (run_dir / "history.csv").read_text().splitlines()
    cols = lines[0].split(",")
    return [dict(zip(cols, ln.split(","))) for ln in lines[1:]]


def test_train_on_digits_writes_a_complete_record(tmp_path):
    run_cli("app", *SHORT, "study=t", cwd=tmp_path)
    run = tmp_path / "runs/t/recipe.epochs=2"
    rec = record(run)
    assert rec["status"] == "completed" and rec["task"] == "train" and rec["seed"] == 0
    assert rec["epochs_done"] == 2 and len(history(run)) == 2
    assert rec["top1_err"] < 50 and rec["best_top1_err"] <= rec["top1_err"]  # chance is 90%
    for key in ("top5_err", "best_top5_err", "train_time_s", "images_per_s", "git_revision", "versions",
                "params", "gflops", "fingerprint"):
        assert rec[key] is not None, key
    assert rec["versions"]["torch"] == torch.__version__.split("+")[0] or rec["versions"]["torch"]
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and "model" in state and "optimizer" in state


def test_same_seed_same_metrics_on_cpu(tmp_path):
    for d in ("a", "b"):
        run_cli("app", *SHORT, "deterministic=true", f"runs_dir={d}", cwd=tmp_path)
    ha, hb = (history(tmp_path / d / "adhoc/deterministic=true,recipe.epochs=2") for d in "ab")
    strip = lambda h: [{k: v for k, v in row.items() if "time" not in k and "per_s" not in k} for row in h]  # noqa
    assert strip(ha) == strip(hb)


def test_sigkill_then_relaunch_matches_uninterrupted_run(tmp_path):
    args = ["recipe.epochs=4", "deterministic=true"]
    run_cli("app", *args, "runs_dir=whole", cwd=tmp_path)
    whole = tmp_path / "whole/adhoc/deterministic=true,recipe.epochs=4"

    cut = tmp_path / "cut/adhoc/deterministic=true,recipe.epochs=4"
    proc = subprocess.Popen([sys.executable, "-m", "senet_ablate.app", *args, "runs_dir=cut"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        # the record is written after history.csv and last.pt, so it is the last to show an epoch
        if (cut / "metrics.json").exists() and record(cut).get("epochs_done", 0) >= 1:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = record(cut)
    assert killed["status"] == "running" and 1 <= killed["epochs_done"] < 4

    out = run_cli("app", *args, "runs_dir=cut", cwd=tmp_path)
    assert "resuming from" in out.stdout + out.stderr
    a, b = record(whole), record(cut)
    assert b["status"] == "completed" and b["epochs_done"] == 4
    for key in ("top1_err", "top5_err", "best_top1_err", "best_top5_err", "best_epoch", "params"):
        assert a[key] == b[key], key
    same = lambda h: [(r["epoch"], r["lr"], r["train_loss"], r["top1_err"], r["top5_err"]) for r in h]  # noqa
    assert same(history(whole)) == same(history(cut))


def test_relaunching_a_completed_sweep_trains_nothing(tmp_path):
    args = ["-m", "experiment=quickstart", "recipe.epochs=1", "hydra.sweeper.params.seed=0"]
    run_cli("app", *args, cwd=tmp_path)
    sweep = tmp_path / "runs/quickstart"
    ckpts = sorted(sweep.rglob("last.pt"))
    assert len(ckpts) == 3
    stamps = [p.stat().st_mtime_ns for p in ckpts]
    table = (sweep / "table.md").read_text()
    again = run_cli("app", *args, cwd=tmp_path)
    assert (again.stdout + again.stderr).count("already completed") == 3
    assert "epoch 1/1" not in again.stdout + again.stderr
    assert [p.stat().st_mtime_ns for p in ckpts] == stamps
    assert (sweep / "table.md").read_text() == table


def test_divergence_is_recorded_and_the_sweep_goes_on(tmp_path):
    proc = run_cli("app", "-m", "recipe.lr=1e30,0.05", "recipe.epochs=1", "study=div", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    [bad_dir] = (tmp_path / "runs/div").glob("recipe.epochs=1,recipe.lr=1e*30")
    bad, good = record(bad_dir), record(tmp_path / "runs/div/recipe.epochs=1,recipe.lr=0.05")
    assert bad["status"] == "failed" and "non-finite loss" in bad["reason"] and "epoch 1" in bad["reason"]
    assert good["status"] == "completed"


@pytest.mark.parametrize("args, match", [
    (["data=cifar10_jpeg"], "data.root is not set"),
    (["data=cifar10_jpeg", "data.root=/nonexistent/cifar"], "does not exist"),
    (["recipe.epochs=0"], "recipe.epochs=0 must be a positive integer"),
    (["data=cifar10_jpeg", "data.root={empty}"], "must hold train/ and val/"),
    (["data=cifar10_jpeg", "data.root={odd}", "data.num_classes=2"], "not an image file"),
    (["data=cifar10_jpeg", "data.root={odd}", "data.num_classes=3"], "data.num_classes=3 but"),
])
def test_bad_input_fails_before_training(tmp_path, args, match):
    (tmp_path / "empty").mkdir()
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            (tmp_path / "odd" / split / c).mkdir(parents=True)
            (tmp_path / "odd" / split / c / "0.jpg").write_bytes(b"")
    (tmp_path / "odd/train/dog/readme.md").write_text("not an image")
    args = [a.format(empty=tmp_path / "empty", odd=tmp_path / "odd") for a in args]
    proc = run_cli("app", *args, "study=bad", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and match in proc.stderr
    assert "Traceback" not in proc.stderr
    for p in (tmp_path / "runs").rglob("metrics.json"):
        rec = json.loads(p.read_text())
        assert rec["status"] == "failed" and "top1_err" not in rec
    assert not list((tmp_path / "runs").rglob("last.pt"))


def test_wandb_offline_run_holds_the_logged_metrics(tmp_path):
    env_key = "senet-test-secret-0123456789"
    os.environ["WANDB_API_KEY"] = env_key
    try:
        run_cli("app", *SHORT, "logger=wandb", "study=wb", cwd=tmp_path)
    finally:
        del os.environ["WANDB_API_KEY"]
    run = tmp_path / "runs/wb/recipe.epochs=2"
    logged, summary, config = history_and_summary(run)
    ours = history(run)
    assert [r["epoch"] for r in logged] == [1, 2]
    assert [r["top1_err"] for r in logged] == [float(h["top1_err"]) for h in ours]
    assert summary["status"] == "completed" and summary["top1_err"] == record(run)["top1_err"]
    assert config["study"] == "wb" and config["se"]["squeeze"] == "avg"
    for p in [run / "metrics.json", run / "history.csv", *(run / ".hydra").iterdir()]:
        assert env_key not in p.read_text(), p
