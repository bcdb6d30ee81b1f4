"""The user's own optimiser and schedule: ``recipe.optimizer`` and ``recipe.schedule`` as
``_target_`` nodes, checked at config time, fingerprinted, swept into a table, and resumed bit-identically
after SIGKILL with an LRScheduler's state in last.pt. The built-in ``sgd | rmsprop`` and schedules are
unchanged (the rest of the suite trains with them)."""

import math
import os
import signal

import pytest
import torch
from conftest import history, pause_env, record, run_cli, run_job, start_cli, wait_paused, write_files
from omegaconf import OmegaConf

from senet_ablate.errors import ConfigError
from senet_ablate.records import predictions
from senet_ablate.train import Runtime, check_recipe, lr_at, make_optimizer, make_scheduler

CPU = Runtime(torch.device("cpu"), amp=False, channels_last=False)
ADAMW = "{_target_: torch.optim.AdamW, lr: 0.001, weight_decay: 0.05}"
RESTARTS = "{_target_: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts, T_0: 2, eta_min: 0.001}"
# a user's package: a function schedule, (epoch) -> factor
MY_SCHEDULE = {
    "my_sched/__init__.py": "",
    "my_sched/halving.py": "def halve_every(epoch, every=1.0):\n    return 0.5 ** int(epoch // every)\n",
}


def recipe(**over):
    base = dict(
        epochs=4, batch_size=64, base_batch_size=128, lr=0.1, optimizer="sgd", momentum=0.9, nesterov=False,
        weight_decay=1e-4, schedule="cosine", milestones=[0.5, 0.75], step_epochs=None, gamma=0.1,
        warmup_epochs=0, warmup="linear",
    )  # fmt: skip
    return OmegaConf.create({**base, **over})


def test_a_target_optimizer_gets_its_keys_and_its_lr_follows_the_recipe():
    r = recipe(optimizer=OmegaConf.create(ADAMW))
    check_recipe(r)
    opt = make_optimizer(torch.nn.Linear(3, 2), r, CPU)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["weight_decay"] == 0.05
    assert opt.param_groups[0]["lr"] == lr_at(r, 0) == 0.001 * 64 / 128  # its own lr, batch-scaled
    assert lr_at(r, 2) == pytest.approx(0.0005 * 0.5 * (1 + math.cos(math.pi * 2 / 4)))  # the recipe's cosine


def test_a_function_schedule_multiplies_the_lr(tmp_path, monkeypatch):
    write_files(tmp_path, MY_SCHEDULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    r = recipe(schedule=OmegaConf.create({"_target_": "my_sched.halving:halve_every", "every": 2}), warmup_epochs=1)
    check_recipe(r)
    assert [lr_at(r, e) for e in (1.0, 2.0, 3.5)] == [0.05, 0.025, 0.025]
    assert lr_at(r, 0.5) == pytest.approx(0.05 * (0.1 + 0.9 * 0.5))  # the warm-up comes first


def test_an_lrscheduler_is_built_on_the_optimizer_and_owns_the_lr():
    r = recipe(schedule=OmegaConf.create(RESTARTS))
    check_recipe(r)
    opt = make_optimizer(torch.nn.Linear(3, 2), r, CPU)
    sched = make_scheduler(opt, r)
    assert isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingWarmRestarts) and sched.T_0 == 2
    assert make_scheduler(opt, recipe()) is None


@pytest.mark.parametrize(
    "over, match",
    [
        ({"optimizer": "adam"}, r"recipe.optimizer='adam' is not valid; valid values: sgd, rmsprop, or a \{_target_"),
        ({"optimizer": {"_target_": "torch.optim.AdamW", "betaz": [0.9, 0.99]}}, r"optimizer: AdamW cannot"),
        ({"optimizer": {"_target_": "torch.optim.NoSuchOpt"}}, r"recipe.optimizer._target_='torch.optim.NoSuchOpt'"),
        ({"optimizer": {"_target_": "torch.optim.AdamW", "lr": -1}}, r"recipe.optimizer.lr=-1 must be > 0"),
        ({"schedule": "linear"}, r"recipe.schedule='linear' is not valid; valid values: multistep"),
        ({"schedule": {"_target_": "torch.optim.lr_scheduler.StepLR"}}, r"recipe.schedule: StepLR cannot take"),
        ({"schedule": {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 1}, "warmup_epochs": 1},
         r"recipe.warmup_epochs=1 with an LRScheduler"),
        ({"schedule": {"_target_": "math.log"}}, r"recipe.schedule: math.log\(0.0\) raised ValueError"),
        ({"schedule": {"_target_": "math.cos", "x": 1}}, r"recipe.schedule: cos cannot take \['x'\]"),
    ],
)  # fmt: skip
def test_bad_optimizer_and_schedule_nodes_fail_at_config_time_naming_the_key(over, match):
    with pytest.raises(ConfigError, match=match):
        check_recipe(recipe(**{k: OmegaConf.create(v) if isinstance(v, dict) else v for k, v in over.items()}))


SHORT = ["recipe=quick", "recipe.epochs=2", "deterministic=true", "train.amp=false"]


@pytest.mark.slow
def test_a_sweep_over_adamw_and_sgd_ends_in_its_table(tmp_path):
    proc = run_cli("run.app", "-m", *SHORT, f"recipe.optimizer={ADAMW},sgd", "study=opt", cwd=tmp_path)
    runs = sorted((tmp_path / "runs/opt").glob("*/metrics.json"))
    assert len(runs) == 2
    recs = {r.parent.name: record(r.parent) for r in runs}
    assert all(rec["status"] == "completed" for rec in recs.values())
    assert len({rec["fingerprint"] for rec in recs.values()}) == 2  # the optimiser is part of a run's identity
    table = (tmp_path / "runs/opt/table.md").read_text()
    assert "recipe.optimizer=AdamW(lr=0.001, weight_decay=0.05)" in table and "recipe.optimizer=sgd" in table
    assert table in proc.stdout
    adamw = next(rec for name, rec in recs.items() if "AdamW" in name)
    assert adamw["config"]["recipe"]["optimizer"]["weight_decay"] == 0.05


@pytest.mark.slow
def test_a_user_scheduler_resumes_bit_identically_after_sigkill(tmp_path):
    args = [*SHORT, "recipe.epochs=3", f"recipe.schedule={RESTARTS}", "study=sched", "data.subset={train: 480}"]
    run_job(*args, "runs_dir=whole", cwd=tmp_path)
    [whole] = (tmp_path / "whole/sched").iterdir()
    marks = tmp_path / "marks"
    proc = start_cli("run.app", *args, "runs_dir=cut", cwd=tmp_path, env=pause_env(marks, "2:2"))
    wait_paused(marks, proc)  # held before step 3 of epoch 2: epoch 1 and the scheduler's step are on disk
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    [cut] = (tmp_path / "cut/sched").iterdir()
    assert torch.load(cut / "last.pt", weights_only=True)["scheduler"]["last_epoch"] == 1
    out = run_cli("run.app", *args, "runs_dir=cut", cwd=tmp_path)
    assert "resuming from" in out.stdout + out.stderr
    a, b = record(whole), record(cut)
    assert b["status"] == "completed" and a["top1_err"] == b["top1_err"] and a["top5_err"] == b["top5_err"]
    same = lambda h: [(r["epoch"], r["lr"], r["train_loss"], r["top1_err"]) for r in h]  # noqa: E731
    assert same(history(whole)) == same(history(cut))
    lrs = [float(r["lr"]) for r in history(whole)]
    assert lrs[0] > lrs[1] and lrs[2] == lrs[0]  # a warm restart after T_0 = 2 epochs: the scheduler ran
    pw, pc = predictions.read(whole), predictions.read(cut)
    assert (pw.top5 == pc.top5).all()
