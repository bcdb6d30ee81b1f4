"""The tasks a job runs (``task=``): each takes the job's config and its :class:`Job` record and
returns the metrics its record gets. ``profile``: complexity (Tables 2-5, 10-16's params and
GFLOPs); ``train``: the error columns; ``excitation``: Figs. 6/7; ``eval``: published weights;
``detect``: Table 7's COCO AP (``detect/``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from .. import data, distributed
from ..complexity import count, cpu_latency_ms
from ..errors import ConfigError
from ..records import Job, predictions, read_record, write_history
from ..train import CHECKPOINT, announce_compile, decide_compile, evaluate, runtime, train
from . import activations, detect, tracking
from .assemble import JobModel, eval_preprocessing, load_data, make_model

log = logging.getLogger("senet_ablate")


def profile(cfg: DictConfig, job: Job, model: JobModel) -> dict:
    """Params, MACs, SE elementwise ops and paper-convention GFLOPs; no data touched. On detection data:
    the detector's (``detect.task.profile``)."""
    if detect.is_detection(cfg):
        metrics = detect.profile(cfg)
        log.info(
            "%s detector at %d px square, %d proposals: params %.3fM  GFLOPs %.2f",
            cfg.get("row") or cfg.model.name,
            cfg.data.image_size,
            metrics["proposals"],
            metrics["params_m"],
            metrics["gflops"],
        )
        return metrics
    metrics = {**count(model.module, cfg.model.input_size).as_dict(), "num_classes": cfg.model.num_classes}
    if cfg.profile.latency:  # the model was built on the CPU for this
        metrics["latency_ms_cpu_b1"] = cpu_latency_ms(model.module, cfg.model.input_size, cfg.profile.latency_runs)
    log.info(
        "%s at %d px, %d classes: params %.3fM  MACs %.4fG  SE elementwise %.2fM  GFLOPs %.4f",
        cfg.get("row") or cfg.model.name,
        cfg.model.input_size,
        cfg.model.num_classes,
        metrics["params"] / 1e6,
        metrics["macs"] / 1e9,
        metrics["elementwise_ops"] / 1e6,
        metrics["gflops"],
    )
    return metrics


def train_task(cfg: DictConfig, job: Job, built: JobModel) -> dict:
    """Train on ``data``, evaluating every epoch; complexity is counted on the trained model.
    Under ``torchrun`` every rank runs this; rank 0 alone writes the record and checkpoints."""
    rt, dist = runtime(cfg), distributed.dist_context()
    if dist.active and cfg.train.sync_bn and rt.device.type != "cuda":
        raise ConfigError(
            "train.sync_bn=true needs CUDA (torch's SyncBatchNorm has no CPU kernel); "
            "use train.sync_bn=false for gloo/CPU runs"
        )
    if cfg.recipe.batch_size < dist.world:
        raise ConfigError(
            f"recipe.batch_size={cfg.recipe.batch_size} is the global batch: it must be at least "
            f"the number of processes ({dist.world})"
        )
    d = load_data(cfg.data, cfg.recipe.batch_size, cfg.recipe.eval_batch_size, rt, cfg.seed, cfg.get("cache_dir"), dist)
    model = built.for_classes(cfg, d.num_classes)
    rt, compile_why = decide_compile(cfg, rt, cfg.recipe.epochs * len(d.train))
    metrics = count(model, d.image_size).as_dict()
    log.info(
        "%s on %s (%d train / %d %s images, %d classes): %.3fM params, %s, %d epochs",
        cfg.get("row") or cfg.model.name,
        cfg.data.name,
        d.train.num_samples,
        d.eval.num_samples,
        d.eval_split,
        d.num_classes,
        metrics["params_m"],
        rt.device,
        cfg.recipe.epochs,
    )
    announce_compile(rt, compile_why)  # before the first step's compile: minutes of silence otherwise
    metrics.update(
        **d.load_record(),
        **rt.setup(),
        compile_choice=compile_why,
        eval_images=d.eval.num_samples,
        num_classes=d.num_classes,
        world_size=dist.world,
        batch_per_process=-(-cfg.recipe.batch_size // dist.world),
        data_workers=d.workers,
    )
    tracker = tracking.create(cfg, job.record["config"], job.out_dir) if dist.main else tracking.NoTracker()

    def skipped() -> dict:
        bad = d.skipped_images()
        return {"skipped_images": len(bad), "skipped_image_paths": bad[:100]} if bad else {}

    def on_epoch(summary: dict, history: list[dict]) -> None:
        if dist.main:
            write_history(job.out_dir, history)
        job.update(**metrics, **summary, **skipped())
        tracker.log_epoch(history[-1])

    try:
        result = {**train(cfg, model, d, job.out_dir, on_epoch, job.record["fingerprint"], dist, rt), **skipped()}
    except BaseException as e:
        tracker.finish({"reason": str(e)}, distributed.ended_as(e))
        raise
    finally:
        d.close()  # DataLoader workers stop now, whatever happened
    tracker.finish({**metrics, **result}, "completed")
    return {**metrics, **result}


def excitation_task(cfg: DictConfig, job: Job, built: JobModel) -> dict:
    """Paper Figs. 6/7: class-wise excitation statistics of the trained run ``excitation.run``, or
    of ``model.weights`` (e.g. the published SE-ResNet-50) on the eval split of ``data``."""
    if cfg.excitation.run:
        run_dir = Path(str(cfg.excitation.run)).expanduser()
        if not (run_dir / CHECKPOINT).is_file():
            raise ConfigError(f"excitation.run={cfg.excitation.run!r} must be a trained run dir holding {CHECKPOINT}")
        rec = read_record(run_dir)
        trained = OmegaConf.create(rec["config"])
        if cfg.data.get("root") is not None and not OmegaConf.is_missing(cfg.data, "root"):
            trained.data.root = cfg.data.root  # the data may have moved since training
        data_cfg, source = trained.data, str(run_dir)
    elif cfg.model.get("weights"):
        trained, data_cfg, source = cfg, eval_preprocessing(cfg), str(cfg.model.weights)
    else:
        raise ConfigError("task=excitation needs excitation.run (a trained run dir) or model.weights")
    rt = runtime(trained)
    d = load_data(data_cfg, 1, cfg.excitation.batch_size, rt, trained.seed, cfg.get("cache_dir"))
    if cfg.excitation.run:
        model = make_model(trained, num_classes=d.num_classes)
        model.load_state_dict(torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=True)["model"])
    else:
        model = built.for_classes(cfg, d.num_classes)
    classes = list(cfg.excitation.classes) if cfg.excitation.classes else list(range(min(4, d.num_classes)))
    bad = [c for c in classes if not 0 <= c < d.num_classes]
    if bad:
        raise ConfigError(f"excitation.classes={classes}: {bad} not in 0..{d.num_classes - 1}")
    try:
        result = activations.collect(model, d.eval, classes, cfg.excitation.per_class, rt.device)
    finally:
        d.close()
    activations.write(result, job.out_dir)
    title = f"{trained.model.name} on {trained.data.name}"
    figs = activations.draw(result, job.out_dir, cfg.excitation.channels, cfg.seed, title)
    log.info(
        "excitation of %s at %s, classes %s: %s",
        source,
        ", ".join(result),
        classes,
        ", ".join(str(f) for f in figs if f.suffix == ".png"),
    )
    return {
        "excitation_blocks": list(result),
        "excitation_classes": classes,
        "images_per_class": next(iter(result.values()))["n"],
        "analysed_run": source,
    }


def eval_task(cfg: DictConfig, job: Job, built: JobModel) -> dict:
    """Top-1/top-5 error of ``model.weights`` on the eval split of ``data``."""
    rt = runtime(cfg)
    dcfg = eval_preprocessing(cfg)
    d = load_data(dcfg, 1, cfg.eval.batch_size, rt, cfg.seed, cfg.get("cache_dir"))
    try:
        model = built.for_classes(cfg, d.num_classes).to(rt.device)
        t0 = time.perf_counter()
        top1, top5, (labels, top) = evaluate(model, d.eval, rt, keep=True)
        predictions.write(job.out_dir, labels, top, d.eval_order())
    finally:
        d.close()
    plain = OmegaConf.to_container(dcfg, resolve=True)
    pre = {
        k: plain[k]
        for k in ("image_size", "interpolation", "mean", "std", "channel_order", "pixel_range")
        if k in plain
    }
    pre["resize"] = None if dcfg.get("in_memory") else data.eval_resize(dcfg)  # the side actually used
    log.info(
        "%s with %s on %s/%s (%d images): top-1 err %.2f%%  top-5 err %.2f%%",
        cfg.model.name,
        cfg.model.weights,
        cfg.data.name,
        d.eval_split,
        d.eval.num_samples,
        top1,
        top5,
    )
    return {
        **count(model, int(dcfg.image_size)).as_dict(),
        "top1_err": top1,
        "top5_err": top5,
        "eval_images": d.eval.num_samples,
        "num_classes": d.num_classes,
        "eval_split": d.eval_split,
        "eval_time_s": time.perf_counter() - t0,
        "preprocess": pre,
        "weights": str(cfg.model.weights),
        **d.load_record(),
        **{k: v for k, v in rt.setup().items() if k != "compile"},
    }


TASKS = {
    "profile": profile,
    "train": train_task,
    "excitation": excitation_task,
    "eval": eval_task,
    "detect": detect.detect_task,
}
