"""SE's successors as points of the se axes (ECA, CBAM, GE, SRM, GC): equal to timm's modules with copied weights,
published parameter overheads by arithmetic, every allowed combination runs, every other fails at
config time naming the valid values."""

from __future__ import annotations

import functools
import itertools
import json

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import CONF, f32_tol, run_cli, se_yaml, squash
from omegaconf import OmegaConf

from senet_ablate.complexity import Complexity, count, count_params
from senet_ablate.errors import ConfigError
from senet_ablate.models import build_model
from senet_ablate.se import EXCITATIONS, INTEGRATIONS, SQUEEZES, ChannelAttention, SESpec, build_block, eca_kernel
from senet_ablate.se.spec import EXCITATION_KEYS

# SE and its successors up to GC; the later modules (CA, SimAM, SGE, Triplet, BAM, SK): tests/test_attention_modules.py
# and tests/test_attention_sk.py
LATER_MODULES = ("coord", "simam", "sge", "triplet", "bam", "sk")
PRESETS = sorted(p.stem for p in (CONF / "attention").glob("*.yaml") if p.stem not in LATER_MODULES)


def preset_keys(name: str) -> dict:
    """The se.* keys ``conf/attention/<name>.yaml`` sets, read as plain YAML: those of the presets its
    defaults list names (SE's block), then its own."""
    node = yaml.safe_load((CONF / "attention" / f"{name}.yaml").read_text())
    keys: dict = {}
    for base in node.pop("defaults", []):
        keys |= {} if base == "_self_" else preset_keys(base)
    return keys | node


def preset(name: str, **over) -> SESpec:
    """The SESpec ``attention=<name>`` gives (the preset's keys over se.yaml's defaults)."""
    return SESpec.from_config({**se_yaml(), **preset_keys(name), **over})


def copy_in_order(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Copy ``src``'s state into ``dst`` entry by entry: the two list the same tensors in the same
    order, ours as Linear where timm has 1x1 convs (same numbers, other shape)."""
    s, d = list(src.state_dict().values()), list(dst.state_dict().items())
    assert len(s) == len(d), ([k for k in src.state_dict()], [k for k, _ in d])
    with torch.no_grad():
        for a, (name, b) in zip(s, d):
            assert a.numel() == b.numel(), (name, a.shape, b.shape)
            b.copy_(a.reshape(b.shape))


def randomise(m: torch.nn.Module) -> torch.nn.Module:
    """Random weights and BN statistics, so that no term of the output can hide behind an init of 0 or 1."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in m.state_dict().items():
            if t.is_floating_point():
                t.copy_(
                    torch.rand(t.shape, generator=g) + 0.5
                    if "running_var" in name
                    else torch.randn(t.shape, generator=g) * 0.5
                )
    return m.eval()


def same_output(timm_module, ours, channels: int, size: int = 9) -> None:
    randomise(timm_module)
    copy_in_order(timm_module, ours.eval())
    x = torch.randn(4, channels, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = timm_module(x), ours(x)
    # other kernels and op order (timm's 1x1 convs vs our Linear): round-off over the longest reduction, the
    # MLP over C or a pooling over the map. Measured: 1-3.4 ulps of max|a| (~1e-6); one weight off by 1e-3: ~1e-3
    tol = f32_tol(a, b, n=max(channels, size * size))
    assert torch.allclose(a, b, rtol=0, atol=tol), ((a - b).abs().max(), tol)


# ---------------------------------------------------------------------------- equal to timm
@pytest.mark.parametrize("channels", [64, 96, 256])
def test_se_equals_timm_with_timms_rounding_of_the_hidden_width(channels):
    """timm rounds C/16 to the nearest multiple of 8 (64 -> 8, 96 -> 8); hidden_divisor=8 does the same,
    while our default keeps the paper's floor(C / r) (64 -> 4, 96 -> 6)."""
    from timm.layers.squeeze_excite import SEModule

    ours = build_block(channels, preset("se", hidden_divisor=8))
    assert ours.fc1.out_features == SEModule(channels).fc1.out_channels
    assert build_block(channels, preset("se")).fc1.out_features == channels // 16
    same_output(SEModule(channels), ours, channels)


@pytest.mark.parametrize("channels, k", [(64, 3), (256, 5), (512, 5), (2048, 7)])
def test_eca_equals_timm_and_picks_ecas_adaptive_kernel(channels, k):
    """k = |(log2 C + 1) / 2|_odd: 64 -> 3.5 -> 3, 256 -> 4.5 -> 5, 512 -> 5, 2048 -> 6 -> 7."""
    from timm.layers.eca import EcaModule

    ours = build_block(channels, preset("eca"))
    assert eca_kernel(channels) == k == ours.conv.kernel_size[0] == EcaModule(channels).conv.kernel_size[0]
    assert count_params(ours) == k  # one 1-D kernel, no bias
    same_output(EcaModule(channels), ours, channels)


@pytest.mark.parametrize("bias", [True, False])
def test_cbam_equals_timm(bias):
    """Shared MLP over avg and max pooling, then the 7x7 spatial gate with BN (eval: running statistics)."""
    from timm.layers.cbam import CbamModule

    same_output(CbamModule(64, mlp_bias=bias), build_block(64, preset("cbam", bias=bias)), 64)


@pytest.mark.parametrize("extent", [0, 2, 4])
def test_ge_theta_minus_equals_timm_and_adds_no_parameters(extent):
    """timm's parameter-free GE (extra_params=False, use_mlp=False): global mean, or a (2e-1)^2
    average at stride e, nearest-neighbour back to the map, sigmoid."""
    from timm.layers.gather_excite import GatherExcite

    ours = build_block(32, preset("ge_theta_minus", extent=extent))
    assert count_params(ours) == 0
    same_output(GatherExcite(32, extent=extent, use_mlp=False), ours, 32, size=13)


def test_ge_theta_gather_equals_strided_depthwise_convolutions():
    """timm 1.0.31 cannot build GE with parameters (GatherExcite(extra_params=True) and use_mlp=True
    raise TypeError: `*dd` is passed positionally), so GE-theta is checked against the functional
    definition: extent 8 = three depthwise 3x3 stride-2 convs, BN after each, ReLU between."""
    block = randomise(build_block(16, preset("ge_theta", extent=8)))
    convs = [m for m in block.squeeze if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in block.squeeze if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 3 and count_params(block) == 3 * (16 * 9 + 2 * 16)
    x = torch.randn(2, 16, 20, 20)
    g = x
    for i, (c, bn) in enumerate(zip(convs, bns)):
        g = F.relu(g) if i else g
        g = F.conv2d(g, c.weight, stride=2, padding=1, groups=16)
        g = (g - bn.running_mean[:, None, None]) / (bn.running_var[:, None, None] + bn.eps).sqrt() * bn.weight[
            :, None, None
        ] + bn.bias[:, None, None]
    assert g.shape[-2:] == (3, 3)  # 20 -> 10 -> 5 -> 3
    want = x * torch.sigmoid(g).repeat_interleave(7, 2).repeat_interleave(7, 3)[..., :20, :20]
    with torch.no_grad():
        got = block(x)
    assert torch.allclose(got, want, rtol=0, atol=f32_tol(got, want, n=9)), (got - want).abs().max()  # 3x3 convs


def test_global_ge_theta_is_one_depthwise_conv_over_the_whole_map():
    """Global extent: the kernel takes the map size at the first forward (here 7x7), then stays."""
    block = build_block(16, preset("ge_theta"))
    x = torch.randn(2, 16, 7, 7)
    block.eval()(x)
    randomise(block)
    assert block.squeeze.weight.shape == (16, 1, 7, 7) and count_params(block) == 16 * 49 + 2 * 16
    bn = block.squeeze.bn
    g = F.conv2d(x, block.squeeze.weight, groups=16)
    g = (g - bn.running_mean[:, None, None]) / (bn.running_var[:, None, None] + bn.eps).sqrt() * bn.weight[
        :, None, None
    ] + bn.bias[:, None, None]
    with torch.no_grad():
        got, want = block(x), x * torch.sigmoid(g)
    assert torch.allclose(got, want, rtol=0, atol=f32_tol(got, want, n=49)), (got - want).abs().max()  # 7x7 conv
    with pytest.raises(
        ValueError, match=r"built for \(7, 7\) maps got \(9, 9\): train and evaluate at model.input_size"
    ):
        block(torch.randn(2, 16, 9, 9))
    with pytest.raises(ConfigError, match="sizes its weights by each site's map"):
        build_model("cifar_resnet20", preset("ge_theta"), 10)


def test_ge_theta_plus_on_a_local_extent_equals_timms_parameter_free_gather_with_its_mlp():
    """GE with an MLP after a local parameter-free gather: timm 1.0.31 cannot build use_mlp=True
    either, so its ConvMlp is attached by hand to its parameter-free GatherExcite (timm's forward)."""
    from timm.layers.gather_excite import GatherExcite
    from timm.layers.mlp import ConvMlp

    ref = GatherExcite(64, extent=4, use_mlp=False)
    ref.mlp = ConvMlp(64, 4)  # timm's default ReLU, biases
    same_output(ref, build_block(64, preset("se", extent=4)), 64, size=16)


def test_gc_equals_timm_with_add_fusion():
    """Attention pooling + 1x1 -> LayerNorm -> ReLU -> 1x1, added to the input. Deliberate difference:
    our LayerNorm keeps PyTorch's eps 1e-5 (GCNet's code), timm's LayerNorm2d uses 1e-6; set equal here."""
    from timm.layers.global_context import GlobalContext

    ref = GlobalContext(64, fuse_add=True, fuse_scale=False, rd_ratio=1 / 16)
    ref.mlp_add.norm.eps = 1e-5
    same_output(ref, build_block(64, preset("gc")), 64)


@pytest.mark.parametrize("squeeze", ["attention", "none"])
def test_additive_fusion_starts_as_the_identity(squeeze):
    """GCNet zero-initialises the transform's last layer, so a block that adds starts as the identity
    (also inside a backbone, whose He init leaves that layer alone)."""
    model = build_model(
        "cifar_resnet20",
        preset("gc", squeeze=squeeze, excitation="fc" if squeeze == "none" else "context"),
        10,
        input_size=8,
    )
    blocks = [m for m in model.modules() if isinstance(m, ChannelAttention)]
    assert len(blocks) == 9
    x = torch.randn(2, 16, 8, 8)
    for b in blocks:
        assert not b.fc2.weight.any() and not b.fc2.bias.any()
    assert torch.equal(blocks[0](x), x)


# ---------------------------------------------------------------------------- published overheads
RESNET50_BLOCK_WIDTHS = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3  # the output width of each unit


def test_srm_parameter_overhead_on_resnet50_by_arithmetic():
    """SRM per unit: CFC 2C weights (mean, std; no bias) + BN 2C (gamma, beta) = 4C; over the 16 units
    of ResNet-50, 4 * 15,104 = 60,416 parameters. Lee et al. (ICCV 2019, ImageNet table of the authors'
    repository) print 25.56M -> 25.62M."""
    plain = count_params(build_model("resnet50", None, 1000, device="meta"))
    srm = count_params(build_model("resnet50", preset("srm"), 1000, device="meta"))
    assert srm - plain == 4 * sum(RESNET50_BLOCK_WIDTHS) == 60_416
    assert (round(plain / 1e6, 2), round(srm / 1e6, 2)) == (25.56, 25.62)


def test_eca_and_ge_overheads_on_resnet50():
    """ECA: one kernel per unit, k = 5, 5, 5, 7 by stage: 3*5 + 4*5 + 6*5 + 3*7 = 86 parameters
    (Wang et al. quote 80 for their released k = 3, 5, 5, 7: 3*3 + 4*5 + 6*5 + 3*7 = 80).
    GE-theta-: none."""
    plain = count_params(build_model("resnet50", None, 1000, device="meta"))
    assert count_params(build_model("resnet50", preset("eca"), 1000, device="meta")) - plain == 86
    assert count_params(build_model("resnet50", preset("ge_theta_minus"), 1000, device="meta")) == plain


def test_extra_parameters_of_every_module_on_resnet50_by_arithmetic():
    """Each unit's block sits on the branch output, C = 256..2048 channels on 56..7 px maps (224 px)."""
    units = [(c, {256: 56, 512: 28, 1024: 14, 2048: 7}[c]) for c in RESNET50_BLOCK_WIDTHS]
    se = sum(2 * c * (c // 16) + c // 16 + c for c, _ in units)
    ge_theta = sum(c * s * s + 2 * c for c, s in units)  # depthwise kernel over the map, BN
    want = {
        "se": se,
        "eca": 86,
        "cbam": se + 16 * (2 * 49 + 2),
        "ge_theta_minus": 0,
        "ge_theta": ge_theta,
        "ge_theta_plus": ge_theta + se,
        "srm": 60_416,
        "gc": sum(c + 1 + 2 * c * (c // 16) + 3 * (c // 16) + c for c, _ in units),
    }
    assert sorted(want) == PRESETS and (se, ge_theta) == (2_530_992, 5_549_568)
    plain = count_params(build_model("resnet50", None, 1000, device="meta"))
    for name, extra in want.items():
        model = build_model("resnet50", preset(name), 1000, device="meta", input_size=224)
        assert count_params(model) - plain == extra, name
    # SRM's authors print 31.12M for their GE-ResNet-50 (a global depthwise gather): ours + a bias per channel
    assert round((plain + ge_theta + sum(RESNET50_BLOCK_WIDTHS)) / 1e6, 2) == 31.12


def test_elementwise_ops_per_module_match_the_readme_table():
    """Per element of the block's input: pooling(s) + the rescale or add (+ CBAM's 2 poolings and rescale)."""
    per_element = {
        "se": 2,
        "eca": 2,
        "cbam": 6,
        "ge_theta_minus": 2,
        "ge_theta": 1,
        "ge_theta_plus": 1,
        "srm": 3,
        "gc": 1,
    }
    assert sorted(per_element) == PRESETS
    x = torch.zeros(1, 32, 6, 6)
    for name, ops in per_element.items():
        assert build_block(32, preset(name)).elementwise_ops(x) == ops * x.numel(), name


# ---------------------------------------------------------------------------- the whole space runs
def _specs():
    """Every squeeze x excitation x fusion x spatial the space allows, and the ones it refuses."""
    for sq, ex, fusion, spatial in itertools.product(SQUEEZES, EXCITATIONS, ("scale", "add"), ("none", "cbam")):
        keys = EXCITATIONS[ex].takes
        over = {k: None for k in EXCITATION_KEYS if k not in keys}
        if ex == "conv1d":
            over["kernel_size"] = "adaptive"
        if ex == "triplet":
            over["kernel_size"] = 3
        if sq == "gather":
            over["extent"] = 2
        over.update({"groups": 4} if sq == "group" else {}, **({"energy_lambda": 1e-4} if sq == "energy" else {}))
        yield (
            sq,
            ex,
            fusion,
            spatial,
            {"squeeze": sq, "excitation": ex, "fusion": fusion, "spatial": spatial, "reduction": 4, **over},
        )


def _paired(sq: str, ex: str) -> bool:
    """The pairs the registries name (CA's, SimAM's, SGE's and Triplet's own squeeze/excitation), else any."""
    only_sq, only_ex = SQUEEZES[sq].pairs_only_with, EXCITATIONS[ex].pairs_only_with
    return (not only_sq or ex in only_sq) and (not only_ex or sq in only_ex)


MAPS = ("none", "gather", "coord", "energy", "group")  # squeezes that keep a map
ALLOWED = [
    s for s in _specs() if _paired(s[0], s[1]) and not (s[0] in MAPS and s[1] in ("conv1d", "channelwise", "context"))
]
REFUSED = [s for s in _specs() if s not in ALLOWED and _paired(s[0], s[1])]
UNPAIRED = [s for s in _specs() if not _paired(s[0], s[1])]


@pytest.mark.parametrize("sq, ex, fusion, spatial, cfg", ALLOWED, ids=[" ".join(s[:4]) for s in ALLOWED])
def test_every_allowed_combination_runs_forward_and_backward(sq, ex, fusion, spatial, cfg):
    torch.manual_seed(0)
    block = build_block(16, SESpec.from_config(cfg)).train()
    x = torch.randn(3, 16, 6, 6, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in block.parameters())


@pytest.mark.parametrize("sq, ex, fusion, spatial, cfg", REFUSED, ids=[" ".join(s[:4]) for s in REFUSED])
def test_a_map_squeeze_refuses_vector_excitations_naming_the_valid_ones(sq, ex, fusion, spatial, cfg):
    valid = "fc, identity, triplet" if sq == "none" else "fc, identity"
    with pytest.raises(
        ConfigError, match=f"se.excitation='{ex}' needs per-channel vectors.*valid excitations for it: {valid}$"
    ):
        SESpec.from_config(cfg)


@pytest.mark.parametrize("sq, ex, fusion, spatial, cfg", UNPAIRED, ids=[" ".join(s[:4]) for s in UNPAIRED])
def test_a_module_of_its_own_pair_refuses_other_halves(sq, ex, fusion, spatial, cfg):
    with pytest.raises(ConfigError, match=r"works only with se\.(squeeze|excitation)=.*attention=<name> sets both"):
        SESpec.from_config(cfg)


@pytest.mark.parametrize(
    "over, match",
    [
        (
            {"reduction": 8},
            r"se.reduction=8 does not apply to se.excitation='conv1d' \(it applies to: fc, context, coord\)",
        ),
        ({"bias": True}, r"se.bias=True does not apply to se.excitation='conv1d'"),
        ({"kernel_size": 4}, "se.kernel_size=4 must be 'adaptive'"),
        ({"extent": 4}, "se.excitation='conv1d' needs per-channel vectors, but se.squeeze='avg' with se.extent=4"),
    ],
)
def test_eca_refuses_axes_that_do_not_apply(over, match):
    with pytest.raises(ConfigError, match=match):
        preset("eca", **over)


@pytest.mark.parametrize(
    "name, over, match",
    [
        (
            "se",
            {"kernel_size": 3},
            r"se.kernel_size=3 does not apply to se.excitation='fc' \(it applies to: conv1d, triplet\)",
        ),
        ("se", {"squeeze": "max", "extent": 2}, "se.extent=2 applies to squeeze avg or gather, not se.squeeze='max'"),
        ("ge_theta", {"extent": 6}, "must be a power of two"),
        ("srm", {"reduction": 16}, "does not apply to se.excitation='channelwise'"),
        ("gc", {"fusion": "mul"}, "se.fusion='mul' is not a valid choice; valid values: scale, add"),
        ("cbam", {"spatial": "bam"}, "se.spatial='bam' is not a valid choice; valid values: none, cbam"),
        (
            "se",
            {"excitation": "mlp"},
            "se.excitation='mlp' is not a valid choice; valid values: fc, conv1d, channelwise, context, identity",
        ),
    ],
)
def test_other_impossible_points_fail_naming_what_is_valid(name, over, match):
    with pytest.raises(ConfigError, match=match):
        preset(name, **over)


@pytest.mark.parametrize("integration", list(INTEGRATIONS))
@pytest.mark.parametrize("name", PRESETS)
def test_every_module_at_every_site_of_a_cifar_resnet(name, integration):
    torch.manual_seed(0)
    model = build_model("cifar_resnet20", preset(name, integration=integration), 5, input_size=16)
    out = model(torch.randn(2, 3, 16, 16))
    out.logsumexp(1).sum().backward()
    assert out.shape == (2, 5) and len([m for m in model.modules() if isinstance(m, ChannelAttention)]) == 9


@functools.lru_cache
def plain_count(backbone: str, size: int) -> Complexity:
    """The backbone without attention, counted once for every module compared with it."""
    return count(build_model(backbone, None, 10, device="meta"), size)


@pytest.mark.parametrize(
    "backbone",
    [
        "resnet50",
        "resnext50_32x4d",
        "mobilenet_v1",
        "shufflenet_v1_g3",
        "vgg16_bn",
        "bn_inception",
        "preact_resnet164",
        "shake_shake26_2x96d",
    ],
)
@pytest.mark.parametrize("name", PRESETS)
def test_every_module_builds_and_counts_on_every_backbone(name, backbone):
    size = 32 if backbone in ("preact_resnet164", "shake_shake26_2x96d") else 224
    plain = plain_count(backbone, size)
    ours = count(build_model(backbone, preset(name), 10, device="meta", input_size=size), size)
    assert ours.elementwise_ops > 0 and ours.macs >= plain.macs
    assert (ours.params == plain.params) == (name == "ge_theta_minus")


def test_attention_preset_composes_and_a_wrong_axis_fails_before_any_work(tmp_path, compose_cfg):
    cfg = compose_cfg("attention=eca")
    assert OmegaConf.to_container(cfg.se)["excitation"] == "conv1d" and cfg.se.reduction is None
    proc = run_cli("run.app", "attention=eca", "se.reduction=8", "task=profile", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "se.reduction=8 does not apply to se.excitation='conv1d' (it applies to: fc, context, coord)" in proc.stderr
    assert all(json.loads(p.read_text())["status"] == "failed" for p in tmp_path.rglob("metrics.json"))
    proc = run_cli("run.app", "attention=ecaa", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "attention/ecaa" in proc.stderr and "ge_theta_minus" in proc.stderr


def test_presets_state_only_where_they_differ_from_ses_block(compose_cfg):
    """conf/attention/se.yaml is se.yaml's block; every other preset of a block starts from it (its defaults)
    and states only the keys that differ, yet sets the whole block over a model's published SE
    (EfficientNet-B0: r = 4 of the unit's input, SiLU, after the depthwise conv)."""
    se = preset_keys("se")
    assert se == {k: se_yaml()[k] for k in se}
    names = [p.stem for p in sorted((CONF / "attention").glob("*.yaml"))]
    blocks = [n for n in names if "defaults" in yaml.safe_load((CONF / "attention" / f"{n}.yaml").read_text())]
    assert sorted(set(names) - set(blocks)) == ["bam", "se", "sk"]
    for name in blocks:
        own = yaml.safe_load((CONF / "attention" / f"{name}.yaml").read_text())
        assert own.pop("defaults") == ["se", "_self_"] and all(se[k] != v for k, v in own.items()), name
        cfg = compose_cfg("model=efficientnet_b0", f"attention={name}")
        composed = OmegaConf.to_container(cfg.se)
        assert {k: composed[k] for k in se} == preset_keys(name) and composed["integration"] == "conv3x3", name


# ---------------------------------------------------------------------------- the studies
def test_resnet50_attention_study_profiles_every_module_and_prints_its_table(tmp_path):
    proc = run_cli("run.app", "-m", "experiment=attention/resnet50_imagenet", "task=profile", cwd=tmp_path)
    for label in ("ResNet-50", "SE", "ECA", "CBAM", "GE-θ⁻", "GE-θ", "SRM", "GC", "CA", "SimAM", "SGE", "BAM", "SK"):
        assert f"| {label} |" in proc.stdout, label
    assert "Sources:" in proc.stdout and "BangguWu/ECANet" in proc.stdout
    import pandas as pd

    t = pd.read_csv(tmp_path / "runs/attention/resnet50_imagenet/table.csv").set_index("row")
    extra = (t["params_m"] - t.loc["resnet50", "params_m"]) * 1e6
    assert round(extra["srm"]) == 60_416 and round(extra["eca"]) == 86 and round(extra["ge_theta_minus"]) == 0
    assert round(extra["se"]) == 2_530_992  # SE-ResNet-50 28,088,024 - 25,557,032 (README, Complexity)
    assert round(t.loc["srm", "params_m"], 2) == t.loc["srm", "params_m_paper"] == 25.62
    assert (t["completed"] == 1).all()


@pytest.mark.slow
def test_cifar_attention_proxy_trains_on_digits_and_draws_the_extra_cost_figures(tmp_path):
    """Every row, one seed, one epoch of ResNet-20 on 320 of the digits (data.subset): the sweep ends in its
    table and in error vs extra params / extra GFLOPs over the plain ResNet."""
    proc = run_cli(
        "run.app",
        "-m",
        "experiment=attention/cifar_proxy",
        "data=digits",
        "data.subset={train: 320}",
        "recipe=quick",
        "recipe.epochs=1",
        "model=cifar_resnet20",
        "hydra.sweeper.params.seed=0",
        cwd=tmp_path,
    )
    study = tmp_path / "runs/attention/cifar_proxy"
    records = [json.loads(p.read_text()) for p in study.rglob("metrics.json")]
    assert len(records) == 14 and all(r["status"] == "completed" for r in records)
    for name in ("extra_params", "extra_gflops"):
        assert (study / "figures" / f"{name}.png").stat().st_size > 10_000
    assert "| ResNet-56 |" in squash(proc.stdout) and "| SRM |" in squash(proc.stdout)  # the proxy's row labels
