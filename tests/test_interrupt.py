"""Ctrl-C is an interruption, not a failure: the first SIGINT checkpoints at the end of the step,
records ``interrupted``, prints one line on how to resume and exits 130; a relaunch resumes and
equals an uninterrupted run; a second Ctrl-C stops at once; a sweep stops and still prints its table."""

import os
import signal

from conftest import history, pause_env, record, run_cli, run_job, start_cli, wait_paused

ARGS = ["recipe.epochs=3", "deterministic=true", "data.subset={train: 480}"]  # 8 steps an epoch, of 64
DIR = "adhoc/data.subset={train: 480},deterministic=true,recipe.epochs=3"


def start(tmp_path, marks, *args, at="2:3"):
    return start_cli("run.app", *args, cwd=tmp_path, env=pause_env(marks, at))


def test_ctrl_c_checkpoints_records_interrupted_exits_130_and_the_relaunch_equals_an_uninterrupted_run(tmp_path):
    run_job(*ARGS, "runs_dir=whole", cwd=tmp_path)
    marks = tmp_path / "marks"
    proc = start(tmp_path, marks, *ARGS, "runs_dir=cut")
    wait_paused(marks, proc)  # held before step 4 of epoch 2
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, out + err
    cut = tmp_path / "cut" / DIR
    rec = record(cut)
    assert rec["status"] == "interrupted" and rec["epochs_done"] == 1
    assert rec["reason"] == "interrupted by Ctrl-C at epoch 2, step 4 of 8; relaunch the same command to resume"
    assert "Traceback" not in out + err and "failed" not in out + err
    said = [line for line in err.splitlines() if "relaunching the same command resumes from last.pt" in line]
    assert len(said) == 1, err

    again = run_cli("run.app", *ARGS, "runs_dir=cut", cwd=tmp_path)
    assert "resuming from" in again.stdout + again.stderr and "step 4 of epoch 2" in again.stdout + again.stderr
    whole, resumed = record(tmp_path / "whole" / DIR), record(cut)
    assert resumed["status"] == "completed"
    for key in ("top1_err", "top5_err", "best_top1_err", "best_top5_err", "epochs_done"):
        assert whole[key] == resumed[key], key
    same = lambda h: [(r["epoch"], r["train_loss"], r["train_err"], r["top1_err"], r["top5_err"]) for r in h]  # noqa
    assert same(history(tmp_path / "whole" / DIR)) == same(history(cut))


def test_a_second_ctrl_c_raises_at_once():
    """The guard turns the first SIGINT into a flag (checkpoint at the end of the step) and the
    second into KeyboardInterrupt; a preemption signal never raises."""
    import pytest

    from senet_ablate.distributed import Interrupted, PreemptionGuard

    before = signal.getsignal(signal.SIGINT)  # the caller's: a shell's background job has SIGINT ignored
    with PreemptionGuard() as guard:
        signal.raise_signal(signal.SIGINT)
        assert guard.signum == signal.SIGINT
        assert isinstance(guard.preempted("at epoch 1, step 2 of 3"), Interrupted)
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    with PreemptionGuard() as guard:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)
        assert guard.signum == signal.SIGTERM and not isinstance(guard.preempted("x"), Interrupted)
    assert signal.getsignal(signal.SIGINT) is before  # put back on leaving


def test_ctrl_c_outside_the_training_loop_is_recorded_interrupted_too(tmp_path, compose_cfg, monkeypatch):
    """A KeyboardInterrupt anywhere in a job (here: in its task) records ``interrupted`` and exits 130."""
    import pytest

    from senet_ablate.run import app

    def stopped(cfg, job, model):
        raise KeyboardInterrupt

    monkeypatch.setitem(app.TASKS, "profile", stopped)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        app.run(compose_cfg("task=profile"))
    assert e.value.code == 130
    rec = record(tmp_path)
    assert rec["status"] == "interrupted" and rec["reason"] == "interrupted by Ctrl-C"


def test_ctrl_c_stops_a_sweep_which_still_prints_its_table(tmp_path):
    marks = tmp_path / "marks"
    env = pause_env(marks, "2:1", run="se.squeeze=avg")
    proc = start_cli("run.app", "-m", "recipe.epochs=2", "se.squeeze=avg,max", cwd=tmp_path, env=env)
    wait_paused(marks, proc)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, out + err
    assert "#1 : " not in out + err  # the second job never started
    assert "| all runs |" in out and "0 done, 1 interrupted" in out, out
    assert "senet-report --status runs/adhoc" in out
    assert record(tmp_path / "runs/adhoc/recipe.epochs=2,se.squeeze=avg")["status"] == "interrupted"
    assert not (tmp_path / "runs/adhoc/recipe.epochs=2,se.squeeze=max").exists()
