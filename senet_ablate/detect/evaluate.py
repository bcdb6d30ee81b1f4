"""COCO AP of a detector on an eval split (paper Table 7's AP and AP@IoU=0.5): pycocotools' COCOeval,
the reference every detection paper reports, over the split's own instances JSON."""

from __future__ import annotations

import contextlib
import io

import torch
from torch import nn

from ..errors import ConfigError
from .coco import Batches, CocoSplit

# COCOeval.stats[0..5], in percent as the paper prints them
AP_KEYS = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")


def cocoeval() -> tuple[type, type]:
    """pycocotools' ``COCO`` and ``COCOeval``, imported on first use (an optional dependency: ``[detect]``)."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ConfigError(
            "task=detect scores COCO AP with pycocotools: pip install 'senet-ablate[detect]' (or pycocotools)"
        ) from None
    return COCO, COCOeval


def detections(model: nn.Module, split: CocoSplit, device: torch.device, batch_size: int = 8) -> list[dict]:
    """The model's detections on every image of ``split`` as COCO result dicts (xywh, JSON category ids)."""
    model.eval()
    order = list(range(len(split.images)))
    batches = Batches(split, [order[i : i + batch_size] for i in range(0, len(order), batch_size)], 0, 0, False)
    out = []
    with torch.no_grad():
        for b in range(len(batches)):
            images, targets = batches[b]
            for target, det in zip(targets, model([x.to(device) for x in images])):
                xyxy = det["boxes"].float().cpu()
                wh = xyxy[:, 2:] - xyxy[:, :2]
                for box, size, score, label in zip(
                    xyxy.tolist(), wh.tolist(), det["scores"].tolist(), det["labels"].tolist()
                ):
                    out.append(
                        {
                            "image_id": target["image_id"],
                            "category_id": split.category_ids[label - 1],
                            "bbox": [box[0], box[1], size[0], size[1]],
                            "score": score,
                        }
                    )
    return out


def coco_ap(split: CocoSplit, results: list[dict]) -> dict:
    """AP, AP50, AP75, AP small/medium/large (%) of ``results`` against the split's JSON; 0 without any."""
    if not results:
        return dict.fromkeys(AP_KEYS, 0.0)
    COCO, COCOeval = cocoeval()
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
        gt = COCO(str(split.json_path))
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # COCOeval gives -1 where a size has no ground truth: reported as NaN, not as a score
    return {k: (100 * float(v) if v >= 0 else float("nan")) for k, v in zip(AP_KEYS, ev.stats[:6])}


def evaluate_ap(model: nn.Module, split: CocoSplit, device: torch.device, batch_size: int = 8) -> dict:
    """COCO AP (:data:`AP_KEYS`, %) of ``model``'s detections on ``split``."""
    return coco_ap(split, detections(model, split, device, batch_size))
