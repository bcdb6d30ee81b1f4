"""Every backbone runs forward and backward under every integration and every squeeze; gates of 1 are the
identity."""

import functools
import re

import pytest
import torch
from conftest import borrow_backbone

from senet_ablate.errors import ConfigError
from senet_ablate.models import MODELS, build_model
from senet_ablate.se import GATES, INTEGRATIONS, SEBlock, SESpec, build_block

# tests/test_backbone_*.py run these through every integration and squeeze at the input sizes they need
OWN_FILES = {"vgg16_bn", "mobilenet_v1", "bn_inception", "shufflenet_v1_g3", "inception_resnet_v2"}
OWN_FILES |= {m for m in MODELS if m.startswith(("mobilenet_v2", "mobilenet_v3", "efficientnet"))}
OWN_FILES |= {"preact_resnet110", "preact_resnet164", "wrn16_8", "shake_shake26_2x96d", "shake_even29_2x4x64d"}
RESNETS = [m for m in MODELS if m not in OWN_FILES]  # ResNets, ResNeXts, SENet-154, CIFAR ResNets
SQUEEZES = ("avg", "max", "none")


def covering(names: list[str]) -> list[tuple[str, str, str]]:
    """(backbone, integration, squeeze) cases in which every backbone meets every integration and every
    squeeze, and every integration every squeeze (a cyclic Latin design over the squeeze): the squeeze is
    computed inside the SE block alike on every backbone, while the backbone and the integration decide
    the widths it sees, so the full product repeats the same path three times."""
    return [(n, i, SQUEEZES[(j + k) % 3]) for k, n in enumerate(names) for j, i in enumerate(INTEGRATIONS)]


def small_input(name, batch=2):
    return torch.randn(batch, 3, 32, 32)  # ImageNet nets: 32 px reaches 1x1 at stage 5


@functools.lru_cache(maxsize=2)
def plain_weights(name):
    torch.manual_seed(0)
    state = build_model(name, None, 7).state_dict()
    for t in state.values():
        t.requires_grad_(False)  # the backbone's weight gradients are not what these tests check
    return state


def with_se(name, spec):
    """``name`` with SE as ``spec`` says: the backbone's tensors shared from one plain build, frozen
    (building and back-propagating SENet-154's 115M weights in each case would dominate the suite),
    the SE blocks freshly initialised and trainable."""
    return borrow_backbone(build_model(name, spec, 7, device="meta"), plain_weights(name))


@pytest.mark.parametrize("name, integration, squeeze", covering(RESNETS))
def test_forward_backward_shapes(name, integration, squeeze):
    torch.manual_seed(0)
    model = with_se(name, SESpec(squeeze=squeeze, integration=integration, reduction=4))
    out = model(small_input(name))
    assert out.shape == (2, 7)
    out.logsumexp(1).sum().backward()
    se_blocks = [m for m in model.modules() if isinstance(m, SEBlock)]
    assert se_blocks, "SE requested but none built"
    for m in se_blocks:  # the SE weights take part in the graph
        assert m.fc1.weight.grad is not None and torch.isfinite(m.fc1.weight.grad).all()


@pytest.mark.parametrize("name", list(MODELS))
def test_every_backbone_offers_standard_and_names_its_integrations_otherwise(name):
    """An integration a backbone lacks fails at build time, naming the backbone and the valid list;
    every listed one builds (meta device: shapes only)."""
    valid = None
    for integration in INTEGRATIONS:
        try:
            build_model(name, SESpec(integration=integration, reduction=4), 10, device="meta")
        except ConfigError as e:
            m = re.search(rf"is not available on {name} .*valid integrations for {name}: (.*)$", str(e))
            assert m, str(e)
            assert valid in (None, m[1]) and integration not in m[1].split(", ")
            valid = m[1]
    assert valid is None or "standard" in valid.split(", ")
    for integration in valid.split(", ") if valid else []:
        build_model(name, SESpec(integration=integration, reduction=4), 10, device="meta")


@pytest.mark.parametrize("gate", list(GATES))
def test_every_gate_runs(gate):
    model = build_model("cifar_resnet20", SESpec(gate=gate), 10)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("squeeze", ["avg", "max", "none"])
def test_se_block_with_unit_gate_is_identity(squeeze):
    block = build_block(32, SESpec(squeeze=squeeze, gate="hard_sigmoid", bias=True, reduction=4))
    with torch.no_grad():  # hard_sigmoid(0 * h + 3) == 1 exactly
        block.fc2.weight.zero_()
        block.fc2.bias.fill_(3.0)
    x = torch.randn(3, 32, 5, 5)
    assert torch.equal(block(x), x)


@pytest.mark.parametrize("integration", list(INTEGRATIONS))
@pytest.mark.parametrize("name", ["resnet18", "resnet50", "cifar_resnet20"])
def test_network_with_unit_gates_equals_plain_backbone(name, integration):
    torch.manual_seed(0)
    plain = build_model(name, None, 10).eval()
    se = build_model(name, SESpec(gate="hard_sigmoid", integration=integration, reduction=4), 10).eval()
    missing = se.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(".se.block." in k for k in missing)
    with torch.no_grad():
        for m in se.modules():
            if isinstance(m, SEBlock):
                m.fc2.weight.zero_()
                m.fc2.bias.fill_(3.0)
        x = torch.randn(2, 3, 32, 32)
        assert torch.equal(se(x), plain(x))


def test_se_changes_the_output_when_gate_is_not_one():
    torch.manual_seed(0)
    plain = build_model("cifar_resnet20", None, 10).eval()
    se = build_model("cifar_resnet20", SESpec(), 10).eval()
    se.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(se(x), plain(x))


def test_reduced_width_is_not_rounded():
    block = build_block(100, SESpec(reduction=3))
    assert block.fc1.out_features == 33  # 100 // 3; timm-style rounding to 8 would give 32 or 40


def test_stage_selection_places_se_only_there():
    model = build_model("resnet50", SESpec(stages=(3,)), 1000, device="meta")
    names = sorted(m.name for m in model.modules() if isinstance(m, SEBlock))
    assert names == ["SE_3_1", "SE_3_2", "SE_3_3", "SE_3_4"]


def test_caffe_style_puts_stride_in_first_1x1():
    caffe = build_model("resnet50", None, 10, device="meta", stride_style="caffe")
    torch_style = build_model("resnet50", None, 10, device="meta", stride_style="pytorch")
    first = lambda m: m.stages[1][0]  # noqa: E731 - first block of stage 3
    assert first(caffe).conv1[0].stride == (2, 2) and first(caffe).conv2[0].stride == (1, 1)
    assert first(torch_style).conv1[0].stride == (1, 1) and first(torch_style).conv2[0].stride == (2, 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(squeeze="mean"), r"se.squeeze='mean'.*avg, max, none"),
        (dict(gate="swish"), r"se.gate='swish'.*sigmoid, tanh, relu, hard_sigmoid"),
        (dict(integration="inside"), r"se.integration='inside'.*standard, pre, post, identity, conv3x3"),
        (dict(reduction=0), r"se.reduction=0 must be an integer >= 1"),
        (dict(stages="some"), r"se.stages='some'"),
    ],
)
def test_spec_rejects_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SESpec(**kwargs).validate()


def test_reduction_too_large_names_layer_and_width():
    with pytest.raises(ConfigError, match=r"SE_2_1: it has C=16 channels, so C // r = 0"):
        build_model("cifar_resnet20", SESpec(reduction=17), 10, device="meta")
    build_model("cifar_resnet20", SESpec(reduction=16), 10, device="meta")  # 16 // 16 = 1 is fine


def test_missing_stage_names_valid_ids():
    with pytest.raises(ConfigError, match=r"\[6\].*stage ids are \[2, 3, 4, 5\]"):
        build_model("resnet50", SESpec(stages=(6,)), 10, device="meta")
    with pytest.raises(ConfigError, match=r"\[5\].*stage ids are \[2, 3, 4\]"):
        build_model("cifar_resnet56", SESpec(stages=(5,)), 10, device="meta")


def test_unknown_model_lists_backbones():
    with pytest.raises(ConfigError, match="model.name='resnet99'.*resnet18.*cifar_resnet110"):
        build_model("resnet99", None, 10)


@pytest.mark.parametrize("squeeze", ["avg", "max", "none"])
@pytest.mark.parametrize("gate", ["sigmoid", "tanh", "relu", "hard_sigmoid"])
def test_se_keeps_bf16_and_channels_last_so_the_rescale_copies_nothing(squeeze, gate):
    """The GPU path runs bf16 autocast on channels_last maps: an SE block whose pooling or gate fell
    back to fp32, or whose broadcast multiply returned NCHW, would write a full-size copy of every
    map it rescales. Checked under CPU autocast, the same rules on this machine."""
    from senet_ablate.se import SESpec, build_block

    block = build_block(64, SESpec(squeeze=squeeze, gate=gate)).to(memory_format=torch.channels_last)
    x, identity = (
        torch.randn(4, 64, 8, 8).to(torch.bfloat16).contiguous(memory_format=torch.channels_last) for _ in range(2)
    )
    with torch.autocast("cpu", torch.bfloat16):
        y = block(x)
        e = block.gate_values(x)
        fused = block(x, add=identity)  # a residual unit's rescale + add
    assert y.dtype == e.dtype == fused.dtype == torch.bfloat16
    assert y.is_contiguous(memory_format=torch.channels_last) and fused.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("integration", ["standard", "pre", "post", "identity", "conv3x3"])
def test_the_residual_add_with_the_rescale_fused_equals_rescale_then_add(integration):
    """SESite.add fuses SE's rescale into the summation (one pass, no full-size temporary) when SE
    sits on the branch; for every integration it is SE(branch) + SE(identity), gradients included."""
    from senet_ablate.se import SESite, SESpec

    torch.manual_seed(0)
    site = SESite(
        SESpec(integration=integration), dict(input=32, mid=32, branch=32, identity=32, output=32), stage=2, index=1
    )
    b, i = (torch.randn(2, 32, 5, 5, requires_grad=True) for _ in range(2))
    fused = site.add(b, i)
    unfused = site(b, "branch") + site(i, "identity")
    torch.testing.assert_close(fused, unfused)
    wrt = (b, i, *site.parameters())  # the SE weights take no part where SE sits elsewhere (pre, post, conv3x3)
    g_fused = torch.autograd.grad(fused.square().sum(), wrt, allow_unused=True)
    g_unfused = torch.autograd.grad(unfused.square().sum(), wrt, allow_unused=True)
    for a, c in zip(g_fused, g_unfused):
        torch.testing.assert_close(a, c)
