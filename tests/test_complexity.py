"""Golden params / multiply-adds, from the paper or from arithmetic shown here."""

import pytest

from senet_ablate.complexity import count
from senet_ablate.models import build_model
from senet_ablate.se import SESpec

# ResNet-50 stage layout (paper Table 1): (blocks N_s, output channels C_s, map side at 224 input)
R50 = [(3, 256, 56), (4, 512, 28), (6, 1024, 14), (3, 2048, 7)]


def profile(name, se=None, style="caffe", size=224, classes=1000):
    return count(build_model(name, se, classes, device="meta", stride_style=style), size)


def test_resnet50_golden_caffe_and_pytorch_styles():
    caffe, pytorch = profile("resnet50"), profile("resnet50", style="pytorch")
    assert caffe.params == pytorch.params == 25_557_032
    assert caffe.macs == 3_857_973_248  # the paper's 3.86 GFLOPs
    assert pytorch.macs == 4_089_184_256  # torchvision's stride-in-3x3 layout
    assert caffe.elementwise_ops == 0


def test_se_resnet50_golden_params_with_and_without_bias():
    assert profile("resnet50", SESpec(bias=True)).params == 28_088_024
    assert profile("resnet50", SESpec(bias=False)).params == 28_071_976
    # the biases: per block C/r + C  ->  sum N_s (C_s/16 + C_s) = 16,048
    assert 28_088_024 - 28_071_976 == sum(n * (c // 16 + c) for n, c, _ in R50)


@pytest.mark.parametrize("r", [2, 4, 8, 16, 32])
def test_extra_params_follow_eqn5(r):
    """Paper Eqn. 5: SE adds (2/r) * sum_s N_s C_s^2 weights (no biases)."""
    extra = profile("resnet50", SESpec(reduction=r, bias=False)).params - 25_557_032
    assert extra == 2 * sum(n * c * c for n, c, _ in R50) // r


def test_se_gflops_convention_matches_paper_cells():
    se = profile("resnet50", SESpec(bias=False))
    # squeeze pooling + rescale: 2 ops per element of every SE'd output map
    assert se.elementwise_ops == 2 * sum(n * c * s * s for n, c, s in R50) == 11_038_720
    # FC multiply-adds = the FC weights at r = 16
    assert se.macs - 3_857_973_248 == 2 * sum(n * c * c for n, c, _ in R50) // 16
    assert round(se.gflops, 2) == 3.87 and round(profile("resnet50").gflops, 2) == 3.86


def test_nosqueeze_counts_full_map_convs_and_rescale_only():
    ns = profile("resnet50", SESpec(squeeze="none", bias=False))
    assert ns.params == 28_071_976  # same parameters as SE (Table 16)
    assert ns.macs - 3_857_973_248 == sum(2 * n * c * (c // 16) * s * s for n, c, s in R50)
    assert ns.elementwise_ops == sum(n * c * s * s for n, c, s in R50)  # no pooling
    assert round(ns.gflops, 2) == 4.27


def test_cifar_resnet20_params_by_hand():
    # option-A shortcuts have no weights; conv 3x3 weights + BN (2 per channel) + fc
    stem = 3 * 16 * 9 + 32
    s2 = 3 * (2 * 16 * 16 * 9 + 2 * 32)
    s3 = (16 * 32 * 9 + 32 * 32 * 9 + 2 * 64) + 2 * (2 * 32 * 32 * 9 + 2 * 64)
    s4 = (32 * 64 * 9 + 64 * 64 * 9 + 2 * 128) + 2 * (2 * 64 * 64 * 9 + 2 * 128)
    fc = 64 * 10 + 10
    assert profile("cifar_resnet20", size=32, classes=10).params == stem + s2 + s3 + s4 + fc == 269_722


def test_se3x3_sits_on_the_bottleneck_width():
    se3 = profile("resnet50", SESpec(integration="conv3x3", bias=False))
    widths = [(n, c // 4, s) for n, c, s in R50]  # the 3x3 conv has C/4 channels
    assert se3.params - 25_557_032 == 2 * sum(n * w * w for n, w, _ in widths) // 16
    assert se3.elementwise_ops == 2 * sum(n * w * s * s for n, w, s in widths)


def test_an_input_too_small_for_the_backbone_names_the_key():
    from senet_ablate.errors import ConfigError

    vgg = build_model("vgg16_bn", None, 10, device="meta")
    with pytest.raises(ConfigError, match=r"VGG cannot run on a 16 px input .*use a larger data.image_size"):
        count(vgg, 16)
    assert count(vgg, 32).macs > 0  # five 2x2 pools: 32 px is the smallest


def test_min_hidden_floors_the_hidden_width_for_table10_on_a_cifar_resnet():
    """CIFAR ResNet-20 at r = 32: C // r is 0, 1, 2 in stages 2, 3, 4 (C = 16, 32, 64, 3 blocks
    each); se.min_hidden=1 floors stage 2 at 1. With biases a block adds C*h + h + h*C + C:
    3 * (16+1+16+16) + 3 * (32+1+32+32) + 3 * (128+2+128+64) = 147 + 291 + 966 = 1,404."""
    from senet_ablate.errors import ConfigError

    plain = sum(p.numel() for p in build_model("cifar_resnet20", None, 10, device="meta").parameters())
    se = build_model("cifar_resnet20", SESpec(reduction=32, min_hidden=1), 10, device="meta")
    assert sum(p.numel() for p in se.parameters()) - plain == 1_404
    assert [m.block.fc1.out_features for m in se.modules() if getattr(m, "block", None)][::3] == [1, 1, 2]
    with pytest.raises(ConfigError, match=r"C // r = 0; use r <= 16, or se.min_hidden=1"):
        build_model("cifar_resnet20", SESpec(reduction=32), 10, device="meta")
    for bad in (-1, True, 1.5):
        with pytest.raises(ConfigError, match=r"se.min_hidden=.* must be an integer >= 0"):
            SESpec(min_hidden=bad).validate()
    # ImageNet ResNet-50 never reaches the floor: the Table 10 counts are unchanged by it
    assert (
        profile("resnet50", SESpec(reduction=32, min_hidden=1)).params
        == profile("resnet50", SESpec(reduction=32)).params
    )
