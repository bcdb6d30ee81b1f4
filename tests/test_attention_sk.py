"""Selective Kernel units (SKNet, CVPR 2019): a layout option of the ResNet family (model.sk), equal to timm's
SelectiveKernel with copied weights; SKNet-50's and PytorchInsight's SK-ResNet-50 params by arithmetic
beside their published figures; SK composes with the SE axes on every family that offers it; bad values
fail at build naming the key."""

import pytest
import torch
from omegaconf import OmegaConf
from test_attention import copy_in_order, randomise
from test_attention_modules import assert_close, x_of

from senet_ablate.complexity import count
from senet_ablate.errors import ConfigError
from senet_ablate.models import build_model
from senet_ablate.models.sk import SK_PAPER, SKConv, SKSpec
from senet_ablate.se import ChannelAttention, SESpec

PAPER = SKSpec.from_option({})  # SK[M=2, G=32, r=16], L = 32
INSIGHT = {"paths": [[1, 1], [32, 1]], "min_hidden": 0}  # PytorchInsight's SK-ResNet50*
TORCHVISION = {"stride_style": "pytorch", "stem_pool": "pad"}


@pytest.mark.parametrize("channels, stride", [(64, 1), (128, 2), (1024, 1)])
def test_sk_conv_equals_timm_selective_kernel(channels, stride):
    pytest.importorskip("timm")
    from timm.layers.selective_kernel import SelectiveKernel

    # timm's 5x5 path with keep_3x3 is a 3x3 at dilation 2; split_input=False: every path sees the whole input
    ref = SelectiveKernel(
        channels,
        channels,
        kernel_size=[3, 5],
        stride=stride,
        groups=32,
        keep_3x3=True,
        split_input=False,
        rd_channels=max(channels // 16, 32),
    )
    ours = SKConv(channels, channels, stride, PAPER)
    randomise(ref)
    copy_in_order(ref, ours.eval())
    x = x_of(channels, size=10, n=3)
    with torch.no_grad():
        assert_close(ref(x), ours(x), 9 * channels // 32)


def test_pytorchinsight_sk_resnet50_params_by_arithmetic():
    """Their Bottleneck: the 3x3 (dense) + a 3x3 with 32 groups, each + BN; fc to planes // 16 without bias,
    BN; fc to 2 x planes without bias. 26.15M in their README."""
    plain = count(build_model("resnet50", None, 1000, device="meta", **TORCHVISION), 224)
    sk = count(build_model("resnet50", None, 1000, device="meta", sk=INSIGHT, **TORCHVISION), 224)
    units = [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3  # planes of every bottleneck
    extra = sum(9 * p * p // 32 + 2 * p + p * (p // 16) + 2 * (p // 16) + (p // 16) * 2 * p for p in units)
    assert sk.params - plain.params == extra == 597_464
    assert round(sk.params / 1e6, 2) == 26.15
    # elementwise: the paths' sum, pooling, the rescale of 2 paths and their weighted sum on each 3x3 output
    maps = [(64, 56)] * 3 + [(128, 28)] * 4 + [(256, 14)] * 6 + [(512, 7)] * 3
    assert sk.elementwise_ops == sum(5 * c * s * s for c, s in maps)


def test_sknet50_is_resnext50_with_sk_and_has_its_papers_params():
    """SKNet Table 2: SKNet-50 27.5M params, 4.47 GFLOPs (ResNeXt-50 25.0M, 4.24)."""
    sknet = count(build_model("resnext50_32x4d", None, 1000, device="meta", sk=SK_PAPER, **TORCHVISION), 224)
    assert round(sknet.params / 1e6, 1) == 27.5
    assert round(sknet.macs / 1e9, 2) == 4.46  # + 0.014 G of the paper-convention elementwise ops


FAMILIES = {  # the ResNet family's units: bottleneck (ResNet, ResNeXt) and basic (ImageNet, CIFAR)
    "resnet50": (64, SK_PAPER),
    "resnext50_32x4d": (64, SK_PAPER),
    "resnet18": (64, INSIGHT),
    "cifar_resnet20": (32, {"paths": [[1, 1], [8, 2]], "reduction": 4, "min_hidden": 0}),
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_sk_composes_with_se_at_every_integration(name):
    size, sk = FAMILIES[name]
    for integration in ("standard", "pre", "post", "identity"):
        torch.manual_seed(0)
        se = SESpec(integration=integration, reduction=4, min_hidden=1)
        model = build_model(name, se, 5, sk=sk)
        model(torch.randn(2, 3, size, size)).logsumexp(1).sum().backward()
        sks = [m for m in model.modules() if isinstance(m, SKConv)]
        assert len(sks) == sum(len(s) for s in model.stages)  # one SK conv a unit
        attention = [m for m in model.modules() if isinstance(m, ChannelAttention)]
        assert attention, integration
        for m in sks + attention:
            assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_attention_sk_composes_on_the_command_line(compose_cfg):
    from senet_ablate.run.assemble import make_model

    cfg = compose_cfg("model=resnet50", "attention=sk", "data=imagenet")
    model = make_model(cfg, device="meta")
    assert SKSpec.from_option(OmegaConf.to_container(cfg.model.sk)) == PAPER and cfg.se.stages == []
    assert not [m for m in model.modules() if isinstance(m, ChannelAttention)]
    both = make_model(compose_cfg("model=resnet50", "attention=sk", "se.stages=all", "data=imagenet"), device="meta")
    assert len([m for m in both.modules() if isinstance(m, ChannelAttention)]) == 16  # SK + SE in every unit


@pytest.mark.parametrize(
    "name, sk, match",
    [
        ("resnet50", {"paths": [[32]]}, r"model.sk.paths=\[\[32\]\] must list two or more \[groups, dilation\]"),
        ("resnet50", {"paths": [[1, 1]]}, r"model.sk.paths=.* must list two or more"),
        ("resnet50", {"reduction": 0}, r"model.sk.reduction=0 must be an integer >= 1"),
        ("resnet50", {"kernel": 5}, r"model.sk=.* must be null or a mapping of the keys paths, reduction, min_hidden"),
        ("cifar_resnet20", SK_PAPER, r"model.sk.paths: 32 groups do not divide a 16 -> 16 channel 3x3 conv"),
        ("mobilenet_v2", SK_PAPER, r"model.sk is not an option of mobilenet_v2; its options: "),
    ],
)
def test_bad_sk_values_name_the_key(name, sk, match):
    with pytest.raises(ConfigError, match=match):
        build_model(name, None, 10, device="meta", sk=sk)


def test_bad_sk_value_fails_before_any_work(tmp_path):
    from conftest import run_cli

    proc = run_cli("run.app", "attention=sk", "model=cifar_resnet20", f"runs_dir={tmp_path}", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "model.sk.paths: 32 groups do not divide a 16 -> 16 channel 3x3 conv" in proc.stderr + proc.stdout
    assert not [p for p in tmp_path.rglob("metrics.json") if '"done"' in p.read_text()]


# ---------------------------------------------------------------------------- PytorchInsight's table
def test_pytorchinsight_preset_prints_their_columns_beside_ours(tmp_path):
    """Every row's params within 0.01M of their README's (printed to their 2 decimals); GFLOPs beside theirs."""
    import pandas as pd
    from conftest import run_cli

    proc = run_cli("run.app", "-m", "experiment=attention/pytorchinsight_resnet50", "task=profile", cwd=tmp_path)
    for label, params in (("ResNet-50", 25.56), ("SE", 28.09), ("SK", 26.15), ("BAM", 25.92), ("CBAM", 28.09)):
        assert f"| {label} | " in proc.stdout and f" | {params:.2f} | 0.00 | " in proc.stdout, label
    assert "| 4.185 |" in proc.stdout and "implus/PytorchInsight README" in proc.stdout
    t = pd.read_csv(tmp_path / "runs/attention/pytorchinsight_resnet50/table.csv").set_index("row")
    assert list(t.index) == ["resnet50", "se", "sk", "bam", "cbam", "sge"]
    assert ((t["params_m"] - t["params_m_paper"]).abs() < 0.005 + 1e-9).all()
    assert (t["completed"] == 1).all() and t["top1_err_paper"].notna().all()


def test_table_paper_digits_rejects_an_unknown_column():
    from senet_ablate.study.tables import paper_digits

    assert paper_digits({"paper_digits": {"params_m": 2}}) == {"params_m": 2, "gflops": 2, "mflops": 0}
    with pytest.raises(ValueError, match=r"table.paper_digits.top1: valid keys: params_m, gflops, mflops"):
        paper_digits({"paper_digits": {"top1": 2}})
