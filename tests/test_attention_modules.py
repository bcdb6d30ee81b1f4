"""Coordinate Attention, SimAM, SGE, Triplet attention and BAM as points of the ablation space: CA
equals timm's CoordAttn with copied weights; SimAM, SGE and Triplet equal direct implementations of their
papers' equations (written out here, independent of our frame); params on ResNet-50 by arithmetic; every
module runs forward and backward on every backbone family at every integration it offers; bad values
fail at config time naming the key."""

import functools

import pytest
import torch
from conftest import borrow_backbone, f32_tol
from test_attention import copy_in_order, preset, randomise
from test_models import plain_weights
from torch import nn

from senet_ablate.complexity import count
from senet_ablate.errors import ConfigError
from senet_ablate.models import build_model
from senet_ablate.se import ChannelAttention, Frame, SESpec, build_block

NEW = ["coord", "simam", "sge", "triplet"]  # unit-level; BAM (between stages) below


def x_of(channels=64, size=9, n=4):
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(1))


def assert_close(a, b, n):
    tol = f32_tol(a, b, n=n)
    assert torch.allclose(a, b, rtol=0, atol=tol), ((a - b).abs().max(), tol)


# ---------------------------------------------------------------------------- against references
@pytest.mark.parametrize("channels", [64, 256, 512])
def test_coord_attention_equals_timm(channels):
    pytest.importorskip("timm")
    hidden = max(8, channels // 32)  # the authors' mip = max(8, inp // reduction), reduction 32
    from timm.layers.coord_attn import CoordAttn

    ref = CoordAttn(channels, rd_channels=hidden, bias=True, act_layer=nn.Hardswish)
    ours = build_block(channels, preset("coord"))
    assert ours.conv1.out_channels == hidden
    randomise(ref)
    copy_in_order(ref, ours.eval())
    x = x_of(channels)
    with torch.no_grad():
        assert_close(ref(x), ours(x), channels)


def simam_reference(x, lam=1e-4):
    """Yang et al., Eq. 5: e_t* = 4 (var + lam) / ((t - mu)² + 2 var + 2 lam); out = x * sigmoid(1 / e_t*)."""
    n = x.shape[2] * x.shape[3] - 1
    mu = x.mean((2, 3), keepdim=True)
    var = ((x - mu) ** 2).sum((2, 3), keepdim=True) / n
    energy = 4 * (var + lam) / ((x - mu) ** 2 + 2 * var + 2 * lam)
    return x * torch.sigmoid(1 / energy)


def test_simam_equals_its_energy_equation_and_has_no_parameters():
    block = build_block(32, preset("simam")).eval()
    assert sum(p.numel() for p in block.parameters()) == 0
    x = x_of(32)
    with torch.no_grad():
        assert_close(block(x), simam_reference(x), 81)
        assert_close(build_block(32, preset("simam", energy_lambda=0.1))(x), simam_reference(x, 0.1), 81)


def sge_reference(x, weight, bias, groups):
    """SGE's forward as its code writes it (grouped view, per-group weight/bias)."""
    b, c, h, w = x.shape
    g = x.view(b * groups, -1, h, w)
    xn = (g * g.mean((2, 3), keepdim=True)).sum(1, keepdim=True)
    t = xn.view(b * groups, -1)
    t = (t - t.mean(1, keepdim=True)) / (t.std(1, keepdim=True) + 1e-5)
    t = t.view(b, groups, h, w) * weight.view(1, groups, 1, 1) + bias.view(1, groups, 1, 1)
    return (g * torch.sigmoid(t.view(b * groups, 1, h, w))).view(b, c, h, w)


def test_sge_equals_its_code_and_has_two_parameters_a_group():
    block = build_block(64, preset("sge", groups=8)).eval()
    assert sum(p.numel() for p in block.parameters()) == 2 * 8
    with torch.no_grad():
        block.weight.copy_(torch.randn(8))
        block.bias.copy_(torch.randn(8))
        x = x_of(64)
        assert_close(block(x), sge_reference(x, block.weight, block.bias, 8), 81)


def triplet_reference(x, cw, hc, hw):
    """Triplet attention as its code writes it: permute, Z-pool over dim 1, conv + BN, sigmoid, permute back."""

    def gate(body, t):
        z = torch.cat([t.amax(1, keepdim=True), t.mean(1, keepdim=True)], 1)
        return t * torch.sigmoid(body(z))

    out1 = gate(cw, x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
    out2 = gate(hc, x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)
    return (gate(hw, x) + out1 + out2) / 3


def test_triplet_equals_its_code_and_has_300_parameters():
    block = build_block(32, preset("triplet"))
    assert sum(p.numel() for p in block.parameters()) == 3 * (2 * 7 * 7 + 2)
    randomise(block)
    x = torch.randn(2, 32, 9, 11, generator=torch.Generator().manual_seed(2))  # H != W: the axes can't mix
    with torch.no_grad():
        assert_close(block(x), triplet_reference(x, block.cw, block.hc, block.hw), 7 * 7 * 2)


# ---------------------------------------------------------------------------- params by arithmetic
RESNET50_SITES = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3  # the standard site of every unit


def extra_params(name):
    plain = count(build_model("resnet50", None, 1000, device="meta"), 224).params
    return count(build_model("resnet50", preset(name), 1000, device="meta"), 224).params - plain


def test_params_on_resnet50_by_arithmetic():
    assert extra_params("simam") == 0
    assert extra_params("sge") == 16 * 2 * 64  # 2 per group per unit
    assert extra_params("triplet") == 16 * 3 * (2 * 49 + 2)
    ca = sum(c * m + m + 2 * m + 2 * (m * c + c) for c in RESNET50_SITES for m in [max(8, c // 32)])
    assert extra_params("coord") == ca == 1_917_832


# ---------------------------------------------------------------------------- the zoo
FAMILIES = {  # one backbone per family, at the smallest input its layout takes to 2x2 at its last stage (SimAM's
    # variance needs more than one position): 64 px for ImageNet's stride 32, 8 px for CIFAR's stride 4
    "cifar_resnet20": 8,
    "resnet18": 64,
    "resnext50_32x4d": 64,
    "vgg16_bn": 32,
    "bn_inception": 64,
    "inception_resnet_v2": 75,
    "mobilenet_v1": 64,
    "shufflenet_v1_g3": 64,
    "mobilenet_v2": 64,
    "mobilenet_v3_small": 64,
    "efficientnet_b0": 64,
    "preact_resnet110": 8,
    "wrn16_8": 8,
    "shake_shake26_2x96d": 8,
}


@functools.cache  # the same five meta builds for every module of a family
def offered(name: str) -> tuple[str, ...]:
    valid = []
    for integration in ("standard", "pre", "post", "identity", "conv3x3"):
        try:
            build_model(name, SESpec(integration=integration, reduction=4, min_hidden=1), 5, device="meta")
            valid.append(integration)
        except ConfigError:
            pass
    return tuple(valid)


def with_module(name: str, spec: SESpec) -> nn.Module:
    """``name`` with ``spec``'s blocks on the backbone's tensors from one frozen plain build per family
    (building 23M-54M weights in each of the ~250 cases took most of this file's time)."""
    return borrow_backbone(build_model(name, spec, 7, device="meta"), plain_weights(name))


@pytest.mark.parametrize("module", NEW)
@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_module_runs_on_every_family_at_every_integration(name, module):
    size = FAMILIES[name]
    over = {"groups": 2} if module == "sge" else {}  # 64 groups do not divide CIFAR's 16 channels (next test)
    for integration in offered(name):
        torch.manual_seed(0)
        model = with_module(name, preset(module, integration=integration, **over))
        model(torch.randn(2, 3, size, size)).logsumexp(1).sum().backward()
        blocks = [m for m in model.modules() if isinstance(m, ChannelAttention)]
        assert blocks, (name, integration)
        for b in blocks:
            assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in b.parameters()), b.name


# ---------------------------------------------------------------------------- bad values
@pytest.mark.parametrize(
    "over, match",
    [
        ({"squeeze": "group", "groups": 64}, r"se.squeeze='group' works only with se.excitation=groupwise"),
        ({"excitation": "coord"}, r"se.excitation='coord' works only with se.squeeze=coord"),
        ({"groups": 8}, r"se.groups=8 does not apply to se.squeeze='avg' \(it applies to: group\)"),
        ({"energy_lambda": 0.1}, r"se.energy_lambda=0.1 does not apply to se.squeeze='avg'"),
    ],
)
def test_bad_combinations_name_the_key(over, match):
    with pytest.raises(ConfigError, match=match):
        SESpec(**over).validate()


def test_bad_values_of_the_new_presets_name_the_key():
    with pytest.raises(ConfigError, match=r"se.groups=0 must be an integer >= 1"):
        preset("sge", groups=0)
    with pytest.raises(ConfigError, match=r"se.energy_lambda=-1 must be a number > 0"):
        preset("simam", energy_lambda=-1)
    with pytest.raises(ConfigError, match=r"se.kernel_size=adaptive is ECA's rule"):
        preset("triplet", kernel_size="adaptive")
    with pytest.raises(ConfigError, match=r"se.kernel_size=4 must be 'adaptive'.* or an odd integer"):
        preset("triplet", kernel_size=4)
    with pytest.raises(ConfigError, match=r"se.groups=64 does not divide the 16 channels of SE_2_1"):
        build_model("cifar_resnet20", preset("sge"), 10, device="meta")


def test_attention_presets_compose_on_the_command_line(compose_cfg):
    from senet_ablate.run.assemble import se_spec

    for name in NEW:
        assert se_spec(compose_cfg("model=resnet50", f"attention={name}")) == preset(name)


# ---------------------------------------------------------------------------- BAM, between the stages
def bam_params(c, r=16):
    """Park et al.'s BAM on a C-channel stage output: channel MLP (fc, BN1d, fc) + spatial branch (1x1,
    BN, two dilated 3x3 + BN, 1x1 to one map); all convs and fcs with biases, as the authors' code."""
    h = c // r
    channel = c * h + h + 2 * h + h * c + c
    spatial = c * h + h + 2 * h + 2 * (9 * h * h + h + 2 * h) + h + 1
    return channel + spatial


def test_bam_sits_after_every_stage_but_the_last_with_its_papers_params(compose_cfg):
    from senet_ablate.run.assemble import make_model

    model = make_model(compose_cfg("model=resnet50", "attention=bam", "data=imagenet"), device="meta")
    assert list(model.between) == ["0", "1", "2"]  # after conv2_x, conv3_x, conv4_x
    plain = count(build_model("resnet50", None, 1000, device="meta"), 224)
    ours = count(model, 224)
    assert ours.params - plain.params == sum(bam_params(c) for c in (256, 512, 1024)) == 358_067
    assert round(ours.params / 1e6, 2) == 25.92  # PytorchInsight's BAM-ResNet50: 25.92M
    assert ours.elementwise_ops == 4 * (256 * 56 * 56 + 512 * 28 * 28 + 1024 * 14 * 14)
    assert not [m for m in model.modules() if isinstance(m, ChannelAttention)]  # no unit-level block


def test_bam_equals_its_equation():
    from senet_ablate.se.between import BAM, BAMProduct

    block = randomise(BAM(64))
    x = x_of(64)
    with torch.no_grad():
        mc = block.channel(x.mean((2, 3)))[:, :, None, None]
        ms = block.spatial(x)
        assert_close(block(x), x + x * torch.sigmoid(mc + ms), 81)
        product = randomise(BAMProduct(64))  # the authors' code: Mc * Ms
        mc, ms = product.channel(x.mean((2, 3)))[:, :, None, None], product.spatial(x)
        assert_close(product(x), x + x * torch.sigmoid(mc * ms), 81)


@pytest.mark.parametrize("name", [n for n in FAMILIES if n != "vgg16_bn"])
def test_bam_runs_on_every_family_of_the_stage_frame(name):
    torch.manual_seed(0)
    model = build_model(name, SESpec(stages=(), between="bam"), 5, input_size=FAMILIES[name])
    assert len(model.between) == len(model.stages) - 1
    model(torch.randn(2, 3, FAMILIES[name], FAMILIES[name])).logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in model.between.parameters())


def test_bam_fails_where_there_is_no_stage_frame_and_bad_values_name_the_key():
    with pytest.raises(ConfigError, match=r"vgg16_bn has no such frame; valid here: se.between=none"):
        build_model("vgg16_bn", SESpec(stages=(), between="bam"), 10, device="meta")
    with pytest.raises(
        ConfigError, match=r"se.between='cbam' is not a valid choice; valid values: none, bam, bam_product"
    ):
        SESpec(between="cbam").validate()


def test_a_new_excitation_is_one_class_and_one_registry_entry(monkeypatch):
    """An excitation added the way CONTRIBUTING.md says: a ChannelAttention subclass that declares its layers,
    reads its keys in ``from_spec``, and one ``EXCITATIONS`` entry naming it. It validates, builds on a backbone at the
    paper's sites, trains a step and is counted like ours (a per-channel scale: C parameters a block)."""
    from senet_ablate.se import spec as space

    class ChannelScale(ChannelAttention):
        def __init__(self, channels: int, frame: Frame) -> None:
            super().__init__(frame)
            self.scale = nn.Parameter(torch.zeros(channels))
            self.add_gates(frame)

        @classmethod
        def from_spec(cls, channels, spec, frame, *, stats=1, unit_input=None):
            return cls(channels, frame)

        def excite(self, s):
            return s * self.scale

    monkeypatch.setitem(space.EXCITATIONS, "scale", space.Excitation(block=ChannelScale))
    fc_keys = ("reduction", "min_hidden", "hidden_divisor", "round_limit", "hidden_from", "hidden_act", "bias")
    spec = SESpec(excitation="scale", **dict.fromkeys(fc_keys))  # keys it does not take are null
    model = build_model("cifar_resnet20", spec, 10)
    blocks = [m for m in model.modules() if isinstance(m, ChannelScale)]
    assert len(blocks) == 9  # one per residual unit of ResNet-20 (3 stages x 3)
    plain = count(build_model("cifar_resnet20", SESpec(stages=[]), 10), 32).params
    assert count(model, 32).params - plain == 3 * (16 + 32 + 64)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(b.scale.grad is not None for b in blocks)
