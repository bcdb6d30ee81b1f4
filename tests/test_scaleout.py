"""Scale-out and resilience (issue 5), run as a user runs them: Hydra's submitit and joblib
launchers, preemption signals with checkpoint + requeue, and the sweep status report."""
import json
import os
import signal
import subprocess
import sys
import time

import torch

from conftest import run_cli

TINY = ["model=cifar_resnet20", "data=digits", "recipe.epochs=1"]
TABLE11 = ["-m", "experiment=paper/table11_squeeze", *TINY]
SWEEP = "runs/paper/table11_squeeze"
ROWS = {"max": "data=digits,model=cifar_resnet20,recipe.epochs=1,row=max",
        "avg": "data=digits,model=cifar_resnet20,recipe.epochs=1,row=avg"}


def record(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def wait_for(predicate, proc, timeout=300, what="the condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = predicate()
        if got:
            return got
        assert proc.poll() is None, f"the process ended before {what}: {proc.communicate()}"
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def epochs_done(run_dir) -> int:
    try:
        return record(run_dir).get("epochs_done", 0)
    except (OSError, ValueError):
        return 0


def history_epochs(run_dir) -> list[int]:
    return [int(line.split(",")[0]) for line in (run_dir / "history.csv").read_text().splitlines()[1:]]


def table_rows(sweep) -> dict[str, list[str]]:
    rows = {}
    for line in (sweep / "table.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] in ("Max", "Avg"):
            rows[cells[0]] = cells
    return rows


def test_submitit_local_runs_table11_and_a_preempted_job_is_requeued_and_resumes(tmp_path):
    """The submitit path end to end: both rows of Table 11 train in submitit jobs, and one job sent
    submitit's preemption signal (SIGUSR2) mid-epoch checkpoints, is requeued by submitit, resumes
    from that step and completes with every epoch counted once."""
    args = [*TABLE11, "recipe.epochs=3", "recipe.batch_size=16", "hydra/launcher=submitit_local",
            "hydra.launcher.cpus_per_task=1"]
    proc = subprocess.Popen([sys.executable, "-m", "senet_ablate.app", *args], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    avg = tmp_path / SWEEP / ROWS["avg"].replace("recipe.epochs=1", "recipe.batch_size=16,recipe.epochs=3")
    wait_for(lambda: epochs_done(avg) >= 1, proc, what="the avg job's first epoch")
    job_pid = record(avg)["pid"]
    os.kill(job_pid, signal.SIGUSR2)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out

    rec = record(avg)
    assert rec["status"] == "completed" and rec["epochs_done"] == 3 and rec["preemptions"] == 1
    assert rec["pid"] != job_pid  # the requeued process finished it
    assert history_epochs(avg) == [1, 2, 3]
    assert rec["threads"] == 1  # hydra.launcher.cpus_per_task
    logs = "".join(p.read_text() for p in (tmp_path / SWEEP / ".submitit").rglob("*_log.*"))
    assert "caught SIGUSR2" in logs and "resuming from" in logs and "Requeued job" in logs
    assert "step" in logs.split("resuming from", 1)[1].splitlines()[0]  # resumed mid-epoch
    assert set(table_rows(tmp_path / SWEEP)) == {"Max", "Avg"}


def test_table11_under_submitit_local_makes_the_table(tmp_path):
    run_cli("app", *TABLE11, "hydra/launcher=submitit_local", cwd=tmp_path)
    sweep = tmp_path / SWEEP
    for key, name in ROWS.items():
        rec = record(sweep / name)
        assert rec["status"] == "completed" and rec["row"] == key and rec["epochs_done"] == 1
    rows = table_rows(sweep)
    assert set(rows) == {"Max", "Avg"} and all(r[-1] == "1 done" for r in rows.values())
    assert (sweep / ".submitit").is_dir()  # the jobs really went through submitit


def test_table11_under_joblib_runs_two_jobs_with_one_thread_each(tmp_path):
    cores = len(os.sched_getaffinity(0))
    run_cli("app", *TABLE11, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", cwd=tmp_path)
    sweep = tmp_path / SWEEP
    recs = [record(sweep / name) for name in ROWS.values()]
    assert all(r["status"] == "completed" for r in recs)
    assert len({r["pid"] for r in recs}) == 2 and all(r["pid"] != os.getpid() for r in recs)
    assert all(r["threads"] == max(1, cores // 2) for r in recs)  # 2 jobs x threads <= cores
    assert set(table_rows(sweep)) == {"Max", "Avg"}


def test_threads_follow_the_launcher(compose_cfg, monkeypatch):
    from senet_ablate import launch

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    cores = launch.available_cores()
    monkeypatch.setattr(launch, "_launcher", lambda: {"_target_": "hydra_plugins.hydra_joblib_launcher."
                                                                  "joblib_launcher.JoblibLauncher", "n_jobs": 2})
    assert launch.job_threads("auto") == (max(1, cores // 2), "joblib n_jobs=2")
    monkeypatch.setattr(launch, "_launcher", lambda: {"_target_": "x.LocalLauncher", "cpus_per_task": 3})
    assert launch.job_threads("auto")[0] == 3
    monkeypatch.setattr(launch, "_launcher", lambda: {})
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert launch.job_threads("auto") == (6, "SLURM_CPUS_PER_TASK")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert launch.job_threads("auto") == (4, "OMP_NUM_THREADS")
    assert launch.job_threads(5) == (5, "threads")


def test_sigterm_mid_epoch_checkpoints_exits_for_requeue_and_resumes_exactly(tmp_path):
    args = ["recipe.epochs=3", "recipe.batch_size=16", "deterministic=true"]
    run_cli("app", *args, "runs_dir=whole", cwd=tmp_path)
    name = "deterministic=true,recipe.batch_size=16,recipe.epochs=3"
    whole, cut = tmp_path / "whole/adhoc" / name, tmp_path / "cut/adhoc" / name

    proc = subprocess.Popen([sys.executable, "-m", "senet_ablate.app", *args, "runs_dir=cut"], cwd=tmp_path,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_for(lambda: epochs_done(cut) >= 1, proc, what="epoch 1")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out  # exit for requeue, not a failure
    rec = record(cut)
    assert rec["status"] == "preempted" and "SIGTERM" in rec["reason"] and rec["epochs_done"] == 1
    state = torch.load(cut / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and 0 < state["step"] < 85  # mid-epoch 2 (85 steps of 16 images)

    again = run_cli("app", *args, "runs_dir=cut", cwd=tmp_path)
    assert f"after step {state['step']} of epoch 2" in again.stdout + again.stderr
    a, b = record(whole), record(cut)
    assert b["status"] == "completed" and b["epochs_done"] == 3 and b["preemptions"] == 1
    assert history_epochs(cut) == [1, 2, 3]
    for key in ("top1_err", "top5_err", "best_top1_err", "best_epoch"):
        assert a[key] == b[key], key
    strip = lambda p: [ln.split(",")[:6] for ln in (p / "history.csv").read_text().splitlines()]  # noqa: E731
    assert strip(whole) == strip(cut)  # epoch, lr, loss, train err, top-1, top-5: bit-identical
