"""The Python API: timm-style create_model / list_models / profile, with torch alone,
giving what the command line gives. README_EXAMPLE is the example of docs/python-api.md, run here verbatim."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import CONF, ROOT, clean_env, record, run_job, se_yaml

import senet_ablate
from senet_ablate.api import native_size
from senet_ablate.errors import ConfigError
from senet_ablate.se import SESpec

README_EXAMPLE = """\
import senet_ablate

print(senet_ablate.list_models("resnet*"))  # ['resnet101', 'resnet152', 'resnet18', 'resnet34', 'resnet50']
# SE-ResNet-50 with a max squeeze and r = 8 (Tables 10, 11); the CLI's se.squeeze=max se.reduction=8
model = senet_ablate.create_model("resnet50", se={"squeeze": "max", "reduction": 8})
cost = senet_ablate.profile(model, 224)  # params, macs, elementwise_ops, gflops: what task=profile records
print(f"{cost['params'] / 1e6:.3f}M params, {cost['gflops']:.2f} GFLOPs")  # 30.604M params, 3.87 GFLOPs
"""

BLOCKED = """
import sys
for name in ("hydra", "omegaconf"):
    sys.modules[name] = None  # any import of them now fails
"""


def test_readme_example_runs_with_hydra_blocked_and_matches_the_cli(tmp_path):
    code = BLOCKED + "import json\n" + README_EXAMPLE + "print(json.dumps(cost))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    models, line, api = out.stdout.splitlines()
    assert models == "['resnet101', 'resnet152', 'resnet18', 'resnet34', 'resnet50']"
    assert line == "30.604M params, 3.87 GFLOPs"
    api = json.loads(api)

    runs = tmp_path / "runs"
    args = ("task=profile", "model=resnet50", "se.squeeze=max", "se.reduction=8", f"runs_dir={runs}")
    run_job(*args, cwd=tmp_path)
    [metrics] = runs.rglob("metrics.json")
    cli = record(metrics.parent)
    assert {k: cli[k] for k in ("params", "macs", "elementwise_ops", "gflops")} == {
        k: api[k] for k in ("params", "macs", "elementwise_ops", "gflops")
    }


def test_readme_shows_the_tested_example():
    readme = (ROOT / "docs/python-api.md").read_text()
    assert f"```python\n{README_EXAMPLE}```" in readme


def test_the_package_stays_light_until_the_api_is_used():
    code = (
        "import sys, senet_ablate, senet_ablate.records.keys\n"
        "print('torch' in sys.modules)\n"
        "senet_ablate.list_models()\n"
        "print('torch' in sys.modules, 'hydra' in sys.modules, 'omegaconf' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "False", "False"]


def test_profile_by_name_equals_profile_of_the_module():
    by_name = senet_ablate.profile("resnet50", se=True)
    assert by_name == senet_ablate.profile(senet_ablate.create_model("resnet50", se=True, device="meta"), 224)
    assert (by_name["params"], round(by_name["gflops"], 2)) == (28_088_024, 3.87)  # the paper's SE-ResNet-50
    assert set(senet_ablate.__all__) <= set(dir(senet_ablate))


def test_list_models():
    names = senet_ablate.list_models("resnet*")
    assert "resnet50" in names and "vgg16_bn" not in names and names == sorted(names)
    assert len(senet_ablate.list_models()) == len(set(senet_ablate.list_models())) > len(names)


def test_se_true_is_the_papers_block_of_conf_se():
    assert SESpec.from_config(se_yaml()) == SESpec()
    assert senet_ablate.api.se_spec(True) == SESpec()
    assert senet_ablate.api.se_spec({"stages": []}) is None and senet_ablate.api.se_spec(False) is None
    assert senet_ablate.api.se_spec({"squeeze": "max"}) == SESpec(squeeze="max")


def test_parameter_counts():
    params = lambda m: sum(p.numel() for p in m.parameters())
    assert params(senet_ablate.create_model("resnet50", se=True, device="meta")) == 28_088_024
    assert params(senet_ablate.create_model("resnet50", device="meta")) == 25_557_032
    assert params(senet_ablate.create_model("resnet50", se={"stages": []}, device="meta")) == 25_557_032
    assert params(senet_ablate.create_model("resnet50", se=SESpec(bias=False), device="meta")) == 28_071_976


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"name": "resnet51"}, "model.name='resnet51' is not a known backbone; valid values: resnet18"),
        ({"name": "resnet50", "foo": 1}, "model.foo is not an option of resnet50; its options:"),
        ({"name": "resnet50", "se": {"squeez": "max"}}, "unknown key(s) under se: squeez; valid keys:"),
        ({"name": "resnet50", "se": {"reduction": 0}}, "se.reduction=0 must be an integer >= 1"),
        ({"name": "resnet50", "se": {"squeeze": "mean"}}, "se.squeeze='mean' is not a valid choice"),
        ({"name": "resnet50", "weights": "timm:seresnet50"}, "was trained with a different layout; add:"),
    ],
)
def test_bad_input_gives_the_clis_config_error(kwargs, fragment):
    with pytest.raises(ConfigError) as e:
        senet_ablate.create_model(**kwargs, device="meta")
    assert fragment in str(e.value)


def test_weights_from_a_state_dict_file(tmp_path):
    source = senet_ablate.create_model("resnet18", num_classes=10)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = senet_ablate.create_model("resnet18", num_classes=10, weights=str(path))
    theirs = source.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in model.state_dict().items())
    with pytest.raises(ConfigError, match="does not fit this model: 32 missing"):
        senet_ablate.create_model("resnet18", se=True, num_classes=10, weights=str(path))


def test_one_registry_entry_gives_the_api_and_the_configs_a_backbones_native_input(compose_cfg):
    """models.MODELS is the one place a backbone's native input lives: the API's native_size and every
    conf/model/*.yaml's model.native read it (the CIFAR ResNets, the quick look's backbone, count at
    the data's size and have none)."""
    from senet_ablate.models import MODELS

    names = sorted(p.stem for p in (CONF / "model").glob("*.yaml") if p.stem != "custom")
    assert names == sorted(MODELS)
    for name in names:
        entry, native = MODELS[name], compose_cfg(f"model={name}").model.get("native")
        assert native_size(name) == entry.image_size
        if name.startswith("cifar_resnet"):
            assert native is None and entry.image_size == 32
        else:
            assert (native.image_size, native.num_classes) == (entry.image_size, entry.num_classes), name
    assert (MODELS["efficientnet_b3"].image_size, MODELS["shake_even29_2x4x64d"].num_classes) == (300, 100)
