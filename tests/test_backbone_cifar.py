"""The CIFAR backbones of Tables 4/5: params pinned by arithmetic written out here from the layouts of
backbones.md Sec. 10 (and against the published counts), SE sites, Shake-Shake mixing, Cutout and
reflection padding, every ablation axis forward + backward, bad values at config time."""

import pytest
import torch
import torch.nn.functional as F

from senet_ablate import data
from senet_ablate.errors import ConfigError
from senet_ablate.models import build_model
from senet_ablate.models.cifar import shake
from senet_ablate.run.app import validate
from senet_ablate.se import INTEGRATIONS, SEBlock, SESpec

NAMES = ["preact_resnet110", "preact_resnet164", "wrn16_8", "shake_shake26_2x96d", "shake_even29_2x4x64d"]


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def se_blocks(model):
    return [m for m in model.modules() if isinstance(m, SEBlock)]


# ---------------------------------------------------------------------------- params by hand
def bn(c):
    return 2 * c  # weight and bias


def se(c):
    h = c // 16
    return c * h + h + h * c + c  # two FCs with biases, r = 16


def preact_net(depth, widths, k, bottleneck, with_se=False):
    """3x3 stem to 16; per unit BN-ReLU before each conv, the stride's 1x1 projection (a conv, no BN)
    where the shape changes; BN before the pool; fc."""
    total, cin = 27 * 16, 16
    for cout in widths:
        for b in range(depth):
            if bottleneck:
                w = cout // 4
                unit = bn(cin) + cin * w + bn(w) + 9 * w * w + bn(w) + w * cout
            else:
                unit = bn(cin) + 9 * cin * cout + bn(cout) + 9 * cout * cout
            unit += cin * cout if b == 0 and cin != cout else 0
            total += unit + (se(cout) if with_se else 0)
            cin = cout
    return total + bn(cin) + cin * k + k


def shake26(k, with_se=False):
    """Stem conv + BN; per unit two branches of (3x3 conv + BN) x 2; where the shape changes two 1x1
    convs to half the channels and a BN; SE per branch."""
    total, cin = 27 * 16 + bn(16), 16
    for cout in (96, 192, 384):
        for b in range(4):
            branch = 9 * cin * cout + bn(cout) + 9 * cout * cout + bn(cout) + (se(cout) if with_se else 0)
            total += 2 * branch + ((cin * cout + bn(cout)) if b == 0 else 0)
            cin = cout
    return total + cin * k + k


def shake_even29(k, with_se=False):
    """Stem conv 64 + BN; per unit two ResNeXt branches (1x1, 3x3 in 4 groups, 1x1, each + BN);
    a 1x1 conv + BN shortcut where the channels change; SE per branch."""
    total, cin = 27 * 64 + bn(64), 64
    for cout in (256, 512, 1024):
        for b in range(3):
            branch = cin * cout + bn(cout) + 9 * cout * cout // 4 + bn(cout) + cout * cout + bn(cout)
            total += 2 * (branch + (se(cout) if with_se else 0)) + ((cin * cout + bn(cout)) if b == 0 else 0)
            cin = cout
    return total + cin * k + k


BY_HAND = {
    "preact_resnet110": lambda k, s: preact_net(18, (16, 32, 64), k, False, s),
    "preact_resnet164": lambda k, s: preact_net(18, (64, 128, 256), k, True, s),
    "wrn16_8": lambda k, s: preact_net(2, (128, 256, 512), k, False, s),
    "shake_shake26_2x96d": shake26,
    "shake_even29_2x4x64d": shake_even29,
}
PUBLISHED_M = {
    "preact_resnet110": 1.7,
    "preact_resnet164": 1.7,
    "wrn16_8": 11.0,
    "shake_shake26_2x96d": 26.2,
    "shake_even29_2x4x64d": 34.4,
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("classes", [10, 100])
def test_params_by_hand_and_against_the_published_counts(name, classes):
    plain = params(build_model(name, None, classes, device="meta"))
    assert plain == BY_HAND[name](classes, False)
    assert params(build_model(name, SESpec(), classes, device="meta")) == BY_HAND[name](classes, True)
    if classes == 10:  # the papers print 10-class counts (Shake-Even's 34.4M too, backbones.md Sec. 10)
        assert round(plain / 1e6, 1) == PUBLISHED_M[name]


def test_exact_counts():
    """The figures the arithmetic above gives, written out (10 classes)."""
    assert {n: BY_HAND[n](10, False) for n in NAMES} == {
        "preact_resnet110": 1_730_522,
        "preact_resnet164": 1_703_258,
        "wrn16_8": 10_961_370,
        "shake_shake26_2x96d": 26_192_922,
        "shake_even29_2x4x64d": 34_437_450,
    }
    # option A shortcuts drop the two 1x1 projections of ResNet-110: 16*32 + 32*64 = 2,560 weights
    assert params(build_model("preact_resnet110", None, 10, device="meta", shortcut="pad")) == 1_730_522 - 2_560


@pytest.mark.parametrize(
    "name, se_on, count, hidden",
    [
        ("preact_resnet110", None, 54, [1, 2, 4]),
        ("preact_resnet164", None, 54, [4, 8, 16]),
        ("wrn16_8", None, 6, [8, 16, 32]),
        ("shake_shake26_2x96d", "branch", 24, [6, 12, 24]),
        ("shake_shake26_2x96d", "sum", 12, [6, 12, 24]),
        ("shake_even29_2x4x64d", "branch", 18, [16, 32, 64]),
        ("shake_even29_2x4x64d", "sum", 9, [16, 32, 64]),
    ],
)
def test_se_sites_and_hidden_widths_follow_backbones_md(name, se_on, count, hidden):
    options = {"se_on": se_on} if se_on else {}
    blocks = se_blocks(build_model(name, SESpec(), 10, device="meta", **options))
    assert len(blocks) == count
    assert sorted({b.fc1.out_features for b in blocks}) == hidden
    if se_on == "branch":  # one block on each of a unit's two branches
        assert {b.name for b in blocks[:2]} == {"SE_2_1a", "SE_2_1b"}


# ---------------------------------------------------------------------------- Shake-Shake
def _coefficients(backward: str, seed: int):
    """(alpha, beta) per image, read back: out = alpha*a + (1-alpha)*b with a = 1, b = 0; the
    gradient reaching a is beta."""
    torch.manual_seed(seed)
    a = torch.ones(6, 1, 2, 2, requires_grad=True)
    b = torch.zeros(6, 1, 2, 2, requires_grad=True)
    out = shake(a, b, training=True, backward=backward)
    out.sum().backward()
    alpha, beta = out[:, 0, 0, 0].detach(), a.grad[:, 0, 0, 0]
    assert torch.allclose(b.grad[:, 0, 0, 0], 1 - beta)
    return alpha, beta


def test_shake_mixes_per_image_with_different_forward_and_backward_coefficients_reproducibly():
    alpha, beta = _coefficients("shake", 0)
    assert len(set(alpha.tolist())) == 6 and ((alpha > 0) & (alpha < 1)).all()  # one per image
    assert not torch.allclose(alpha, beta)
    again = _coefficients("shake", 0)
    assert torch.equal(alpha, again[0]) and torch.equal(beta, again[1])
    assert not torch.equal(alpha, _coefficients("shake", 1)[0])
    even_alpha, even_beta = _coefficients("even", 0)
    assert torch.equal(even_beta, torch.full((6,), 0.5)) and len(set(even_alpha.tolist())) == 6


def test_shake_averages_the_branches_in_eval_mode():
    a, b = torch.randn(3, 4, 5, 5), torch.randn(3, 4, 5, 5)
    assert torch.equal(shake(a, b, training=False), 0.5 * (a + b))
    model = build_model("shake_shake26_2x96d", SESpec(), 10).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # no randomness at test time


# ---------------------------------------------------------------------------- Cutout, padding
def test_cutout_squares_have_the_stated_size_are_clipped_at_the_border_and_repeat_per_seed():
    x = torch.ones(64, 3, 32, 32)
    g = torch.Generator().manual_seed(3)
    out = data.cutout(x, g, slice(0, 64), 64, 16)
    g = torch.Generator().manual_seed(3)
    top = torch.randint(0, 32, (64,), generator=g) - 8
    left = torch.randint(0, 32, (64,), generator=g) - 8
    for i in range(64):
        r0, r1 = max(0, int(top[i])), min(32, int(top[i]) + 16)
        c0, c1 = max(0, int(left[i])), min(32, int(left[i]) + 16)
        expect = torch.ones(32, 32)
        expect[r0:r1, c0:c1] = 0
        assert torch.equal(out[i, 0], expect) and torch.equal(out[i, 1], expect)
    zeros = (out[:, 0] == 0).sum((1, 2))
    assert zeros.max() == 256 and zeros.min() < 256  # inside: 16 x 16; at a border: clipped


def test_cutout_in_the_loader_is_the_same_for_the_same_seed_epoch_and_batch():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (300, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (300,), generator=g)

    def epoch(seed, e, size=8):
        loader = data.TensorLoader(
            images, labels, 100, train=True, augment="cifar", mean=[0.5] * 3, std=[0.25] * 3, seed=seed, cutout=size
        )
        loader.set_epoch(e)
        return [x for x, _ in loader]

    first, again = epoch(0, 1), epoch(0, 1)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], epoch(0, 2)[0]) and not torch.equal(first[0], epoch(1, 1)[0])
    zeros = (first[0] == 0).all(1).sum((1, 2))  # all three channels zero: the square (the mean)
    assert zeros.max() == 64 and (zeros > 0).all()
    no_cutout = epoch(0, 1, size=None)
    assert not (no_cutout[0] == 0).all(1).any()  # the crop's zero padding normalises to -2, not 0


def test_reflect_padding_mirrors_like_torch_without_repeating_the_edge():
    x = torch.randint(0, 256, (2, 3, 6, 7), dtype=torch.uint8)
    ours = data._pad(x, 4, "reflect")
    assert ours.dtype == torch.uint8
    assert torch.equal(ours, F.pad(x.float(), (4, 4, 4, 4), mode="reflect").to(torch.uint8))
    assert torch.equal(data._pad(x, 4, "zeros"), F.pad(x, (4, 4, 4, 4)))


# ---------------------------------------------------------------------------- every axis runs
SQUEEZES = ("avg", "max", "none")
# every backbone x integration x SE placement once, the squeeze cycling (a Latin design): every backbone and
# every placement meets every squeeze and every integration; the squeeze is computed inside the SE block alike
# everywhere, so the full product with it repeated each path three times
CASES = [
    (n, i, o, SQUEEZES[(j + k + m) % 3])
    for k, n in enumerate(NAMES)
    for j, i in enumerate(INTEGRATIONS)
    for m, o in enumerate((None,) if "shake" not in n else ("branch", "sum"))
]


@pytest.mark.parametrize("name, integration, se_on, squeeze", CASES)
def test_forward_backward_small_input(name, integration, squeeze, se_on):
    torch.manual_seed(0)
    options = {"se_on": se_on} if se_on else {}
    model = build_model(name, SESpec(squeeze=squeeze, integration=integration), 5, **options)
    out = model(torch.randn(2, 3, 8, 8))
    assert out.shape == (2, 5)
    out.logsumexp(1).sum().backward()
    blocks = se_blocks(model)
    assert blocks and all(b.fc1.weight.grad is not None and torch.isfinite(b.fc1.weight.grad).all() for b in blocks)


# ---------------------------------------------------------------------------- bad values
@pytest.mark.parametrize(
    "overrides, match",
    [
        (
            ["data=cifar10", "data.root=/nowhere", "data.cutout=0"],
            r"data.cutout=0 must be null \(off\) or a square side",
        ),
        (["data=cifar10", "data.root=/nowhere", "data.cutout=33"], r"data.cutout=33 .* 1 to data.image_size \(32\)"),
        (["data=cifar10", "data.root=/nowhere", "data.pad_mode=wrap"], r"data.pad_mode='wrap'.*zeros, reflect"),
        (["model=wrn16_8", "+model.se_on=sum"], r"model.se_on is not an option of wrn16_8"),
        (["model=preact_resnet164", "+model.shake_backward=even"], r"model.shake_backward is not an option of preact"),
        (["model=shake_shake26_2x96d", "model.se_on=both"], r"model.se_on='both'.*branch, sum"),
        (["model=preact_resnet110", "model.shortcut=conv"], r"model.shortcut='conv'.*projection, pad"),
        (
            ["recipe=wrn", "recipe.milestones=[0.3,1.2]"],
            r"recipe.milestones=\[0.3, 1.2\] must be fractions .* \(0, 1\)",
        ),
        (["recipe.schedule=multistep", "recipe.milestones=[0]"], r"recipe.milestones=\[0\] must be fractions"),
        (["recipe.warmup=cosine"], r"recipe.warmup='cosine'.*linear, constant"),
    ],
)
def test_bad_values_fail_at_config_time_naming_the_key(compose_cfg, overrides, match):
    with pytest.raises(ConfigError, match=match):
        validate(compose_cfg(*overrides))


def test_constant_warm_up_holds_a_tenth_of_the_rate_then_the_schedule(compose_cfg):
    from senet_ablate.train import lr_at

    r = compose_cfg("recipe=preact_resnet", "recipe.warmup_epochs=1").recipe
    assert [lr_at(r, e) for e in (0, 0.5, 0.99)] == pytest.approx([0.01] * 3)
    assert [lr_at(r, e) for e in (1, 81, 82, 123, 163)] == pytest.approx([0.1, 0.1, 0.01, 0.001, 0.001])
    w = compose_cfg("recipe=wrn").recipe  # x0.2 at epochs 60, 120, 160 of 200
    assert [lr_at(w, e) for e in (59, 60, 120, 160)] == pytest.approx([0.1, 0.02, 0.004, 0.0008])
