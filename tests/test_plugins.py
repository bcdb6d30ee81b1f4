"""Your own attention module as a point of the space (``se.module``): placed at every
site the integration and stages choose, counted exactly, fingerprinted, labelled, and rejected at
config time with a clear message when it cannot work."""

import pytest
import torch
from conftest import ROOT, history, record, run_cli, run_job, user_package, write_files

from senet_ablate.complexity import count
from senet_ablate.errors import ConfigError
from senet_ablate.models import build_model
from senet_ablate.se import PluggedAttention, SESpec

# beside the docs' ChannelGate (k weights, 2 elementwise ops per element): modules that report no ops or cannot work
GATES = """
from torch import nn

from my_gates import ChannelGate


class Silent(ChannelGate):
    elementwise_ops = None  # reports no elementwise ops


class Squash(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.fc = nn.Linear(channels, channels // 2)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


class NoChannels(nn.Module):  # takes no channel count
    def __init__(self):
        super().__init__()
"""

# ResNet-50's 16 bottleneck units and their output widths (the SE sites of the standard integration)
R50_UNITS = [(3, 256), (4, 512), (6, 1024), (3, 2048)]
R50_PARAMS, R50_MACS = 25_557_032, 3_857_973_248  # torchvision / the paper (test_complexity.py)


@pytest.fixture
def gates(tmp_path, monkeypatch):
    write_files(tmp_path, {**user_package(), "user_gates.py": GATES})
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def spec(target: str, **kwargs) -> SESpec:
    return SESpec.from_config({"module": {"_target_": f"user_gates.{target}", **kwargs}})


def test_module_at_every_site_counted_exactly(gates):
    k = 5
    model = build_model("resnet50", spec("ChannelGate", k=k), 1000, device="meta")
    blocks = [m for m in model.modules() if isinstance(m, PluggedAttention)]
    assert [b.name for b in blocks][:4] == ["SE_2_1", "SE_2_2", "SE_2_3", "SE_3_1"] and len(blocks) == 16
    c = count(model, 224)
    assert c.params == R50_PARAMS + 16 * k  # k conv weights per unit
    assert c.macs == R50_MACS + k * sum(n * ch for n, ch in R50_UNITS)  # k MACs per channel per unit
    # its own count: 2 ops per element of each unit's output map (56, 28, 14, 7 px)
    assert c.elementwise_ops == sum(2 * n * ch * s * s for (n, ch), s in zip(R50_UNITS, (56, 28, 14, 7)))
    assert c.unreported_blocks == 0 and "unreported_blocks" not in c.as_dict()
    silent = count(build_model("resnet50", spec("Silent"), 1000, device="meta"), 224)
    assert silent.elementwise_ops == 0 and silent.unreported_blocks == 16


@pytest.mark.parametrize("integration, stages", [("pre", "all"), ("post", [3, 4]), ("identity", [2])])
def test_module_follows_integration_and_stages(gates, integration, stages):
    s = SESpec.from_config(
        {"module": {"_target_": "user_gates.ChannelGate"}, "integration": integration, "stages": stages}
    )
    model = build_model("cifar_resnet20", s, 10).eval()
    sites = [m for m in model.modules() if hasattr(m, "site") and getattr(m, "block", None) is not None]
    assert {m.block.stage for m in sites} == ({2, 3, 4} if stages == "all" else set(stages))
    assert all(isinstance(m.block, PluggedAttention) for m in sites)
    out = model(torch.randn(2, 3, 32, 32))
    out.sum().backward()
    assert all(m.block.module.conv.weight.grad is not None for m in sites)


@pytest.mark.parametrize(
    "node, extra, match",
    [
        ({"_target_": "user_gates.Nope"}, {}, r"se.module._target_='user_gates.Nope' cannot be imported"),
        ({"_target_": "no_such_pkg.Gate"}, {}, r"No module named 'no_such_pkg'.*installed"),
        ({"_target_": "user_gates.NoChannels"}, {}, r"first positional argument of an attention module"),
        ({"_target_": "user_gates.ChannelGate", "q": 1}, {}, r"unexpected keyword argument 'q'"),
        ({"_target_": "user_gates.Squash"}, {}, r"turns a \(2, 16, 7, 7\) map into \(2, 8\)"),
        ({"_target_": "user_gates.ChannelGate"}, {"reduction": 8}, r"se.reduction=8 does not apply to se.module"),
        ({"k": 3}, {}, r"se.module=.* must be a node with a _target_"),
    ],
)
def test_bad_modules_fail_at_build_naming_the_key(gates, node, extra, match):
    with pytest.raises(ConfigError, match=match):
        build_model("cifar_resnet20", SESpec.from_config({"module": node, **extra}), 10, device="meta")


def test_cli_profile_labels_fingerprints_and_records_failures(gates, tmp_path):
    env = {"PYTHONPATH": str(gates)}
    good, bad = "{_target_: user_gates.ChannelGate, k: 3}", "{_target_: user_gates.Squash}"
    args = ["-m", "task=profile", "model=cifar_resnet20", f"se.module={good},{bad}", "runs_dir=runs"]
    out = run_cli("run.app", *args, cwd=tmp_path, env=env, check=False)
    assert out.returncode != 0  # one job failed
    assert "| se.module=ChannelGate(k=3) | 0.270 |" in out.stdout
    sweep = tmp_path / "runs" / "adhoc"
    recs = {r["status"]: r for r in (record(d) for d in sweep.iterdir() if (d / "metrics.json").exists())}
    assert recs["completed"]["params"] == 269_722 + 9 * 3  # plain ResNet-20 (test_complexity) + 9 units x k
    assert recs["failed"]["reason"].startswith("se.module user_gates.Squash at SE_2_1 turns")
    again = run_cli("run.app", *args, cwd=tmp_path, env=env, check=False)  # the same sweep again
    assert "skipping" in again.stderr + again.stdout and "already completed" in again.stderr + again.stdout
    assert len(list(sweep.glob("*/metrics.json"))) == 2  # no new run dir: the module's node names the same dir


@pytest.fixture
def user_code(tmp_path, monkeypatch):
    """The user package of docs/bring-your-own.md (attention module, two-stage backbone, dataset), on sys.path."""
    write_files(tmp_path, user_package())
    (tmp_path / "bad_data.py").write_text(
        "import torch\n\n\ndef no_count(root=None):\n"
        "    x, y = torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64)\n"
        "    return {'train': (x, y), 'test': (x, y)}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("integration", ["standard", "post"])
def test_users_backbone_takes_every_integration_its_units_offer(user_code, integration):
    s = SESpec.from_config({"integration": integration, "stages": [3], "reduction": 4})
    model = build_model("my_nets.two_stages", s, 3, width=8)
    blocks = [m for m in model.modules() if hasattr(m, "stage") and hasattr(m, "gate_values")]
    assert [(b.name, b.stage) for b in blocks] == [("SE_3_1", 3)]
    assert model(torch.randn(2, 3, 12, 12)).shape == (2, 3)
    with pytest.raises(ConfigError, match=r"se.integration='pre' is not available on my_nets.two_stages"):
        build_model("my_nets.two_stages", SESpec(integration="pre"), 3)
    with pytest.raises(ConfigError, match=r"model.depth is not an option of my_nets.two_stages; its options: width"):
        build_model("my_nets.two_stages", None, 3, depth=2)
    with pytest.raises(ConfigError, match=r"model._target_='my_nets.nope' cannot be imported"):
        build_model("my_nets.nope", None, 3)


def test_users_dataset_feeds_the_loaders_and_a_missing_class_count_fails(user_code):
    from omegaconf import OmegaConf

    from senet_ablate import data

    cfg = OmegaConf.load(ROOT / "conf/data/custom.yaml")
    cfg._target_, cfg.image_size, cfg.augment = "my_data.blobs", 12, "cifar"
    d = data.build(cfg, 32, 64, torch.device("cpu"), seed=0, rank=1, world=2)
    assert (d.num_classes, d.image_size, d.train.num_samples) == (3, 12, 128)
    x, y = next(iter(d.train))
    assert x.shape == (16, 3, 12, 12) and y.dtype == torch.int64  # rank 1 of 2: half of each global batch of 32
    cfg._target_ = "bad_data.no_count"
    with pytest.raises(ConfigError, match=r"gave no class count: return \{'num_classes': K, ...\} or set data.num_c"):
        data.build(cfg, 32, 64, torch.device("cpu"), seed=0)
    cfg._target_ = "bad_data.missing"
    with pytest.raises(ConfigError, match=r"data._target_='bad_data.missing' cannot be imported"):
        data.build(cfg, 32, 64, torch.device("cpu"), seed=0)


def test_cli_dataset_without_class_count_leaves_a_failed_record(user_code, tmp_path):
    out = run_cli(
        "run.app",
        "task=train",
        "data=custom",
        "data._target_=bad_data.no_count",
        "data.image_size=8",
        "model=custom",
        "model._target_=my_nets.two_stages",
        "se.stages=[]",
        "runs_dir=runs",
        cwd=tmp_path,
        env={"PYTHONPATH": str(user_code)},
        check=False,
    )
    assert out.returncode != 0 and "gave no class count" in out.stderr
    [rec] = [record(d.parent) for d in (tmp_path / "runs").rglob("metrics.json")]
    assert rec["status"] == "failed" and "gave no class count" in rec["reason"]


def test_users_dataset_same_seed_same_metrics(user_code, tmp_path):
    """A seed determines a result on the data=custom path too: two runs of the same config and seed
    (in two run dirs) give the same history; another seed gives another."""
    args = [
        "task=train",
        "model=custom",
        "model._target_=my_nets.two_stages",
        "data=custom",
        "data._target_=my_data.blobs",
        "data.image_size=12",
        "data.augment=cifar",
        "se.reduction=4",
        "recipe=quick",
        "recipe.epochs=2",
    ]
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):  # in this process: user_code is on sys.path
        run_job(*args, f"seed={seed}", f"runs_dir={name}", cwd=tmp_path)
        [done] = list((tmp_path / name).rglob("history.csv"))
        runs[name] = [
            {k: v for k, v in h.items() if "time" not in k and k != "images_per_s"} for h in history(done.parent)
        ]
    assert runs["a"] == runs["b"] and len(runs["a"]) == 2
    assert runs["a"] != runs["c"]
