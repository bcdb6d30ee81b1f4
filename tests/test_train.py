"""Training as a user runs it: real data, records, exact resume after SIGKILL, skip when done,
divergence, bad input, and the offline wandb run read back."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from conftest import (
    ROOT,
    clean_env,
    history,
    pause_env,
    record,
    run_cli,
    run_job,
    start_cli,
    user_package,
    wait_paused,
    write_files,
)
from wandb_offline import history_and_summary

from senet_ablate.records import predictions

SHORT = ["recipe.epochs=2"]


def test_train_on_digits_writes_a_complete_record(tmp_path):
    run_job(*SHORT, "study=t", cwd=tmp_path)
    run = tmp_path / "runs/t/recipe.epochs=2"
    rec = record(run)
    assert rec["status"] == "completed" and rec["task"] == "train" and rec["seed"] == 0
    assert rec["epochs_done"] == 2 and len(history(run)) == 2
    assert rec["top1_err"] < 50 and rec["best_top1_err"] <= rec["top1_err"]  # chance is 90%
    for key in (
        "top5_err",
        "best_top5_err",
        "train_time_s",
        "images_per_s",
        "git_revision",
        "versions",
        "params",
        "gflops",
        "fingerprint",
    ):
        assert rec[key] is not None, key
    assert rec["versions"]["torch"] == torch.__version__.split("+")[0] or rec["versions"]["torch"]
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and "model" in state and "optimizer" in state


@pytest.mark.parametrize("amp", ["false", "true"])  # exact fp32, and bf16 autocast (the default on a bf16 CPU)
def test_same_seed_same_metrics_on_cpu_in_this_process_and_from_the_cli(tmp_path, amp):
    """A seed determines a result, whichever way the job runs: in this process (how most tests run a job)
    and as ``python -m senet_ablate.run.app`` (how a user runs it) give the same record and history."""
    # 480 of the digits (data.subset): bf16 autocast on a CPU without native bf16 is emulated, about 3x fp32's time
    args = [*SHORT, "deterministic=true", f"train.amp={amp}", "data.subset={train: 480}"]
    run_job(*args, "runs_dir=a", cwd=tmp_path)
    run_cli("run.app", *args, "runs_dir=b", cwd=tmp_path)
    [a], [b] = ([*(tmp_path / d / "adhoc").iterdir()] for d in "ab")
    assert a.name == b.name
    ha, hb = history(a), history(b)
    strip = lambda h: [{k: v for k, v in row.items() if "time" not in k and "per_s" not in k} for row in h]  # noqa
    assert strip(ha) == strip(hb)
    metrics = ("top1_err", "top5_err", "best_top1_err", "best_top5_err", "best_epoch", "epochs_done", "fingerprint")
    assert {k: record(a)[k] for k in metrics} == {k: record(b)[k] for k in metrics}


@pytest.mark.parametrize("amp", ["false", "true"])
def test_sigkill_then_relaunch_matches_uninterrupted_run(tmp_path, amp):
    # 8 steps an epoch: 480 of the digits (data.subset) at batch 64
    args = ["recipe.epochs=4", "deterministic=true", f"train.amp={amp}", "data.subset={train: 480}"]
    run_job(*args, "runs_dir=whole", cwd=tmp_path)
    [name] = [p.name for p in (tmp_path / "whole/adhoc").iterdir()]
    whole, cut = tmp_path / "whole/adhoc" / name, tmp_path / "cut/adhoc" / name
    marks = tmp_path / "marks"
    proc = start_cli("run.app", *args, "runs_dir=cut", cwd=tmp_path, env=pause_env(marks, "3:5"))
    wait_paused(marks, proc)  # held before step 6 of epoch 3: epochs 1 and 2 are on disk
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = record(cut)
    assert killed["status"] == "running" and killed["epochs_done"] == 2

    out = run_cli("run.app", *args, "runs_dir=cut", cwd=tmp_path)
    assert "resuming from" in out.stdout + out.stderr and "after epoch 2 of 4" in out.stdout + out.stderr
    a, b = record(whole), record(cut)
    assert b["status"] == "completed" and b["epochs_done"] == 4
    for key in ("top1_err", "top5_err", "best_top1_err", "best_top5_err", "best_epoch", "params"):
        assert a[key] == b[key], key
    same = lambda h: [(r["epoch"], r["lr"], r["train_loss"], r["top1_err"], r["top5_err"]) for r in h]  # noqa
    assert same(history(whole)) == same(history(cut))
    pw, pc = predictions.read(whole), predictions.read(cut)  # the resumed run predicts every image alike
    assert pw.key == pc.key and (pw.top5 == pc.top5).all() and (pw.label == pc.label).all()


def test_relaunching_a_completed_sweep_trains_nothing(tmp_path):
    args = ["-m", "experiment=quickstart", "recipe.epochs=1", "hydra.sweeper.params.seed=0"]
    run_cli("run.app", *args, cwd=tmp_path)
    sweep = tmp_path / "runs/quickstart"
    ckpts = sorted(sweep.rglob("last.pt"))
    assert len(ckpts) == 3
    stamps = [p.stat().st_mtime_ns for p in ckpts]
    table = (sweep / "table.md").read_text()
    again = run_cli("run.app", *args, cwd=tmp_path)
    assert (again.stdout + again.stderr).count("already completed") == 3
    assert "epoch 1/1" not in again.stdout + again.stderr
    assert [p.stat().st_mtime_ns for p in ckpts] == stamps
    assert (sweep / "table.md").read_text() == table


def test_divergence_is_recorded_and_the_sweep_goes_on(tmp_path):
    proc = run_cli("run.app", "-m", "recipe.lr=1e30,0.05", "recipe.epochs=1", "study=div", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    [bad_dir] = (tmp_path / "runs/div").glob("recipe.epochs=1,recipe.lr=1e*30")
    bad, good = record(bad_dir), record(tmp_path / "runs/div/recipe.epochs=1,recipe.lr=0.05")
    assert bad["status"] == "failed" and "non-finite loss" in bad["reason"] and "epoch 1" in bad["reason"]
    assert good["status"] == "completed"


@pytest.mark.parametrize(
    "args, match",
    [
        (["data=cifar10_jpeg"], "data.root is not set"),
        (["data=cifar10_jpeg", "data.root=/nonexistent/cifar"], "does not exist"),
        (["recipe.epochs=0"], "recipe.epochs=0 must be a positive integer"),
        (["data=cifar10_jpeg", "data.root={empty}"], "must hold train/ and val/"),
        (["data=cifar10_jpeg", "data.root={odd}", "data.num_classes=2"], "not an image file"),
        (["data=cifar10_jpeg", "data.root={odd}", "data.num_classes=3"], "data.num_classes=3 but"),
    ],
)
def test_bad_input_fails_before_training(tmp_path, args, match):
    (tmp_path / "empty").mkdir()
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            (tmp_path / "odd" / split / c).mkdir(parents=True)
            (tmp_path / "odd" / split / c / "0.jpg").write_bytes(b"")
    (tmp_path / "odd/train/dog/readme.md").write_text("not an image")
    args = [a.format(empty=tmp_path / "empty", odd=tmp_path / "odd") for a in args]
    proc = run_cli("run.app", *args, "study=bad", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and match in proc.stderr
    assert "Traceback" not in proc.stderr
    for p in (tmp_path / "runs").rglob("metrics.json"):
        rec = json.loads(p.read_text())
        assert rec["status"] == "failed" and "top1_err" not in rec
    assert not list((tmp_path / "runs").rglob("last.pt"))


def test_wandb_offline_run_holds_the_logged_metrics(tmp_path):
    env_key = "senet-test-secret-0123456789"
    run_cli("run.app", *SHORT, "logger=wandb", "study=wb", cwd=tmp_path, env={"WANDB_API_KEY": env_key})
    run = tmp_path / "runs/wb/recipe.epochs=2"
    logged, summary, config = history_and_summary(run)
    ours = history(run)
    assert [r["epoch"] for r in logged] == [1, 2]
    assert [r["top1_err"] for r in logged] == [float(h["top1_err"]) for h in ours]
    assert summary["status"] == "completed" and summary["top1_err"] == record(run)["top1_err"]
    assert config["study"] == "wb" and config["se"]["squeeze"] == "avg"
    for p in [run / "metrics.json", run / "history.csv", *(run / ".hydra").iterdir()]:
        assert env_key not in p.read_text(), p


# ---------------------------------------------------------------------------- unreadable images
def _text_tree(root):
    for split, name in (("train", "x.jpg"), ("test", "y.jpg")):
        (root / split / "a").mkdir(parents=True)
        (root / split / "a" / name).write_text("not an image")
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_a_corrupt_image_with_dataloader_workers_ends_the_job_promptly(tmp_path, workers):
    """A worker that meets a file it cannot decode used to leave the process hanging at exit.
    (A hang shows as the subprocess timeout; measured here: about 8 s per run.)"""
    tree = _text_tree(tmp_path / "T")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "senet_ablate.run.app",
            "task=train",
            "model=cifar_resnet20",
            "recipe=quick",
            "data=imagefolder",
            f"data.root={tree}",
            f"data.workers={workers}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert proc.returncode == 1, proc.stderr
    assert f"cannot decode image {tree}/train/a/x.jpg" in proc.stderr and "Traceback" not in proc.stderr
    [rec] = [json.loads(p.read_text()) for p in tmp_path.rglob("metrics.json")]
    assert rec["status"] == "failed" and f"{tree}/train/a/x.jpg" in rec["reason"]


def test_an_error_in_the_main_process_while_workers_run_ends_the_job(tmp_path, cifar_jpeg):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "senet_ablate.run.app",
            "data=imagefolder",
            f"data.root={cifar_jpeg}",
            "data.image_size=32",
            "data.workers=2",
            "recipe.lr=1e30",
            "recipe.epochs=1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert proc.returncode == 1 and "non-finite loss" in proc.stderr
    [rec] = [json.loads(p.read_text()) for p in tmp_path.rglob("metrics.json")]
    assert rec["status"] == "failed"


def test_a_file_corrupted_in_a_later_epoch_fails_naming_it_keeps_last_pt_and_resumes_when_fixed(tmp_path, cifar_jpeg):
    """Epoch 37 of a long run, in small: epoch 1 trains, the job is held at the start of epoch 2
    while a file is damaged. The job fails naming the file and leaves last.pt (epoch 1) as it was;
    with the file restored, a relaunch resumes after epoch 1. With data.skip_bad_images=true a
    relaunch goes on without the file and lists it in the record."""
    import shutil

    tree = tmp_path / "tree"
    shutil.copytree(cifar_jpeg, tree)
    victim = tree / "train/dog/0007.jpg"
    good = victim.read_bytes()
    overrides = [
        "data=imagefolder",
        f"data.root={tree}",
        "data.image_size=32",
        "data.workers=1",
        "recipe.epochs=2",
        "recipe.batch_size=50",
    ]
    run = tmp_path / "runs/adhoc/data.image_size=32,data=imagefolder,recipe.batch_size=50,recipe.epochs=2"
    marks = tmp_path / "marks"
    proc = start_cli("run.app", *overrides, cwd=tmp_path, env=pause_env(marks, "2:0"))
    wait_paused(marks, proc)
    ckpt = (run / "last.pt").read_bytes()
    victim.write_bytes(b"damaged")
    (marks / "go").touch()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, out + err
    rec = record(run)
    assert (
        rec["status"] == "failed" and f"cannot decode image {victim}" in rec["reason"] and "(epoch 2" in rec["reason"]
    )
    assert rec["epochs_done"] == 1 and (run / "last.pt").read_bytes() == ckpt

    skipped = run_cli("run.app", *overrides, "data.skip_bad_images=true", cwd=tmp_path)
    assert "after epoch 1 of 2" in skipped.stdout, skipped.stdout + skipped.stderr
    rec = record(run)  # the same run dir: skip_bad_images does not change what a run is
    assert rec["status"] == "completed" and rec["skipped_images"] == 1 and rec["skipped_image_paths"] == [str(victim)]
    assert history(run)[-1]["images"] == "199"

    victim.write_bytes(good)
    shutil.rmtree(tmp_path / "runs")
    run_cli("run.app", *overrides, cwd=tmp_path)
    assert "skipped_images" not in record(run)


ONE_UNIT = """
from my_nets import Unit

from senet_ablate.models.layers import Backbone, conv_bn, make_stages


class OneUnit(Backbone):
    def __init__(self, se, num_classes, width=8):
        super().__init__()
        self.stem = conv_bn(3, width, 3, relu=True)
        stages, out = make_stages((1,), (1,), (width,), width, se, Unit)
        self.finish(stages, out, num_classes)


def one_unit(*, se=None, num_classes=10):
    return OneUnit(se, num_classes)
"""


@pytest.mark.slow
def test_a_compiled_run_counts_compile_time_apart_from_images_per_s(tmp_path, monkeypatch):
    """torch.compile runs before the clock: the record holds compile_s, no graph was compiled
    during the timed steps, and images/s of epoch 1 is that of a warm model (it was ~9 img/s when
    epoch 1 paid the compile). Batches of 449 split digits' 1,347 training images evenly, and one
    eval batch holds its 450, so one training and one eval shape are compiled. The net is one unit of the docs'
    SE backbone (my_nets.Unit after a stem): what is timed is the same, its compile a fraction of ResNet-20's
    (26 s against 41 s for the docs' five-unit net on a 2-core AVX-512 CPU, most of it g++)."""
    for key in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):  # torch writes its default into this process's
        monkeypatch.delenv(key, raising=False)  # environment once anything touched inductor
    cache = tmp_path / "cache"
    pkg = write_files(tmp_path / "pkg", {**user_package(), "one_unit.py": ONE_UNIT})
    args = [
        "model=custom",
        "model._target_=one_unit.one_unit",
        "se.reduction=4",
        "train.compile=true",
        "recipe.epochs=2",
        "recipe.batch_size=449",
        "recipe.eval_batch_size=450",
        f"cache_dir={cache}",
    ]
    run_cli("run.app", *args, cwd=tmp_path, env={"PYTHONPATH": str(pkg)})
    [path] = (tmp_path / "runs").rglob("metrics.json")
    rec = json.loads(path.read_text())
    assert rec["status"] == "completed" and rec["compile"] == "default" and rec["compile_s"] > 0
    assert rec["graphs_compiled_while_timed"] == 0
    hist = history(path.parent)
    times = [float(h["epoch_time_s"]) for h in hist]
    assert rec["train_time_s"] == pytest.approx(sum(times))
    assert rec["images_per_s"] == pytest.approx(2 * 1347 / sum(times))
    assert rec["compile_s"] > sum(times)  # compiling a net takes longer than training it on 2,694 images
    first, second = (float(h["images_per_s"]) for h in hist)
    assert first > second / 5  # epoch 1 ran the compiled model warm
    assert any((cache / "inductor").iterdir())  # the sweep-wide compile cache was used


def test_a_key_added_later_leaves_old_fingerprints_unchanged_at_its_default(compose_cfg):
    """se.min_hidden arrived after runs were recorded without it: at its default (0) a config
    fingerprints as it did before, so those runs still resume and still count as done."""
    from omegaconf import OmegaConf

    from senet_ablate.run.app import fingerprint

    now = OmegaConf.to_container(compose_cfg("model=cifar_resnet20"), resolve=True)
    assert now["se"]["min_hidden"] == 0
    before = {**now, "se": {k: v for k, v in now["se"].items() if k != "min_hidden"}}
    assert fingerprint(now) == fingerprint(before)
    assert fingerprint({**now, "se": {**now["se"], "min_hidden": 1}}) != fingerprint(before)


def test_the_attention_keys_leave_old_fingerprints_unchanged_at_their_defaults(compose_cfg):
    """se.excitation, fusion, spatial, hidden_divisor, kernel_size and extent came with SE's successors:
    a config at their defaults (SE itself) fingerprints as before they existed; ECA does not."""
    from omegaconf import OmegaConf

    from senet_ablate.run.app import fingerprint

    new = ("excitation", "fusion", "spatial", "hidden_divisor", "kernel_size", "extent")
    now = OmegaConf.to_container(compose_cfg("model=cifar_resnet20"), resolve=True)
    before = {**now, "se": {k: v for k, v in now["se"].items() if k not in new}}
    assert fingerprint(now) == fingerprint(before)
    assert fingerprint(
        OmegaConf.to_container(compose_cfg("model=cifar_resnet20", "attention=se"), resolve=True)
    ) == fingerprint(before)
    eca = OmegaConf.to_container(compose_cfg("model=cifar_resnet20", "attention=eca"), resolve=True)
    assert fingerprint(eca) != fingerprint(before)


def test_the_mbconv_keys_leave_old_fingerprints_unchanged(compose_cfg):
    """se.round_limit, hidden_from, hidden_act and recipe.optimizer came with the MBConv nets: a config at
    their defaults fingerprints as before they existed, and so does ECA's (null: they do not apply); the
    committed CPU Table 11 records still match what their configs fingerprint to now."""
    import json

    from omegaconf import OmegaConf

    from senet_ablate.run.app import fingerprint

    def without_new(c):
        se = {k: v for k, v in c["se"].items() if k not in ("round_limit", "hidden_from", "hidden_act")}
        return {**c, "se": se, "recipe": {k: v for k, v in c["recipe"].items() if k != "optimizer"}}

    for attention in ("se", "eca", "srm"):
        now = OmegaConf.to_container(compose_cfg("model=cifar_resnet20", f"attention={attention}"), resolve=True)
        assert fingerprint(now) == fingerprint(without_new(now)), attention
    silu = OmegaConf.to_container(compose_cfg("model=cifar_resnet20", "se.hidden_act=silu"), resolve=True)
    assert fingerprint(silu) != fingerprint(without_new(silu))
    records = sorted((ROOT / "results" / "cpu_table11").rglob("metrics.json"))
    assert len(records) == 9
    for path in records:
        rec = json.loads(path.read_text())
        assert "optimizer" not in rec["config"]["recipe"] and fingerprint(rec["config"]) == rec["fingerprint"]


def test_compile_auto_compiles_only_cpu_runs_long_enough_and_keeps_the_identity_of_false(compose_cfg):
    """train.compile=auto: compiled from AUTO_COMPILE_STEPS training steps on the CPU, eager below
    it and on a GPU, the reason recorded; fingerprinted and tabulated as false, so runs recorded eager keep
    their identity and their rows."""
    import torch
    from omegaconf import OmegaConf

    from senet_ablate.records.keys import fingerprint
    from senet_ablate.study.grouping import flatten
    from senet_ablate.train import AUTO_COMPILE_STEPS, Runtime, decide_compile

    cfg = compose_cfg()
    assert cfg.train.compile == "auto"
    cpu = Runtime(torch.device("cpu"), amp=False, channels_last=True)
    short, why = decide_compile(cfg, cpu, AUTO_COMPILE_STEPS - 1)
    assert (
        short.compile is None
        and why == f"auto: eager, {AUTO_COMPILE_STEPS - 1} training steps < 3000 (too short to earn the compile back)"
    )
    long, why = decide_compile(cfg, cpu, AUTO_COMPILE_STEPS)
    assert long.compile == "default" and why.startswith("auto: compiled")
    gpu = Runtime(torch.device("cuda"), amp=True, channels_last=True)
    assert decide_compile(cfg, gpu, 10**6)[0].compile is None
    assert decide_compile(compose_cfg("train.compile=true"), cpu, 1)[1] == "train.compile=true"
    plain = lambda *o: OmegaConf.to_container(compose_cfg(*o), resolve=True)  # noqa: E731
    assert fingerprint(plain()) == fingerprint(plain("train.compile=false")) != fingerprint(plain("train.compile=true"))
    assert flatten(plain())["train.compile"] == flatten(plain("train.compile=false"))["train.compile"] == "false"
