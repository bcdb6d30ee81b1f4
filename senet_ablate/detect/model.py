"""Faster R-CNN with an FPN over a trunk of the zoo (paper Table 7): torchvision's detector, our trunk.

The trunk is any backbone of the stage frame (``layers.Backbone``) with a stage ending at each of the
strides 4, 8, 16 and 32: the ResNet family (ResNet, ResNeXt, SENet-154) and the MobileNet / MBConv nets.
The FPN reads the last stage at each stride, as torchvision's reads ``layer1``..``layer4``. Every SE axis,
attention preset, BAM between the stages and SK units come with the trunk as built for classification.
BN in the trunk is frozen (its affine terms and statistics become constants), as Detectron trains; only
the last ``trainable_stages`` groups of the trunk learn (torchvision's ``trainable_backbone_layers``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

from ..errors import ConfigError
from ..models.layers import Backbone

STRIDES = (4, 8, 16, 32)  # the FPN's inputs: C2..C5
TRUNK_KEYS = ("stem", "stages", "between")  # a classifier's keys the trunk keeps (not its head or fc)


class FrozenBatchNorm(FrozenBatchNorm2d):
    """torchvision's frozen BN, also over (N, C) inputs (BAM's channel MLP)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return super().forward(x)
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return x * scale + (self.bias - self.running_mean * scale)


def freeze_bn(module: nn.Module) -> nn.Module:
    """Every BatchNorm of ``module`` replaced by a :class:`FrozenBatchNorm` with its values."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            frozen = FrozenBatchNorm(child.num_features, eps=child.eps).to(child.running_mean.device)
            with torch.no_grad():
                for key in ("weight", "bias", "running_mean", "running_var"):
                    getattr(frozen, key).copy_(getattr(child, key))
            setattr(module, name, frozen)
        else:
            freeze_bn(child)
    return module


def taps(meta_net: nn.Module, name: str) -> tuple[list[int], list[int]]:
    """Indices and output widths of the last stage ending at each stride of :data:`STRIDES`, from a dry
    pass of the trunk built on the meta device (free)."""
    if not isinstance(meta_net, Backbone):
        raise ConfigError(
            f"task=detect needs a trunk of the stage frame (the ResNet family, MobileNets, MBConv nets); "
            f"{name} has none"
        )
    size, last = 256, {}
    x = torch.zeros(1, 3, size, size, device="meta")
    meta_net.eval()
    with torch.no_grad():
        x = meta_net.stem(x)
        for i, stage in enumerate(meta_net.stages):
            x = stage(x)
            if hasattr(meta_net, "between") and str(i) in meta_net.between:
                x = meta_net.between[str(i)](x)
            last[size // x.shape[-1]] = (i, x.shape[1])
    missing = [s for s in STRIDES if s not in last]
    if missing:
        raise ConfigError(
            f"model={name} has no stage ending at stride {', '.join(map(str, missing))}: the FPN needs four strided "
            "stages (strides 4, 8, 16, 32), as the ResNet family (resnet*, resnext*, senet154) and the MobileNet / "
            "MBConv nets have"
        )
    return [last[s][0] for s in STRIDES], [last[s][1] for s in STRIDES]


class Trunk(nn.Module):
    """A classifier's stem and stages (and the modules between them), returning the maps of the ``taps``
    stages as the FPN's inputs '0'..'3'. Its state-dict keys are the classifier's, less the head."""

    def __init__(self, net: Backbone, tapped: list[int]):
        super().__init__()
        self.stem, self.stages, self.tapped = net.stem, net.stages, list(tapped)
        if hasattr(net, "between"):
            self.between = net.between

    def forward(self, x: torch.Tensor) -> OrderedDict:
        out = OrderedDict()
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if hasattr(self, "between") and str(i) in self.between:
                x = self.between[str(i)](x)
            if i in self.tapped:
                out[str(len(out))] = x
        return out

    def groups(self) -> list[list[nn.Module]]:
        """The trunk in five groups as torchvision counts trainable layers: the stem, then the stages up to
        each tapped one (any stage before stride 4 goes with the first), with their between-stage modules."""
        between = getattr(self, "between", {})
        groups, start = [[self.stem]], 0
        for t in self.tapped:
            idx = range(start, t + 1)
            groups.append([self.stages[i] for i in idx] + [between[str(i)] for i in idx if str(i) in between])
            start = t + 1
        return groups


class TrunkWithFPN(nn.Module):
    """``body`` (the trunk) then torchvision's FPN with a max-pooled extra level (P6), as ``BackboneWithFPN``."""

    def __init__(self, body: Trunk, in_channels: list[int], out_channels: int = 256):
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict:
        return self.fpn(self.body(x))


def set_trainable(body: Trunk, trainable_stages: int) -> None:
    """Freeze all but the last ``trainable_stages`` of the five groups (0: a frozen trunk; 5: all of it)."""
    if isinstance(trainable_stages, bool) or not isinstance(trainable_stages, int) or not 0 <= trainable_stages <= 5:
        raise ConfigError(f"detect.trainable_stages={trainable_stages!r} must be an integer from 0 to 5")
    groups = body.groups()
    for k, group in enumerate(groups):
        for m in group:
            m.requires_grad_(k >= len(groups) - trainable_stages)


def detector(
    net: Backbone,
    tapped: tuple[list[int], list[int]],
    num_classes: int,
    *,
    trainable_stages: int = 3,
    fpn_channels: int = 256,
    min_size: int = 800,
    max_size: int = 1333,
    proposals_train: int = 2000,
    proposals_test: int = 1000,
    rois_per_image: int = 512,
) -> FasterRCNN:
    """Faster R-CNN (torchvision's RPN and box head; ``num_classes`` with the background) over ``net``'s
    trunk; ``tapped``: :func:`taps` of ``net``; ``min_size``/``max_size``: the resize of every input (shorter
    side, capped longer side), as torchvision's and Detectron's 800 / 1333. ``proposals_train/test``: the
    RPN's proposals kept before and after NMS (2,000 / 1,000, Detectron's FPN values); ``rois_per_image``:
    the box head's sampled RoIs an image in training (512)."""
    stages, widths = tapped
    body = freeze_bn(Trunk(net, stages))
    set_trainable(body, trainable_stages)
    backbone = TrunkWithFPN(body, widths, fpn_channels)
    return FasterRCNN(
        backbone,
        num_classes=num_classes,
        min_size=min_size,
        max_size=max_size,
        rpn_pre_nms_top_n_train=proposals_train,
        rpn_post_nms_top_n_train=proposals_train,
        rpn_pre_nms_top_n_test=proposals_test,
        rpn_post_nms_top_n_test=proposals_test,
        box_batch_size_per_image=rois_per_image,
    )
