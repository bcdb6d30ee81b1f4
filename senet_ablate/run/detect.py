"""``task=detect`` (paper Table 7) and the detector side of ``task=profile``: the config's classifier
trunk (every ``se.*`` axis, ``model.*`` option and ``model.weights``) in Faster R-CNN + FPN on COCO-format
data, trained per the recipe and scored in COCO AP."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import torch
from omegaconf import DictConfig
from torch import nn

from .. import distributed
from ..errors import ConfigError
from ..records import Job, write_history
from ..train import is_scheduler, runtime, seed_everything
from .assemble import JobModel, make_model

if TYPE_CHECKING:
    from torchvision.models.detection import FasterRCNN

    from ..detect.coco import CocoSplit

# senet_ablate.detect (and torchvision's detection models, ~1.3 s of imports) loads when a detection job
# needs it, not with every job of the app

log = logging.getLogger("senet_ablate")
POSITIVE = ("max_size", "fpn_channels", "proposals_train", "proposals_test", "rois_per_image")  # detect.* integers


def is_detection(cfg: DictConfig) -> bool:
    return (cfg.get("data") or {}).get("kind") == "detection"


def check(cfg: DictConfig, meta_model: nn.Module) -> tuple[list[int], list[int]]:
    """Config-time checks of a detection job; returns the trunk's taps (:func:`model.taps`)."""
    if cfg.task == "detect" and not is_detection(cfg):
        raise ConfigError(
            f"task=detect needs detection data (data=coco or data=cifar_det); data={cfg.data.name} is not"
        )
    d = cfg.detect
    values = {"data.image_size": cfg.data.image_size, **{f"detect.{k}": d[k] for k in POSITIVE}}
    for key, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{key}={v!r} must be a positive integer")
    if d.max_size < cfg.data.image_size:
        raise ConfigError(f"detect.max_size={d.max_size} must be >= data.image_size ({cfg.data.image_size})")
    if cfg.task == "detect" and not cfg.data.get("root"):
        raise ConfigError("task=detect needs data.root (a COCO-format directory; senet-detset makes one offline)")
    if not isinstance(d.train, bool):
        raise ConfigError(f"detect.train={d.train!r} must be true or false")
    if isinstance(d.trainable_stages, bool) or d.trainable_stages not in range(6):
        raise ConfigError(f"detect.trainable_stages={d.trainable_stages!r} must be an integer from 0 to 5")
    if cfg.task == "detect" and is_scheduler(cfg.recipe):
        raise ConfigError(
            f"recipe.schedule={cfg.recipe.schedule._target_} (an LRScheduler) is for task=train; task=detect "
            "sets the lr every step: give a function (epoch) -> factor, or a built-in schedule"
        )
    from ..detect.model import taps

    return taps(meta_model, cfg.model.name)


def build(
    cfg: DictConfig, num_classes: int, device: str | torch.device | None = None, weights: dict | None = None
) -> FasterRCNN:
    """The detector for ``num_classes`` object categories (the background added); ``weights``: the
    trunk's state (:func:`assemble.prepare_weights` of a classifier checkpoint or published weights)."""
    from ..detect.model import Trunk, detector, taps

    with torch.device(device) if device is not None else torch.device("cpu"):
        net = make_model(cfg, device=device, num_classes=cfg.model.num_classes or num_classes)
        meta = make_model(cfg, device="meta", num_classes=cfg.model.num_classes or num_classes)
        tapped = taps(meta, cfg.model.name)
        if weights is not None:
            Trunk(net, tapped[0]).load_state_dict(weights)
        d = cfg.detect
        return detector(
            net,
            tapped,
            num_classes + 1,
            trainable_stages=d.trainable_stages,
            fpn_channels=d.fpn_channels,
            min_size=cfg.data.image_size,
            max_size=d.max_size,
            proposals_train=d.proposals_train,
            proposals_test=d.proposals_test,
            rois_per_image=d.rois_per_image,
        )


def profile(cfg: DictConfig) -> dict:
    """Params and GFLOPs of the detector at data.image_size (square), on the meta device (no data)."""
    from ..detect.complexity import detector_complexity

    model = build(cfg, cfg.data.num_classes, device="meta")
    c, proposals = detector_complexity(model, cfg.data.image_size)
    return {**c.as_dict(), "num_classes": cfg.data.num_classes, "proposals": proposals}


def splits(cfg: DictConfig) -> tuple[CocoSplit, CocoSplit]:
    from ..detect.coco import load_split

    train = load_split(cfg.data.root, cfg.data.train_split, cfg.data.num_classes)
    val = load_split(cfg.data.root, cfg.data.eval_split, cfg.data.num_classes)
    if train.category_ids != val.category_ids:
        raise ConfigError(f"{train.json_path} and {val.json_path} list different categories")
    return train, val


def detect_task(cfg: DictConfig, job: Job, built: JobModel) -> dict:
    """Train the detector, score COCO AP on the eval split; complexity counted as ``profile`` does.
    Computes in fp32 (bf16 autocast is not applied to the detector)."""
    rt = dataclasses.replace(runtime(cfg), amp=False, channels_last=False, compile=None)
    dist = distributed.dist_context()
    train, val = splits(cfg)
    seed_everything(cfg.seed, cfg.deterministic)
    model = build(cfg, train.num_classes, weights=built.weights)
    metrics = {
        **profile(cfg),
        **rt.setup(),
        "world_size": dist.world,
        "train_images": len(train.images),
        "eval_images": len(val.images),
        "classes": train.num_classes,
    }
    log.info(
        "%s detector on %s (%d train / %d %s images, %d classes): %.3fM params, %s, %d epochs",
        cfg.get("row") or cfg.model.name,
        cfg.data.name,
        len(train.images),
        len(val.images),
        cfg.data.eval_split,
        train.num_classes,
        metrics["params_m"],
        rt.device,
        cfg.recipe.epochs,
    )

    def on_epoch(history: list[dict]) -> None:
        if dist.main:
            write_history(job.out_dir, history)
        job.update(**metrics, epochs_done=history[-1]["epoch"])

    from ..detect.loop import train_detector

    result = train_detector(cfg, model, train, val, job.out_dir, on_epoch, job.record["fingerprint"], dist, rt)
    return {**metrics, **result}
