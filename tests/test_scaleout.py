"""Scale-out and resilience, run as a user runs them: Hydra's submitit and joblib
launchers, preemption signals with checkpoint + requeue, and the sweep status report."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import clean_env, pause_env, run_cli, run_job, start_cli, wait_paused

from senet_ablate.errors import ConfigError
from senet_ablate.records import predictions

TINY = ["model=cifar_resnet20", "data=digits", "recipe.epochs=1"]
TABLE11 = ["-m", "experiment=paper/table11_squeeze", *TINY]
SWEEP = "runs/paper/table11_squeeze"


def record(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


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
    from that step and completes with every epoch counted once. The avg job is held before step 4
    of epoch 2 until the signal has arrived (tests/pause_hook), so the step is always the same."""
    args = [
        *TABLE11,
        "recipe.epochs=2",
        "recipe.batch_size=16",
        "data.subset={train: 480}",  # 30 steps an epoch
        "hydra/launcher=submitit_local",
        "hydra.launcher.cpus_per_task=1",
    ]
    marks = tmp_path / "marks"
    proc = subprocess.Popen(
        [sys.executable, "-m", "senet_ablate.run.app", *args],
        cwd=tmp_path,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=pause_env(marks, "2:3", run="row=avg", OMP_NUM_THREADS=None),  # threads from cpus_per_task
    )
    [job_pid] = wait_paused(marks, proc)
    os.kill(job_pid, signal.SIGUSR2)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out

    [avg], [other] = ((tmp_path / SWEEP).glob(f"*row={row}") for row in ("avg", "max"))
    rec = record(avg)
    assert rec["status"] == "completed" and rec["epochs_done"] == 2 and rec["preemptions"] == 1
    assert rec["pid"] != job_pid  # the requeued process finished it
    assert history_epochs(avg) == [1, 2]
    other = record(other)
    assert other["status"] == "completed" and other["row"] == "max" and "preemptions" not in other
    assert rec["threads"] == 1  # hydra.launcher.cpus_per_task
    logs = "".join(p.read_text() for p in (tmp_path / SWEEP / ".submitit").rglob("*_log.*"))
    assert "caught SIGUSR2" in logs and "Requeued job" in logs
    assert "after step 4 of epoch 2 of 2" in logs  # resumed mid-epoch, at the step it stopped
    rows = table_rows(tmp_path / SWEEP)
    assert set(rows) == {"Max", "Avg"} and all(r[-1] == "1" for r in rows.values())  # runs completed


@pytest.fixture(scope="module")
def joblib_sweep(tmp_path_factory, cifar_jpeg) -> Path:
    """Table 11's two rows under joblib (n_jobs=2) on a small real JPEG tree, read by the launcher's
    thread test and the decode-once test: joblib starts both jobs together, so one decodes the tree
    while the other waits on the cache's lock (threads: auto from the launcher, not the worker's share)."""
    cwd = tmp_path_factory.mktemp("joblib")
    args = ["-m", "experiment=paper/table11_squeeze", "model=cifar_resnet20", "data=cifar10_jpeg"]
    args += [f"data.root={cifar_jpeg}", "recipe.epochs=1", f"cache_dir={cwd / 'cache'}", "hydra/launcher=joblib"]
    run_cli("run.app", *args, "hydra.launcher.n_jobs=2", cwd=cwd, env={"OMP_NUM_THREADS": None})
    return cwd


def joblib_records(cwd: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((cwd / SWEEP).rglob("metrics.json"))]


def test_table11_under_joblib_runs_two_jobs_with_one_thread_each(joblib_sweep):
    cores = len(os.sched_getaffinity(0))
    recs = joblib_records(joblib_sweep)
    assert len(recs) == 2 and all(r["status"] == "completed" for r in recs)
    assert sorted(r["row"] for r in recs) == ["avg", "max"]
    assert len({r["pid"] for r in recs}) == 2 and all(r["pid"] != os.getpid() for r in recs)
    assert all(r["threads"] == max(1, cores // 2) for r in recs)  # 2 jobs x threads <= cores
    assert set(table_rows(joblib_sweep / SWEEP)) == {"Max", "Avg"}


def test_two_jobs_starting_at_once_decode_the_tree_once(joblib_sweep):
    """Whichever job comes first decodes the tree; the other loads what the first wrote."""
    recs = joblib_records(joblib_sweep)
    assert len(recs) == 2 and len({r["pid"] for r in recs}) == 2
    assert sorted(r["data_cache"] for r in recs) == ["hit", "miss"]
    assert all(r["data_load_s"] > 0 for r in recs)
    assert len(list((joblib_sweep / "cache" / "decoded").glob("*.pt"))) == 1


def test_threads_follow_the_launcher(compose_cfg, clean_environ, monkeypatch):
    from senet_ablate.run import launch

    cores = launch.available_cores()
    monkeypatch.setattr(
        launch,
        "_launcher",
        lambda: {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 2},
    )
    assert launch.job_threads("auto") == (max(1, cores // 2), "joblib n_jobs=2")
    local = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
    monkeypatch.setattr(launch, "_launcher", lambda: {"_target_": local, "cpus_per_task": 3})
    assert launch.job_threads("auto")[0] == 3
    monkeypatch.setattr(launch, "_launcher", lambda: {"_target_": local, "cpus_per_task": None})
    monkeypatch.setattr(launch, "_sweep_size", lambda: 2)  # submitit_local runs the whole sweep at once
    assert launch.job_threads("auto") == (max(1, cores // 2), "submitit_local, 2 jobs at once")
    monkeypatch.setattr(launch, "_launcher", lambda: {})
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert launch.job_threads("auto") == (6, "SLURM_CPUS_PER_TASK")
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert launch.job_threads("auto") == (4, "OMP_NUM_THREADS")
    assert launch.job_threads(5) == (5, "threads")
    # DataLoader workers (streamed ImageFolder) follow the same budget, less one core for the loop
    assert launch.data_workers("auto") == 5  # SLURM_CPUS_PER_TASK=6
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert launch.data_workers("auto") == 2  # torchrun: 3 cores per process
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "64")
    assert launch.data_workers("auto") == 8 and launch.data_workers(3) == 3


def test_sigterm_mid_epoch_checkpoints_exits_for_requeue_and_resumes_exactly(tmp_path):
    # 30 steps an epoch: 480 of the digits (data.subset), 16 a step
    args = ["recipe.epochs=2", "recipe.batch_size=16", "deterministic=true", "data.subset={train: 480}"]
    run_cli("run.app", *args, "runs_dir=whole", cwd=tmp_path)
    [name] = [p.name for p in (tmp_path / "whole/adhoc").iterdir()]
    whole, cut = tmp_path / "whole/adhoc" / name, tmp_path / "cut/adhoc" / name

    marks = tmp_path / "marks"
    proc = start_cli("run.app", *args, "runs_dir=cut", cwd=tmp_path, env=pause_env(marks, "2:3"))
    wait_paused(marks, proc)  # held before step 4 of epoch 2
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out + err  # exit for requeue, not a failure
    rec = record(cut)
    assert rec["status"] == "preempted" and "SIGTERM" in rec["reason"] and rec["epochs_done"] == 1
    state = torch.load(cut / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["step"] == 4  # the step it was on when the signal came

    again = run_cli("run.app", *args, "runs_dir=cut", cwd=tmp_path)
    assert "after step 4 of epoch 2" in again.stdout + again.stderr
    a, b = record(whole), record(cut)
    assert b["status"] == "completed" and b["epochs_done"] == 2 and b["preemptions"] == 1
    assert history_epochs(cut) == [1, 2]
    for key in ("top1_err", "top5_err", "best_top1_err", "best_epoch"):
        assert a[key] == b[key], key
    strip = lambda p: [ln.split(",")[:6] for ln in (p / "history.csv").read_text().splitlines()]  # noqa: E731
    assert strip(whole) == strip(cut)  # epoch, lr, loss, train err, top-1, top-5: bit-identical


# ---------------------------------------------------------------------------- DDP (torchrun, gloo)
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str) -> list[str]:
    """torchrun with 2 processes on a free port (a killed run's port may still be held)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(free_port()),
        "-m",
        "senet_ablate.run.app",
        *args,
    ]


def _train_tiny(rank: int, world: int, out: str, port: int, amp: str = "false") -> None:
    """One process of the exact DDP check: a BatchNorm-free model, so that sharding, loss scaling
    and gradient averaging are all that separates 2 processes from 1."""
    from conftest import CONF
    from hydra import compose, initialize_config_dir

    from senet_ablate import data, distributed
    from senet_ablate.train import train

    if world > 1:  # a torchrun rank's environment; the one-process run is in pytest's own process
        os.environ.update(
            RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
        )
    torch.set_num_threads(1)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["recipe.epochs=2", "recipe.batch_size=62", "device=cpu", f"train.amp={amp}"],
        )
    dist = distributed.dist_context()
    d = data.build(cfg.data, 62, 100, torch.device("cpu"), 0, dist.rank, dist.world)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    )
    os.makedirs(out, exist_ok=True)
    result = train(cfg, model, d, Path(out), lambda *a: None, "tiny", dist)
    if dist.main:
        (Path(out) / "result.json").write_text(json.dumps(result))


def _ddp_rank(rank: int, out: str, port: int) -> None:
    """One of two ranks that serve this module's DDP checks in one start-up: the exact check's training
    in fp32 and in bf16 autocast, then a DDP model's group left (the thread check)."""
    for amp in ("false", "true"):
        _train_tiny(rank, 2, f"{out}/ddp-{amp}", port, amp)
    _leave_after_ddp(rank, out, port)


@pytest.fixture(scope="module")
def ddp_ranks(tmp_path_factory) -> Path:
    """Two spawned ranks (gloo) in the suite's clean environment; what they wrote, in one dir."""
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("ranks")
    with pytest.MonkeyPatch.context() as env:
        for key in set(os.environ) - set(clean_env()):  # the caller's RANK, CUDA_VISIBLE_DEVICES, ...
            env.delenv(key)
        mp.spawn(_ddp_rank, args=(str(out), free_port()), nprocs=2)
    return out


@pytest.mark.parametrize("amp", ["false", "true"])
def test_ddp_step_matches_one_process_exactly_without_batchnorm(ddp_ranks, tmp_path, clean_environ, amp):
    """1,347 images at batch 62: 21 full batches and a 45-image tail split 23/22 between ranks; in
    fp32 and in bf16 autocast (where each rank's half-batch products round apart from the whole batch's)."""
    _train_tiny(0, 1, str(tmp_path / "one"), 0, amp)
    a = torch.load(tmp_path / "one" / "last.pt", weights_only=True)
    b = torch.load(ddp_ranks / f"ddp-{amp}" / "last.pt", weights_only=True)
    # fp32: the sum order only (measured 9e-8). bf16: one bf16 step (eps 2^-7) at the largest weight, 0.0078 x 0.62
    # = 4.8e-3 (measured 1.0e-3); a wrong loss scale or shard moves the weights by whole updates (~1e-1)
    top = max(float(w.abs().max()) for w in a["model"].values())
    tol = 1e-5 if amp == "false" else torch.finfo(torch.bfloat16).eps * top
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], rtol=0, atol=tol), k
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (tmp_path / "one", ddp_ranks / f"ddp-{amp}"))
    assert rb["rank_param_spread"] == 0.0
    assert abs(ra["top1_err"] - rb["top1_err"]) < 0.5  # at most 1 of 450 test images flips
    assert [h["images"] for h in b["history"]] == [1347, 1347]


# SE-ResNet-20 on digits, 2 epochs, global batch 64 (21 steps an epoch, 32 images a process)
DDP = ["recipe.epochs=2", "seed=0", "device=cpu", "deterministic=true"]
DDP_RUN = "adhoc/deterministic=true,recipe.epochs=2,seed=0"  # device does not name run dirs


@pytest.fixture(scope="module")
def torchrun_whole(tmp_path_factory) -> Path:
    """One uninterrupted torchrun job (2 gloo processes) of DDP: the agreement test compares one process with
    it, and the SIGTERM test's preempted and relaunched job must end bit-identical to it."""
    cwd = tmp_path_factory.mktemp("torchrun")
    env = clean_env(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    subprocess.run(torchrun(*DDP, "runs_dir=ddp"), cwd=cwd, env=env, check=True, capture_output=True, timeout=600)
    return cwd / "ddp" / DDP_RUN


def test_torchrun_two_cpu_processes_agree_with_one_process(torchrun_whole, tmp_path):
    """DDP (2 gloo processes, 32 images each) vs one process. CPU has no SyncBatchNorm, so each rank
    normalises over its 32 images: the two runs differ by BatchNorm batch statistics, not by data, init
    or schedule. Measured over seeds 0-3: epoch-1 train loss +0.7 to +3.9 %, final top-1 error within
    1.34 points, while the single-process runs alone spread 3.3-7.1 % across seeds. Tolerances: 6 % and 3 points."""
    run_job(*DDP, "runs_dir=one", cwd=tmp_path)  # the one process: this one (what it computes is the job's)
    ddp, one = torchrun_whole, tmp_path / "one" / DDP_RUN
    rd, ro = record(ddp), record(one)
    assert rd["status"] == ro["status"] == "completed"
    assert (rd["world_size"], rd["batch_per_process"], ro["world_size"]) == (2, 32, 1)
    assert rd["rank_param_spread"] == 0.0  # DDP kept the two replicas identical
    assert rd["params"] == ro["params"]
    hd, ho = ([ln.split(",") for ln in (p / "history.csv").read_text().splitlines()[1:]] for p in (ddp, one))
    assert [int(h[-1]) for h in hd] == [1347, 1347]  # the ranks' shards cover the epoch exactly once
    assert [h[1] for h in hd] == [h[1] for h in ho]  # same schedule
    assert abs(float(hd[0][2]) / float(ho[0][2]) - 1) < 0.06, (hd[0][2], ho[0][2])
    assert abs(rd["top1_err"] - ro["top1_err"]) < 3.0, (rd["top1_err"], ro["top1_err"])
    assert list((ddp / ".hydra").iterdir()) and len(list(ddp.parent.parent.rglob("metrics.json"))) == 1
    # the ranks' predictions, gathered in the eval set's order: the same images and labels as one process's
    pd_, po = predictions.read(ddp), predictions.read(one)
    assert pd_.key == po.key and (pd_.label == po.label).all()
    assert (pd_.error(1), pd_.error(5)) == pytest.approx((rd["top1_err"], rd["top5_err"]))


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("threads", 0, "threads=0 must be 'auto' or a positive integer"),
        ("data.workers", -1, "data.workers=-1 must be 'auto' or a non-neg"),
        ("train.preempt_signals", "[SIGFOO]", "SIGFOO"),
    ],
)
def test_bad_scale_out_settings_fail_before_any_work(tmp_path, clean_environ, key, value, match):
    """The job in this process (what it computes; the CLI's exit status is tests/test_cli.py's)."""
    with pytest.raises(ConfigError, match=re.escape(match)):
        run_job("recipe.epochs=1", f"{key}={value}", cwd=tmp_path)
    assert not list(tmp_path.rglob("last.pt"))
    assert [json.loads(p.read_text())["status"] for p in tmp_path.rglob("metrics.json")] == ["failed"]


def test_torchrun_sigterm_mid_epoch_checkpoints_and_a_relaunch_resumes_exactly(torchrun_whole, tmp_path):
    """SIGTERM to torchrun (what SLURM sends the job step): the agent passes it to both ranks,
    they agree on the step to stop at, rank 0 checkpoints; a relaunch resumes there and ends
    bit-identical to the uninterrupted DDP run (gloo on CPU, deterministic)."""
    env = clean_env(OMP_NUM_THREADS="1")
    cut = tmp_path / "cut" / DDP_RUN
    marks = tmp_path / "marks"
    proc = subprocess.Popen(
        torchrun(*DDP, "runs_dir=cut"),
        cwd=tmp_path,
        env=pause_env(marks, "2:3", OMP_NUM_THREADS="1"),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wait_paused(marks, proc, count=2)  # both ranks held before step 4 of epoch 2
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, out
    assert record(cut)["status"] == "preempted"
    step = torch.load(cut / "last.pt", weights_only=True)["step"]
    assert step == 4
    again = subprocess.run(
        torchrun(*DDP, "runs_dir=cut"), cwd=tmp_path, env=env, text=True, capture_output=True, timeout=600
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"after step {step} of epoch 2" in again.stdout + again.stderr
    rec = record(cut)
    assert rec["status"] == "completed" and rec["preemptions"] == 1 and rec["rank_param_spread"] == 0.0
    strip = lambda p: [ln.split(",")[:6] for ln in (p / "history.csv").read_text().splitlines()]  # noqa: E731
    assert strip(torchrun_whole) == strip(cut)


def test_sync_bn_on_cpu_is_refused_before_any_work(tmp_path):
    env = clean_env(OMP_NUM_THREADS="1")
    proc = subprocess.run(
        torchrun("recipe.epochs=1", "device=cpu", "train.sync_bn=true"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "train.sync_bn=true needs CUDA" in proc.stdout + proc.stderr
    run = tmp_path / "runs/adhoc/recipe.epochs=1,train.sync_bn=true"  # device does not name run dirs
    assert record(run)["status"] == "failed" and not (run / "last.pt").exists()


# ---------------------------------------------------------------------------- sweep status
def status(tmp_path, capsys, where="runs") -> str:
    """``senet-report --status`` in this process (the CLI entry itself: cli.main)."""
    from senet_ablate.study import cli

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert cli.main(["--status", where]) == 0
    finally:
        os.chdir(cwd)
    return capsys.readouterr().out


def test_status_lists_each_job_and_prints_the_overrides_that_relaunch_the_unfinished(tmp_path, capsys):
    run_cli("run.app", "-m", "experiment=quickstart", "task=profile", cwd=tmp_path)  # 3 rows x seeds 0,1
    sweep = tmp_path / "runs/quickstart"
    name = lambda row, seed: f"row={row},seed={seed},task=profile"  # noqa: E731
    failed, gone, lost, cut = name("baseline", 0), name("se_avg", 1), name("se_max", 1), name("se_max", 0)
    edit = {
        failed: {"status": "failed", "reason": "non-finite loss (nan) at epoch 1, step 3"},
        gone: {"status": "running", "pid": 2**22 + 12345},  # beyond pid_max here: no such process
        cut: {"status": "preempted", "reason": "preempted by SIGTERM at epoch 1, step 4 of 22"},
    }
    for d, fields in edit.items():
        rec = record(sweep / d)
        rec.update(fields)
        (sweep / d / "metrics.json").write_text(json.dumps(rec))
    import shutil

    shutil.rmtree(sweep / lost)
    out = status(tmp_path, capsys)
    assert (
        "quickstart (runs/quickstart): 6 jobs: 2 completed, 0 running, 1 preempted, 1 interrupted, "
        "1 failed, 1 missing" in out
    )
    relaunch = [ln.strip() for ln in out.splitlines() if ln.startswith("  senet-ablate ")]
    recorded = (sweep / "jobs.json").read_text()  # the sweeper's record of its jobs; without it (older
    (sweep / "jobs.json").unlink()  # sweeps) --status expands multirun.yaml to the same jobs and says the same
    assert status(tmp_path, capsys) == out
    (sweep / "jobs.json").write_text(recorded)
    assert relaunch[:-1] == [
        f"senet-ablate experiment=quickstart task=profile row={r} seed={s}"
        for r, s in (("baseline", 0), ("se_avg", 1), ("se_max", 0), ("se_max", 1))
    ]
    assert relaunch[-1] == "senet-ablate -m experiment=quickstart task=profile"
    assert "non-finite loss" in out and "is gone" in out

    # the printed commands relaunch them: one job alone, then the whole sweep for the rest
    run_cli("run.app", *relaunch[0].split()[1:], cwd=tmp_path)
    assert "3 completed" in status(tmp_path, capsys)
    again = run_cli("run.app", *relaunch[-1].split()[1:], cwd=tmp_path)
    assert (again.stdout + again.stderr).count("already completed") == 3
    out = status(tmp_path, capsys)
    assert "6 jobs: 6 completed, 0 running, 0 failed, 0 missing" in out and "relaunch" not in out


def test_status_of_a_dir_without_sweeps_says_so(tmp_path, capsys):
    from senet_ablate.study import cli

    assert cli.main(["--status", str(tmp_path)]) == 1
    assert "no sweep (multirun.yaml)" in capsys.readouterr().err


def test_slurm_example_renders_the_sbatch_script_submitit_would_submit(compose_cfg, tmp_path, monkeypatch):
    """conf/hydra/launcher/slurm.yaml through submitit's own script writer (no cluster here:
    submitit only checks that an `srun` exists, so a do-nothing one is put on PATH)."""
    import submitit
    from omegaconf import OmegaConf

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    cfg = compose_cfg(
        "experiment=paper/table10_reduction",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.job.name=senet",
        "hydra.sweep.dir=/scratch/sweep",
        hydra=True,
    )
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert params["_target_"].endswith("SlurmLauncher")
    base = {
        "timeout_min",
        "cpus_per_task",
        "gpus_per_node",
        "tasks_per_node",
        "mem_gb",
        "nodes",
        "name",
        "stderr_to_stdout",
    }
    ex = submitit.AutoExecutor(
        cluster="slurm", folder=params.pop("submitit_folder"), slurm_max_num_timeout=params.pop("max_num_timeout")
    )
    params.pop("_target_")
    ex.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    ex._executor.parameters["map_count"] = 40
    script = ex._executor._make_submission_file_text("python -u -m submitit.core._submit /scratch", "uid")
    for line in (
        "--partition=gpu",
        "--gpus-per-node=1",
        "--cpus-per-task=10",
        "--time=1440",
        "--signal=USR2@120",
        "--array=0-39%16",
        "--mem=64GB",
        "--job-name=senet",
    ):
        assert f"#SBATCH {line}\n" in script, line
    assert "module load cuda/12.4 || true\n" in script and "/bin/activate\n" in script


def _leave_after_ddp(rank: int, out: str, port: int) -> None:
    from senet_ablate import distributed

    os.environ.update(
        RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    distributed.dist_context()
    ddp = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 2))
    ddp(torch.randn(3, 4)).sum().backward()
    del ddp
    gloo = lambda: sorted(
        n
        for n in (Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in os.listdir("/proc/self/task"))
        if "gloo" in n
    )
    during = gloo()
    distributed._leave_group()
    Path(out, f"rank{rank}.json").write_text(json.dumps({"during": during, "after": gloo()}))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread names from /proc")
def test_leaving_the_group_after_ddp_stops_its_threads(ddp_ranks):
    """A rank leaves its gloo group before interpreter shutdown, for real: DDP's lazy import of
    torch.distributed.nn.functional once pinned the group (as a default argument), so its worker
    threads outlived destroy_process_group and died with the interpreter, by SIGABRT now and then.
    (The ranks of ``ddp_ranks`` check it after their DDP training: nothing of it may hold the group.)"""
    for rank in (0, 1):
        threads = json.loads((ddp_ranks / f"rank{rank}.json").read_text())
        assert "pt_gloo_runloop" in threads["during"] and threads["after"] == [], threads
