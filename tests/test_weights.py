"""Published weights: timm / torchvision state dicts imported through ``model.weights`` give the
same logits as the library's own model (this proves the architecture, not only the counts); bad
weights fail before any work, naming the keys; ``task=eval`` equals evaluating timm directly."""

import json
import socket
import sys

import pytest
import torch
from conftest import run_cli, run_job

from senet_ablate import weights
from senet_ablate.errors import ConfigError
from senet_ablate.models import PORTS, build_model
from senet_ablate.run.app import make_model, validate
from senet_ablate.se import SESpec

timm = pytest.importorskip("timm")  # a test-only dependency (pyproject [test])


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter and BN statistic random, so that no tensor can be mapped wrongly unseen."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * (0.05 if t.dim() > 1 else 0.2))
    return model.eval()


def reference(source: str, **kwargs):
    """The library's model, built without its own initialisation (meta, then empty), then randomised."""
    lib, name = weights.library_of(source)
    with torch.device("meta"):
        if lib == "timm":
            model = timm.create_model(name, **kwargs)
        else:
            import torchvision

            model = torchvision.models.get_model(name, **kwargs)
    model = model.to_empty(device="cpu")
    assert {n for n, _ in model.named_buffers()} <= set(model.state_dict())  # randomise reaches every tensor
    return randomise(model)


def ported(source: str, ref: torch.nn.Module, num_classes: int = 1000):
    """Our model for ``source``, built with the layout options and SE its port needs."""
    port = PORTS[source]
    se = SESpec(**port.se) if port.se else None
    ours = build_model(port.model, se, num_classes, device="meta", **port.needs).to_empty(device="cpu")
    ours.load_state_dict(weights.prepare(ours, source, state=ref.state_dict()))
    return ours.eval()


TOL = 1e-5


def assert_same_logits(source: str, size: int, **kwargs):
    ref = reference(source, **kwargs)
    ours = ported(source, ref, kwargs.get("num_classes", 1000))
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs, mine = ref(x), ours(x)
    # float32, the same operations up to summation order: 1e-5 of the logit scale. Measured: a right port is
    # off by ~2e-7 of it, while the Caffe stem pool swapped for PyTorch's is off by ~2e-5 (next test)
    torch.testing.assert_close(mine, theirs, rtol=0, atol=TOL * theirs.abs().max().item())
    assert theirs.std() > 0


# every ResNet-family port (the other backbones' ports: tests/test_backbone_*.py)
FAMILY = [k for k, p in PORTS.items() if p.model.startswith(("resnet", "resnext", "senet"))]
DEEP = ("101", "152", "senet154")


@pytest.mark.parametrize(
    "source", [pytest.param(s, marks=pytest.mark.slow) if s.endswith(DEEP) or "101_" in s else s for s in FAMILY]
)
def test_resnet_family_logits_equal_the_library_model(source):
    assert_same_logits(source, 96)  # 96 px: the stem pools (ceil vs pad) already differ in their windows


def test_every_port_has_a_logits_test():
    others = {"timm:vgg16_bn", "torchvision:vgg16_bn", "timm:mobilenetv1_100", "timm:inception_resnet_v2"}
    mbconv = {k for k, p in PORTS.items() if p.model.startswith(("mobilenet_v2", "mobilenet_v3", "efficientnet"))}
    assert len(mbconv) == 14  # tests/test_backbone_mbconv.py
    assert set(PORTS) == set(FAMILY) | others | mbconv


def test_a_port_with_the_wrong_stem_pool_gives_other_logits():
    """The fidelity detail counts cannot see: the Caffe stem pool (ceil mode, no padding)."""
    ref = reference("timm:legacy_seresnet50")
    ours = build_model("resnet50", SESpec(), 1000, "meta", stride_style="caffe", stem_pool="pad").to_empty(device="cpu")
    ours.load_state_dict(weights.prepare(ours, "timm:legacy_seresnet50", state=ref.state_dict()))
    ours.eval()
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = ref(x)
        assert (ours(x) - theirs).abs().max() > TOL * theirs.abs().max()


def test_every_port_names_a_backbone_and_fits_it():
    from senet_ablate.models import MODELS, options_of

    for source, port in PORTS.items():
        assert port.model in MODELS, source
        assert set(port.needs) <= set(options_of(port.model)), source


# ---------------------------------------------------------------------------- bad weights
def _save(tmp_path, model, name="w.pth"):
    path = tmp_path / name
    torch.save(model.state_dict(), path)
    return str(path)


def test_weights_of_another_backbone_name_missing_unexpected_and_misshaped_keys(compose_cfg, tmp_path):
    other = _save(tmp_path, build_model("resnet18", None, 1000))
    cfg = compose_cfg(
        "model=resnet50", "se.stages=[]", "task=profile", "model.num_classes=1000", f"model.weights={other}"
    )
    with pytest.raises(ConfigError) as e:
        validate(cfg)  # the job's model is built and its weights checked before any work
    msg = str(e.value)
    assert "missing: stages.0.0.conv3.0.weight" in msg
    assert "mis-shaped (theirs vs ours): stages.0.0.conv1.0.weight (64, 64, 3, 3) vs (64, 64, 1, 1)" in msg
    assert "24 mis-shaped" in msg and "(+18 more)" in msg  # the first six are named, the rest counted


def test_weights_of_another_size_name_the_extra_blocks(compose_cfg, tmp_path):
    deeper = _save(tmp_path, build_model("resnet101", None, 10, device="meta").to_empty(device="cpu"))
    cfg = compose_cfg(
        "model=resnet50", "se.stages=[]", "task=profile", "model.num_classes=10", f"model.weights={deeper}"
    )
    with pytest.raises(ConfigError, match=r"unexpected: stages\.2\.6\.conv1\.0\.weight"):
        validate(cfg)  # the job's model is built and its weights checked before any work


def test_our_own_checkpoint_loads_and_gives_the_same_model(compose_cfg, tmp_path):
    src = build_model("cifar_resnet20", SESpec(), 10).eval()
    path = tmp_path / "last.pt"
    torch.save({"model": src.state_dict(), "epoch": 3}, path)
    cfg = compose_cfg("task=profile", f"model.weights={path}")
    model = make_model(cfg, state=validate(cfg).weights).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), src(x))


@pytest.mark.parametrize(
    "overrides, match",
    [
        (
            ["model=resnet50", "model.weights=timm:legacy_seresnet50", "model.stem_pool=pad"],
            r"timm:legacy_seresnet50 was trained with a different layout; add: model.stem_pool=ceil",
        ),
        (
            ["model=resnet50", "model.weights=timm:resnet50", "model.stride_style=caffe"],
            r"add: model.stride_style=pytorch model.stem_pool=pad se.stages=\[\]",
        ),
        (["model=resnet101", "model.weights=timm:legacy_seresnet50"], r"add: model=resnet50"),
        (["model=resnet50", "model.weights=timm:legacy_seresnet50", "se.gate=tanh"], r"add: se.gate=sigmoid"),
        (["model=resnet50", "model.weights=timm:convnext_tiny"], r"timm:convnext_tiny' has no key map; valid timm"),
        (["model=resnet50", "model.weights=/nowhere/w.pth"], r"model.weights='/nowhere/w.pth': no such file"),
    ],
)
def test_unfit_weights_fail_before_any_work(compose_cfg, overrides, match):
    cfg = compose_cfg(*overrides, "task=profile", "model.num_classes=1000")
    with pytest.raises(ConfigError, match=match):
        validate(cfg)  # the job's model is built and its weights checked before any work


def test_timm_source_without_timm_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(ConfigError, match=r"needs the timm package: pip install timm .*model.weights_file"):
        weights.source_state("timm:legacy_seresnet50")


def test_timm_source_offline_says_which_file_to_pass(monkeypatch, tmp_path):
    def no_network(*a, **k):
        raise OSError("network unreachable (blocked by the test)")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    # no cached copy: timm fetches this one by URL into torch.hub's dir; hub files go to huggingface_hub's cache,
    # which it read from HF_HOME / HF_HUB_CACHE when imported (a caller's cache would hold them)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(
        ConfigError,
        match=r"could not fetch the timm:legacy_seresnet50 weights .*"
        r"torch.save\(timm.create_model\('legacy_seresnet50', pretrained=True\)"
        r".*model.weights_file=legacy_seresnet50.pth",
    ):
        weights.source_state("timm:legacy_seresnet50")


def test_bad_weights_on_the_command_line_exit_1_without_a_completed_record(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_text("not a checkpoint")
    proc = run_cli("run.app", "task=profile", f"model.weights={bad}", "runs_dir=runs", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "is not a readable torch state dict" in proc.stderr
    recs = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("metrics.json")]
    assert recs and all(r["status"] == "failed" for r in recs)


# ---------------------------------------------------------------------------- task=eval
@pytest.mark.slow
def test_eval_task_equals_evaluating_timm_directly(cifar_jpeg, tmp_path):
    """SE-ResNet-50 (timm legacy_seresnet50, random weights with a 10-class head) on the real
    CIFAR-10 JPEG test images: our task=eval with the weights' own preprocessing gives the same
    top-1/top-5 as timm's model with timm's own eval transform."""
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    ref = reference("timm:legacy_seresnet50", num_classes=10)
    path = _save(tmp_path, ref, "legacy_seresnet50.pth")
    transform = create_transform(**resolve_data_config({}, model=ref))
    classes = sorted(p.name for p in (cifar_jpeg / "test").iterdir())
    wrong1 = wrong5 = n = 0
    with torch.no_grad():
        for label, c in enumerate(classes):
            for f in sorted((cifar_jpeg / "test" / c).iterdir()):
                logits = ref(transform(Image.open(f).convert("RGB"))[None])
                top = logits.topk(5).indices[0].tolist()
                wrong1, wrong5, n = wrong1 + (top[0] != label), wrong5 + (label not in top), n + 1
    run_job(
        "task=eval",
        "model=resnet50",
        "model.weights=timm:legacy_seresnet50",
        f"model.weights_file={path}",
        "data=imagefolder",
        f"data.root={cifar_jpeg}",
        "data.workers=0",
        "runs_dir=runs",
        "device=cpu",
        cwd=tmp_path,
    )
    rec = json.loads(next((tmp_path / "runs").rglob("metrics.json")).read_text())
    assert rec["status"] == "completed" and rec["eval_images"] == n == 50
    assert rec["preprocess"]["resize"] == 256 and rec["preprocess"]["interpolation"] == "bilinear"
    assert rec["top1_err"] == pytest.approx(100 * wrong1 / n) and rec["top5_err"] == pytest.approx(100 * wrong5 / n)
    assert 0 < rec["top1_err"] < 100  # random weights, but not a degenerate comparison


@pytest.mark.slow
def test_excitation_of_published_weights(cifar_jpeg, tmp_path):
    """Figs. 6/7 from ``model.weights`` instead of a training run: the ported SE-ResNet-50 is analysed
    on real images with the weights' own preprocessing, and its record and figures are written."""
    ref = reference("timm:legacy_seresnet50", num_classes=10)
    path = _save(tmp_path, ref, "legacy_seresnet50.pth")
    run_job(
        "task=excitation",
        "model=resnet50",
        "model.weights=timm:legacy_seresnet50",
        f"model.weights_file={path}",
        "data=imagefolder",
        f"data.root={cifar_jpeg}",
        "data.workers=0",
        "excitation.classes=[0,1]",
        "excitation.per_class=3",
        "runs_dir=runs",
        "device=cpu",
        cwd=tmp_path,
    )
    out = next((tmp_path / "runs").rglob("metrics.json")).parent
    rec = json.loads((out / "metrics.json").read_text())
    assert rec["status"] == "completed" and rec["analysed_run"] == "timm:legacy_seresnet50"
    assert rec["excitation_blocks"][-1] == "SE_5_3" and rec["images_per_class"] == {"0": 3, "1": 3}
    assert list(out.glob("*.png"))
