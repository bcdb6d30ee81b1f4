"""Detection (paper Table 7): the generated set is deterministic and valid COCO; our detector
with a plain ResNet-50 trunk equals torchvision's fasterrcnn_resnet50_fpn (boxes, scores, losses) with the
same weights; task=detect trains an SE trunk, resumes after Ctrl-C to the same state and records COCO AP;
bad input fails before any work naming the key or file; Table 7's preset profiles its four detectors."""

import json
import os
import signal
import subprocess

import pytest
import torch
from conftest import history, pause_env, record, run_cli, run_job, start_cli, wait_paused

from senet_ablate.api import se_spec
from senet_ablate.detect import coco, synth
from senet_ablate.detect.model import detector, taps
from senet_ablate.errors import ConfigError
from senet_ablate.models import build_model

TORCHVISION = {"stride_style": "pytorch", "stem_pool": "pad"}


@pytest.fixture(scope="module")
def det_set(cifar_jpeg, tmp_path_factory):
    """24 train / 8 val canvases from the shared CIFAR-10 JPEG images (senet-detset)."""
    out = tmp_path_factory.mktemp("det")
    synth.make(cifar_jpeg, out, train=24, val=8)
    return out


# ---------------------------------------------------------------------------- the generated set
def test_generated_set_is_deterministic_valid_coco_with_both_orientations(det_set, cifar_jpeg, tmp_path):
    synth.make(cifar_jpeg, tmp_path, train=24, val=8)
    for split in ("train", "val"):
        a, b = (root / "annotations" / f"instances_{split}.json" for root in (det_set, tmp_path))
        assert a.read_bytes() == b.read_bytes()
        assert all((det_set / split / p.name).read_bytes() == p.read_bytes() for p in (tmp_path / split).iterdir())
        s = coco.load_split(det_set, split, num_classes=10)  # checked whole: boxes inside, categories known
        assert len(s.images) == (24 if split == "train" else 8) and s.num_classes == 10
        assert {im["width"] > im["height"] for im in s.images} == {True, False}
        assert all(1 <= len(b) <= 3 for b in s.boxes)
    other = tmp_path / "seed1"
    synth.make(cifar_jpeg, other, train=24, val=8, seed=1)
    assert (other / "annotations/instances_train.json").read_bytes() != a.read_bytes()


def test_batches_group_orientations_and_depend_only_on_seed_and_epoch(det_set):
    s = coco.load_split(det_set, "train")
    b = coco.grouped_batches(s, 4, seed=0, epoch=1)
    assert b == coco.grouped_batches(s, 4, seed=0, epoch=1) != coco.grouped_batches(s, 4, seed=0, epoch=2)
    assert sorted(i for batch in b for i in batch) == list(range(24))
    assert all(len({s.images[i]["width"] > s.images[i]["height"] for i in batch}) == 1 for batch in b)
    x, t = coco.sample(s, 0, flip=False)
    xf, tf = coco.sample(s, 0, flip=True)
    assert torch.equal(xf, x.flip(-1)) and torch.allclose(tf["boxes"][:, 0], x.shape[-1] - t["boxes"][:, 2])


# ---------------------------------------------------------------------------- equal to torchvision
def torchvision_pair():
    """torchvision's Faster R-CNN R-50-FPN (frozen BN, 3 trainable layers: its pretrained setting) and ours
    with a plain ResNet-50 trunk in torchvision's stride style, holding the same random weights."""
    from torchvision.models import resnet50
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import FrozenBatchNorm2d

    from senet_ablate.models.resnet import RESNET_KEYS
    from senet_ablate.weights import rename

    torch.manual_seed(0)
    size = {"min_size": 192, "max_size": 256}  # both resize alike; torchvision's 800 px would cost 20x the time
    ref = FasterRCNN(_resnet_fpn_extractor(resnet50(norm_layer=FrozenBatchNorm2d), 3), num_classes=91, **size)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # every BN constant random too, so that none can hide behind 0 or 1
        for name, t in ref.backbone.body.named_buffers():
            t.copy_(
                torch.rand(t.shape, generator=g) + 0.5 if "var" in name else torch.randn(t.shape, generator=g) * 0.1
            )
    meta = build_model("resnet50", None, 1000, device="meta", **TORCHVISION)
    ours = detector(build_model("resnet50", None, 1000, **TORCHVISION), taps(meta, "resnet50"), 91, **size)
    sd = ref.state_dict()
    body = rename(
        {k.removeprefix("backbone.body."): v for k, v in sd.items() if k.startswith("backbone.body.")}, RESNET_KEYS
    )
    state = {
        **{f"backbone.body.{k}": v for k, v in body.items()},
        **{k: v for k, v in sd.items() if not k.startswith("backbone.body.")},
    }
    ours.load_state_dict(state, strict=True)
    return ref, ours


def test_detector_equals_torchvision_fasterrcnn_resnet50_fpn():
    ref, ours = torchvision_pair()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    trainable = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    assert count(ref) == count(ours) == 41_755_286  # fasterrcnn_resnet50_fpn, 91 classes
    assert trainable(ref) == trainable(ours)  # conv1 and layer1 frozen in both
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(3, 160, 224, generator=g), torch.rand(3, 192, 160, generator=g)]
    targets = [
        {
            "boxes": torch.tensor([[10.0, 20.0, 90.0, 120.0], [100.0, 30.0, 200.0, 150.0]]),
            "labels": torch.tensor([1, 7]),
        },
        {"boxes": torch.tensor([[30.0, 40.0, 130.0, 170.0]]), "labels": torch.tensor([3])},
    ]
    for m in (ref, ours):
        m.roi_heads.score_thresh = 0.0  # keep every box: random weights score low
    with torch.no_grad():
        a, b = ref.eval()(images), ours.eval()(images)
        for x, y in zip(a, b):
            assert len(x["boxes"]) > 0 and torch.equal(x["labels"], y["labels"])
            assert torch.allclose(x["boxes"], y["boxes"], atol=1e-4) and torch.allclose(
                x["scores"], y["scores"], atol=1e-6
            )
        torch.manual_seed(5)  # the RPN's and box head's samplers draw from the global generator
        la = ref.train()(images, targets)
        torch.manual_seed(5)
        lb = ours.train()(images, targets)
    assert la.keys() == lb.keys() and all(torch.allclose(la[k], lb[k], atol=1e-6) for k in la), (la, lb)


@pytest.mark.parametrize(
    "name, se",
    [
        ("resnet18", {"squeeze": "avgmax", "spatial": "cbam"}),  # CBAM in basic units
        ("mobilenet_v3_small", "published"),  # its own SE, hard-sigmoid
        ("efficientnet_b0", {"stages": [], "between": "bam"}),  # BAM between the MBConv stages
        ("resnet50", {"stages": []}),  # SK units through model.sk
    ],
)
def test_trunks_of_every_family_train_in_the_detector(name, se):

    spec = se_spec(se, name)
    opts = {"sk": {"paths": [[1, 1], [32, 1]], "min_hidden": 0}} if name == "resnet50" else {}
    torch.manual_seed(0)
    net = build_model(name, spec, 10, input_size=128, **opts)
    meta = build_model(name, spec, 10, device="meta", input_size=128, **opts)
    model = detector(
        net,
        taps(meta, name),
        6,
        trainable_stages=5,
        min_size=96,
        max_size=128,
        proposals_train=50,
        proposals_test=20,
        rois_per_image=32,
    )
    images = [torch.rand(3, 96, 128), torch.rand(3, 128, 96)]
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 60.0, 70.0]]), "labels": torch.tensor([2])}] * 2
    sum(model.train()(images, targets).values()).backward()
    trunk = [p for p in model.backbone.body.parameters()]
    assert trunk and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trunk if p.requires_grad)


# ---------------------------------------------------------------------------- training, resume, AP
ARGS = [
    "task=detect",
    "data=cifar_det",
    "model=resnet18",
    "attention=se",
    "recipe=detect_cpu",
    # a narrower FPN and fewer proposals and RoIs: 15.8M params instead of 28.4M, 12 img/s instead of 2.4 here
    "detect.fpn_channels=64",
    "detect.proposals_train=50",
    "detect.proposals_test=20",
    "detect.rois_per_image=32",
    "recipe.epochs=2",
    "threads=1",
]


@pytest.mark.slow
def test_detect_trains_an_se_trunk_resumes_after_ctrl_c_to_the_same_state_and_records_ap(det_set, tmp_path):
    """The interrupted run also reads its images in a worker process (data.workers=1): neither the resume nor
    the worker count changes what is trained."""
    root = f"data.root={det_set}"
    run_cli("run.app", *ARGS, root, "runs_dir=whole", cwd=tmp_path)
    marks = tmp_path / "marks"
    cut_args = [*ARGS, root, "runs_dir=cut", "data.workers=1"]
    proc = start_cli("run.app", *cut_args, cwd=tmp_path, env=pause_env(marks, "2:2"))
    wait_paused(marks, proc)  # held before step 3 of epoch 2
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, out + err
    [cut] = [p.parent for p in (tmp_path / "cut").rglob("metrics.json")]
    assert record(cut)["status"] == "interrupted" and "epoch 2, step 3 of" in record(cut)["reason"]
    again = run_cli("run.app", *ARGS, root, "runs_dir=cut", "data.workers=1", cwd=tmp_path)
    assert "step 3 of epoch 2" in again.stdout + again.stderr
    [whole] = [p.parent for p in (tmp_path / "whole").rglob("metrics.json")]
    a, b = record(whole), record(cut)
    assert a["status"] == b["status"] == "completed" and a["epochs_done"] == 2
    for key in ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "train_loss", "params"):
        assert a[key] == b[key] or (a[key] != a[key] and b[key] != b[key]), key  # NaN: no box of that size
    assert [h["train_loss"] for h in history(whole)] == [h["train_loss"] for h in history(cut)]
    assert 0 <= a["ap"] <= 100 and a["classes"] == 10 and a["gflops"] > 0
    state = torch.load(cut / "last.pt", weights_only=True)["model"]
    assert any(".se.block." in k for k in state)  # the SE trunk is in the detector


# ---------------------------------------------------------------------------- bad input
def write(root, split, coco_dict):
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / split).mkdir(exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(
        coco_dict if isinstance(coco_dict, str) else json.dumps(coco_dict)
    )


def good():
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 50, 40], "iscrowd": 0}],
        "categories": [{"id": 3, "name": "cat"}],
    }


def test_bad_instances_files_fail_naming_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"no instances JSON at .*instances_train.json .*senet-detset"):
        coco.load_split(tmp_path, "train")
    write(tmp_path, "train", "{not json")
    with pytest.raises(ConfigError, match=r"instances_train.json is not valid JSON"):
        coco.load_split(tmp_path, "train")
    write(tmp_path, "train", {"images": []})
    with pytest.raises(ConfigError, match=r"is not a COCO instances file: no list annotations, categories"):
        coco.load_split(tmp_path, "train")
    bad = good()
    bad["annotations"][0]["bbox"] = [60, 10, 50, 40]  # x + w = 110 > 100
    write(tmp_path, "train", bad)
    with pytest.raises(ConfigError, match=r"annotation 1: bbox \[60, 10, 50, 40\] lies outside its image 'a.jpg'"):
        coco.load_split(tmp_path, "train")
    write(tmp_path, "train", good())
    with pytest.raises(ConfigError, match=r"data.num_classes=80 disagrees with .* which lists 1 categories"):
        coco.load_split(tmp_path, "train", num_classes=80)
    with pytest.raises(ConfigError, match=r"lists 1 images missing from .*train, e.g. 'a.jpg'"):
        coco.load_split(tmp_path, "train", num_classes=1)


@pytest.mark.parametrize(
    "args, match",
    [
        (["model=cifar_resnet20"], r"model=cifar_resnet20 has no stage ending at stride 8, 16, 32: the FPN needs four"),
        (["model=vgg16_bn"], r"task=detect needs a trunk of the stage frame .* vgg16_bn has none"),
        (["model=resnet18", "data=digits"], r"task=detect needs detection data \(data=coco or data=cifar_det\)"),
        (["model=resnet18", "detect.trainable_stages=6"], r"detect.trainable_stages=6 must be an integer from 0 to 5"),
        (
            ["model=resnet18", "data.num_classes=80"],
            r"data.num_classes=80 disagrees with .*_train.json, which lists 10",
        ),
    ],
)
def test_bad_detection_input_fails_before_any_work(det_set, tmp_path, clean_environ, args, match):
    """The job in this process (what it computes; the CLI's exit status is tests/test_cli.py's)."""
    with pytest.raises(ConfigError, match=match):
        run_job("task=detect", "data=cifar_det", f"data.root={det_set}", *args, cwd=tmp_path)
    assert not (tmp_path / "runs").exists() or not any(
        json.loads(p.read_text())["status"] == "completed" for p in (tmp_path / "runs").rglob("metrics.json")
    )
    assert not list(tmp_path.rglob("last.pt"))


def test_table7_preset_profiles_its_four_detectors(tmp_path):
    proc = run_cli("run.app", "-m", "experiment=paper/table7_coco", "task=profile", cwd=tmp_path)
    for label, ap, ap50 in (
        ("ResNet-50", 38.0, 57.9),
        ("SE-ResNet-50", 40.4, 61.0),
        ("ResNet-101", 39.9, 60.1),
        ("SE-ResNet-101", 41.9, 62.7),
    ):
        assert f"| {label} | {ap:.2f} | {ap50:.2f} | " in proc.stdout, label
    import pandas as pd

    t = pd.read_csv(tmp_path / "runs/paper/table7_coco/table.csv").set_index("row")
    # 81 classes: torchvision's 91-class detector (41,755,286) less 10 classes' box-head outputs (10 x 1,025 x 5)
    assert round(t.loc["resnet50", "params_m"] * 1e6) == 41_755_286 - 10 * 1025 * 5
    se_extra = (t.loc["se_resnet50", "params_m"] - t.loc["resnet50", "params_m"]) * 1e6
    assert round(se_extra) == 2_530_992  # SE-ResNet-50's blocks, as in the classifier (README, Complexity)
    assert (t["gflops"] > 100).all() and "800 x 800" in proc.stdout


@pytest.mark.slow
def test_detect_under_torchrun_keeps_the_replicas_identical_and_records_ap(det_set, tmp_path):
    """2 gloo processes, 2 images each of every global batch of 4: one record, identical replicas, AP."""
    from conftest import clean_env
    from test_scaleout import torchrun

    args = [*ARGS[:-2], "recipe.epochs=1", f"data.root={det_set}", "runs_dir=ddp", "device=cpu"]
    env = clean_env(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(torchrun(*args), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [run] = [p.parent for p in (tmp_path / "ddp").rglob("metrics.json")]
    rec = record(run)
    assert rec["status"] == "completed" and rec["world_size"] == 2 and rec["rank_param_spread"] == 0.0
    assert rec["epochs_done"] == 1 and 0 <= rec["ap"] <= 100


def test_trunk_takes_a_classifiers_weights_less_its_head(compose_cfg, det_set, tmp_path):
    """model.weights: a classifier's state dict (here 1,000 classes, as a published one) initialises the
    detector's trunk; its fc is left out, a trunk key it lacks is named before any work."""
    from senet_ablate.run.app import validate
    from senet_ablate.run.detect import build

    torch.manual_seed(1)
    classifier = build_model("resnet18", se_spec(True), 1000)
    torch.save(classifier.state_dict(), tmp_path / "cls.pt")
    cfg = compose_cfg(
        "task=detect",
        "data=cifar_det",
        f"data.root={det_set}",
        "model=resnet18",
        f"model.weights={tmp_path / 'cls.pt'}",
    )
    state = validate(cfg).weights  # checked and prepared before any work
    assert not [k for k in state if k.startswith("fc.")] and "stages.3.1.se.block.fc1.weight" in state
    model = build(cfg, 10, weights=state)
    ours = model.backbone.body.state_dict()
    assert torch.equal(
        ours["stages.3.1.se.block.fc1.weight"], classifier.state_dict()["stages.3.1.se.block.fc1.weight"]
    )
    assert torch.equal(ours["stem.0.1.running_var"], classifier.state_dict()["stem.0.1.running_var"])  # frozen BN
    plain = {k: v for k, v in classifier.state_dict().items() if ".se." not in k}
    torch.save(plain, tmp_path / "plain.pt")
    cfg = compose_cfg(
        "task=detect",
        "data=cifar_det",
        f"data.root={det_set}",
        "model=resnet18",
        f"model.weights={tmp_path / 'plain.pt'}",
    )
    with pytest.raises(ConfigError, match=r"does not fit this model: \d+ missing: stages.0.0.se.block"):
        validate(cfg)  # the trunk's weights are checked before any work
