"""Every paper preset composes, sweeps exactly its table rows, and reproduces the paper's
params/GFLOPs cells: GFLOPs to the printed digit for ResNet-50 (0.02 for ResNet-101/152),
params within 0.1M."""

import math

import pytest
from conftest import EXPERIMENTS, ROOT
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from senet_ablate.complexity import count
from senet_ablate.errors import ConfigError
from senet_ablate.run.app import validate

PAPER_PRESETS = {
    "paper/table10_reduction",
    "paper/table11_squeeze",
    "paper/table12_excitation",
    "paper/table13_stages",
    "paper/table14_integration",
    "paper/table15_se3x3",
    "paper/table16_nosqueeze",
    "paper/table2_imagenet",
    "paper/table3_mobile",
    "paper/table6_places365",
    "paper/table7_coco",
    "paper/table8_senet154",
    "paper/table4_cifar10",
    "paper/table5_cifar100",
}


def test_every_paper_table_has_a_preset():
    assert PAPER_PRESETS <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_preset_sweeps_its_table_rows(compose_cfg, experiment):
    cfg = compose_cfg(f"experiment={experiment}", hydra=True)
    rows = list(cfg.table.rows)
    assert cfg.study == experiment
    assert cfg.hydra.sweeper.params.row.split(",") == rows
    assert cfg.row in rows and cfg.table.baseline in rows
    for key, row in cfg.table.rows.items():
        assert row.label and row.set, key
        assert row.get("baseline", cfg.table.baseline) in rows


def _rows(experiment: str) -> dict:
    return OmegaConf.load(ROOT / "experiments" / f"{experiment}.yaml").table.rows


# Table 7's cells are AP, of trained detectors (its preset: tests/test_detect.py)
CELLS = [(e, r) for e in sorted(PAPER_PRESETS - {"paper/table7_coco"}) for r in _rows(e)]
# |ours - paper| allowed per column (backbones.md Sec. 1): Table 2 GFLOPs 0.02 (ResNet-50 to the printed
# digit), Table 3 3 MFLOPs and 0.1M params; ResNet-50 ablation params: the printed cell is ours rounded up.
TOLERANCE = {"gflops": 0.02, "mflops": 3.0, "params_m": 0.1}
# cells no counting convention reproduces, each with the reason (README "Backbones"); the test checks
# that they are indeed off, so this list cannot go stale
NOT_REPRODUCIBLE = {
    (
        "paper/table2_imagenet",
        "inception_resnet_v2",
        "gflops",
    ): "the TF-slim layout everyone uses counts 13.16 GMACs at the stated 299 px (backbones.md Sec. 5)",
    (
        "paper/table2_imagenet",
        "se_inception_resnet_v2",
        "gflops",
    ): "as the baseline; and 40 SE sites at 299 px cost +0.03 GFLOPs, not the printed +0.01",
}


@pytest.mark.parametrize("experiment, row", CELLS)
def test_preset_reproduces_paper_cells(compose_cfg, experiment, row):
    spec = _rows(experiment)[row]  # as the preset file states it (composition is checked above)
    cfg = compose_cfg(*spec.set, f"experiment={experiment}", f"row={row}", "task=profile")  # counted on the meta device
    ours = count(validate(cfg).module, cfg.model.input_size).as_dict()
    for col, tol in TOLERANCE.items():
        if col not in spec.paper:
            continue
        digits = {"gflops": 2, "mflops": 0, "params_m": 1}[col]  # the paper's printed digits, as the table's Δ
        delta = round(round(ours[col], digits) - spec.paper[col], digits)
        if (experiment, row, col) in NOT_REPRODUCIBLE:
            assert abs(delta) > tol, f"{row} {col} now reproduces: update NOT_REPRODUCIBLE and the README"
            continue
        assert abs(delta) <= tol + 1e-9, f"{row} {col}: ours {ours[col]:.4f} vs paper {spec.paper[col]}"
        if col == "gflops" and cfg.model.name == "resnet50":
            assert round(ours[col], 2) == pytest.approx(spec.paper[col])
        if col == "params_m" and cfg.model.name == "resnet50":
            # observed: every ResNet-50 params cell is the count with FC biases rounded *up* to 0.1M
            assert math.ceil(ours["params"] / 1e5) / 10 == pytest.approx(spec.paper[col])


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["se.squeeze=mean"], r"se.squeeze='mean' is not a valid choice; valid values: avg, max, none"),
        (["se.gate=swish"], r"se.gate='swish'.*valid values: sigmoid, tanh, relu, hard_sigmoid"),
        (["se.integration=inside"], r"se.integration='inside'.*valid values: standard, pre, post, identity"),
        (["se.reduction=0"], r"se.reduction=0 must be an integer >= 1"),
        (["model=resnet50", "se.reduction=257"], r"se.reduction=257 is too large for SE_2_1: it has C=256 channels"),
        (
            ["model=resnet50", "se.stages=[6]"],
            r"stage\(s\) \[6\] that this backbone lacks; its stage ids are \[2, 3, 4, 5\]",
        ),
        (["model=cifar_resnet20", "se.stages=[5]"], r"its stage ids are \[2, 3, 4\]"),
        (["task=fly"], r"task='fly' is not a task; valid values: profile, train"),
        (["recipe.epochs=0"], r"recipe.epochs=0 must be a positive integer"),
        (["recipe.epochs=-3"], r"recipe.epochs=-3 must be a positive integer"),
        (["recipe.schedule=linear"], r"recipe.schedule='linear'.*multistep, step, cosine, constant"),
        (["data.augment=mixup"], r"data.augment='mixup'.*none, flip, cifar, imagenet"),
        (["model.stride_style=tf"], r"model.stride_style='tf'.*caffe, pytorch"),
        (["+se.colour=red"], r"unknown key\(s\) under se: colour"),
    ],
)
def test_bad_config_fails_validation(compose_cfg, overrides, match):
    with pytest.raises(ConfigError, match=match):
        validate(compose_cfg(*overrides))


def test_unknown_model_is_a_hydra_group_error(compose_cfg):
    with pytest.raises(MissingConfigException, match="resnet99"):
        compose_cfg("model=resnet99")


PROXIES = sorted(e for e in EXPERIMENTS if e.startswith("proxy/table"))  # MBConv proxies: test_backbone_mbconv.py


def test_every_ablation_table_has_a_cifar_proxy():
    assert {p.replace("proxy/", "paper/") for p in PROXIES} == {
        f"paper/{t}"
        for t in (
            "table10_reduction",
            "table11_squeeze",
            "table12_excitation",
            "table13_stages",
            "table14_integration",
            "table15_se3x3",
            "table16_nosqueeze",
        )
    }


@pytest.mark.parametrize("experiment", PROXIES)
def test_every_proxy_row_builds_on_the_cifar_net(compose_cfg, experiment):
    """Each row of a proxy (the paper preset's rows, on SE-ResNet-56) passes config-time validation:
    no ImageNet-only stage id, no hidden width below 1; the ImageNet complexity cells are dropped."""
    table = compose_cfg(f"experiment={experiment}", "data.root=/nowhere").table
    for row, spec in table.rows.items():
        cfg = compose_cfg(*spec.set, f"experiment={experiment}", f"row={row}", "data.root=/nowhere")
        assert (cfg.model.name, cfg.data.name, cfg.recipe.epochs, cfg.study) == (
            "cifar_resnet56",
            "imagefolder",
            30,
            experiment,
        )
        validate(cfg)
        assert not {"params_m", "gflops"} & {k for k, v in (spec.paper or {}).items() if v is not None}, row
