"""The Hydra entry point (``senet-ablate``): compose one job's config, validate it, run its task,
write its run record.

A study preset (``experiments/``) lists its table rows, each a short list of overrides; the
sweep iterates ``row=...`` and each job is composed with the row's overrides placed before the
command line's (``rows.py``), so a row may also pick a config group (e.g. ``model=resnet101``).
"""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import hydra
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

import torch

from . import data, excitation, launch, tracking, weights
from .complexity import count, cpu_latency_ms
from .errors import ConfigError
from .keys import fingerprint
from .models import NOT_OPTIONS, build_model
from .records import provenance, read_record, write_history, write_record
from .rows import with_row
from .se import SESpec
from .train import CHECKPOINT, Diverged, check_recipe, evaluate, runtime, seed_everything, train

log = logging.getLogger("senet_ablate")


CONFIG_MODULE = "senet_ablate.conf"  # conf/ of the repository, shipped inside the wheel


# ---------------------------------------------------------------------------- config
def job_config(cfg: DictConfig) -> tuple[DictConfig, list[str]]:
    """The job's config with its study row applied, and its full overrides. The row's overrides
    are normally in front of the job's already (rows.py); a sweeper other than ours leaves that
    to here, at the cost of a second composition."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    if cfg.get("row") is None:
        return cfg, overrides
    rows = (cfg.get("table") or {}).get("rows") or {}
    if cfg.row not in rows:
        where = f"study {cfg.study!r}" if rows else "this config (no experiment with table rows selected)"
        raise ConfigError(f"row={cfg.row!r} is not a row of {where}; valid values: {', '.join(rows) or '(none)'}")
    full = with_row(overrides, cfg.table)
    if full == overrides:
        return cfg, overrides
    name = HydraConfig.get().job.config_name if HydraConfig.initialized() else "config"
    return compose(config_name=name, overrides=full), full


def native_input(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """``task=profile`` of an ImageNet backbone with no data chosen (the default is the digits,
    8 px, 10 classes) counts the backbone at its native input, ``model.native`` (224 px, 1,000
    classes): a profile never reports ResNet-50 at 8 px by accident. ``data=...`` wins."""
    native = cfg.model.get("native")
    chosen = any(o.lstrip("+~").split("=", 1)[0].split(".", 1)[0] == "data" for o in overrides)
    if cfg.get("task") != "profile" or not native or chosen or cfg.data.name != "digits":
        return cfg
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.model.input_size, cfg.model.num_classes = native.image_size, native.num_classes
    log.info("no data chosen: counting %s at its native input, %d px and %d classes (data=... to change it)",
             cfg.model.name, native.image_size, native.num_classes)
    return cfg


def se_spec(cfg: DictConfig) -> SESpec | None:
    spec = SESpec.from_config(OmegaConf.to_container(cfg.se, resolve=True))
    return None if spec.stages == () else spec


def make_model(cfg: DictConfig, device=None, num_classes: int | None = None, state: dict | None = None):
    """The configured backbone; ``state``: weights to load (from :func:`prepare_weights`)."""
    m = cfg.model
    classes = num_classes if num_classes is not None else m.num_classes
    if classes is None:
        raise ConfigError("model.num_classes is null (inferred from the data only when training); "
                          "set data.num_classes or model.num_classes")
    options = {k: v for k, v in OmegaConf.to_container(m, resolve=True).items() if k not in NOT_OPTIONS}
    model = build_model(m.name, se_spec(cfg), classes, device=device, input_size=m.input_size, **options)
    if state is not None:
        model.load_state_dict(state)
    return model


def prepare_weights(cfg: DictConfig, meta_model) -> dict | None:
    """``model.weights`` fetched, renamed and checked against the meta model: before any work,
    a mismatch names the missing, unexpected and mis-shaped keys."""
    source = cfg.model.get("weights")
    if not source:
        return None
    spec = se_spec(cfg)
    weights.check_fit(OmegaConf.to_container(cfg.model, resolve=True),
                      None if spec is None else OmegaConf.to_container(cfg.se, resolve=True), str(source))
    state = weights.prepare(meta_model, str(source), cfg.model.get("weights_file"))
    log.info("weights: %s (%d tensors) fit %s", source, len(state), cfg.model.name)
    return state


def validate(cfg: DictConfig):
    """Everything that can be checked without doing work; raises ConfigError naming the key.
    Returns the model built on the meta device (shapes only)."""
    if cfg.task not in TASKS:
        raise ConfigError(f"task={cfg.task!r} is not a task; valid values: {', '.join(TASKS)}")
    size = cfg.model.get("input_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError(f"model.input_size={size!r} must be a positive integer (224 for ImageNet, 32 for CIFAR)")
    data.check(cfg.data)
    launch.job_threads(cfg.threads)
    if cfg.task == "eval" and not cfg.model.get("weights"):
        raise ConfigError("task=eval needs model.weights (a state-dict file, timm:<name> or torchvision:<name>); "
                          "to evaluate a run of ours, pass its last.pt")
    if cfg.task == "train":
        check_recipe(cfg.recipe)
        launch.PreemptionGuard(cfg.train.preempt_signals)  # checks the signal names
    if cfg.task != "profile" and cfg.model.get("num_classes") is None:
        # from the data: an ImageFolder's class folders, else (train) a placeholder; the loaded data decides
        classes = data.count_classes(cfg.data) or (2 if cfg.task == "train" else None)
        return make_model(cfg, device="meta", num_classes=classes)
    return make_model(cfg, device="meta")  # checks stages and every SE width without allocating memory


# ---------------------------------------------------------------------------- tasks
def profile(cfg: DictConfig, job: "Job") -> dict:
    """Params, MACs, SE elementwise ops and paper-convention GFLOPs; no data touched."""
    metrics = {**count(job.meta_model, cfg.model.input_size).as_dict(), "num_classes": cfg.model.num_classes}
    if cfg.profile.latency:
        metrics["latency_ms_cpu_b1"] = cpu_latency_ms(make_model(cfg), cfg.model.input_size, cfg.profile.latency_runs)
    log.info("%s at %d px, %d classes: params %.3fM  MACs %.4fG  SE elementwise %.2fM  GFLOPs %.4f",
             cfg.get("row") or cfg.model.name, cfg.model.input_size, cfg.model.num_classes, metrics["params"] / 1e6,
             metrics["macs"] / 1e9, metrics["elementwise_ops"] / 1e6, metrics["gflops"])
    return metrics


def train_task(cfg: DictConfig, job: "Job") -> dict:
    """Train on ``data``, evaluating every epoch; complexity is counted on the trained model.
    Under ``torchrun`` every rank runs this; rank 0 alone writes the record and checkpoints."""
    rt = runtime(cfg)
    dist = launch.dist_context()
    if dist.active and cfg.train.sync_bn and rt.device.type != "cuda":
        raise ConfigError("train.sync_bn=true needs CUDA (torch's SyncBatchNorm has no CPU kernel); "
                          "use train.sync_bn=false for gloo/CPU runs")
    if cfg.recipe.batch_size < dist.world:
        raise ConfigError(f"recipe.batch_size={cfg.recipe.batch_size} is the global batch: it must be at least "
                          f"the number of processes ({dist.world})")
    d = data.build(cfg.data, cfg.recipe.batch_size, cfg.recipe.eval_batch_size, rt.device, cfg.seed,
                   dist.rank, dist.world, cache_dir=cfg.get("cache_dir"))
    seed_everything(cfg.seed, cfg.deterministic)  # here: whatever loading the data did, the seed alone sets the init
    model = make_model(cfg, num_classes=d.num_classes, state=job.weights)
    metrics = count(make_model(cfg, device="meta", num_classes=d.num_classes), d.image_size).as_dict()
    log.info("%s on %s (%d train / %d %s images, %d classes): %.3fM params, %s, %d epochs",
             cfg.get("row") or cfg.model.name, cfg.data.name, d.train.num_samples, d.eval.num_samples,
             d.eval_split, d.num_classes, metrics["params_m"], rt.device, cfg.recipe.epochs)
    metrics.update(**d.load_record(), **rt.setup(), world_size=dist.world, batch_per_process=-(-cfg.recipe.batch_size // dist.world),
                   data_workers=getattr(getattr(d.train, "loader", None), "num_workers", 0))
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
        result = {**train(cfg, model, d, job.out_dir, on_epoch, job.record["fingerprint"], dist), **skipped()}
    except BaseException as e:
        tracker.finish({"reason": str(e)}, ended_as(e))
        raise
    finally:
        d.close()  # DataLoader workers stop now, whatever happened
    tracker.finish({**metrics, **result}, "completed")
    return {**metrics, **result}


def excitation_task(cfg: DictConfig, job: "Job") -> dict:
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
    d = data.build(data_cfg, 1, cfg.excitation.batch_size, rt.device, trained.seed, cache_dir=cfg.get("cache_dir"))
    if cfg.excitation.run:
        model = make_model(trained, num_classes=d.num_classes)
        model.load_state_dict(torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=True)["model"])
    else:
        model = make_model(cfg, num_classes=d.num_classes, state=job.weights)
    classes = list(cfg.excitation.classes) if cfg.excitation.classes else list(range(min(4, d.num_classes)))
    bad = [c for c in classes if not 0 <= c < d.num_classes]
    if bad:
        raise ConfigError(f"excitation.classes={classes}: {bad} not in 0..{d.num_classes - 1}")
    try:
        result = excitation.collect(model, d.eval, classes, cfg.excitation.per_class, rt.device)
    finally:
        d.close()
    excitation.write(result, job.out_dir)
    title = f"{trained.model.name} on {trained.data.name}"
    figs = excitation.draw(result, job.out_dir, cfg.excitation.channels, cfg.seed, title)
    log.info("excitation of %s at %s, classes %s: %s", source, ", ".join(result), classes,
             ", ".join(str(f) for f in figs if f.suffix == ".png"))
    return {"excitation_blocks": list(result), "excitation_classes": classes,
            "images_per_class": next(iter(result.values()))["n"], "analysed_run": source}


def eval_preprocessing(cfg: DictConfig) -> DictConfig:
    """The data config with the weights' own eval preprocessing (input size, resize, mean/std,
    interpolation; timm/torchvision metadata) unless ``eval.preprocess=data``."""
    if cfg.eval.preprocess not in ("weights", "data"):
        raise ConfigError(f"eval.preprocess={cfg.eval.preprocess!r} is not valid; valid values: weights, data")
    pre = weights.preprocessing(str(cfg.model.weights)) if cfg.eval.preprocess == "weights" else None
    d = cfg.data.copy()
    if pre:
        with open_dict(d):
            d.update(pre)
    return d


def eval_task(cfg: DictConfig, job: "Job") -> dict:
    """Top-1/top-5 error of ``model.weights`` on the eval split of ``data``."""
    rt = runtime(cfg)
    dcfg = eval_preprocessing(cfg)
    d = data.build(dcfg, 1, cfg.eval.batch_size, rt.device, cfg.seed, cache_dir=cfg.get("cache_dir"))
    try:
        model = make_model(cfg, num_classes=d.num_classes, state=job.weights).to(rt.device)
        t0 = time.perf_counter()
        top1, top5 = evaluate(model, d.eval, rt)
    finally:
        d.close()
    plain = OmegaConf.to_container(dcfg, resolve=True)
    pre = {k: plain[k] for k in ("image_size", "interpolation", "mean", "std", "channel_order", "pixel_range")
           if k in plain}
    pre["resize"] = None if dcfg.get("in_memory") else data.eval_resize(dcfg)  # the side actually used
    log.info("%s with %s on %s/%s (%d images): top-1 err %.2f%%  top-5 err %.2f%%", cfg.model.name,
             cfg.model.weights, cfg.data.name, d.eval_split, d.eval.num_samples, top1, top5)
    return {**count(job.meta_model, int(dcfg.image_size)).as_dict(), "top1_err": top1, "top5_err": top5,
            "eval_images": d.eval.num_samples, "eval_split": d.eval_split, "eval_time_s": time.perf_counter() - t0,
            "preprocess": pre, "weights": str(cfg.model.weights), **d.load_record(),
            **{k: v for k, v in rt.setup().items() if k != "compile"}}


TASKS = {"profile": profile, "train": train_task, "excitation": excitation_task, "eval": eval_task}


# ---------------------------------------------------------------------------- record
class Job:
    """One job's output dir and its record, rewritten whole on every update."""

    def __init__(self, out_dir: Path, record: dict):
        self.out_dir, self.record, self.meta_model, self.weights = out_dir, record, None, None
        self.writer = launch.env_rank() == 0  # under torchrun, rank 0 alone writes

    def update(self, **fields) -> None:
        self.record.update(fields)
        if self.writer:
            write_record(self.out_dir, self.record)


def to_log_file(message: str) -> None:
    """An error line for the job's log file only (the console gets the message from Hydra)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def hydra_context() -> dict:
    """The job's number in its sweep and the config-group options it was composed from
    (``data: cifar10_jpeg`` where the config says only ``data.name: imagefolder``): what a table
    of any sweep orders and names its rows by."""
    if not HydraConfig.initialized():
        return {}
    hc = HydraConfig.get()
    choices = {k: v for k, v in (hc.runtime.choices or {}).items() if not k.startswith("hydra/")}
    return {"job_num": hc.job.get("num"), "choices": choices}


def previous(out_dir: Path) -> dict | None:
    try:
        return read_record(out_dir)
    except (OSError, ValueError):
        return None


def run(cfg: DictConfig) -> dict:
    """Run one job and write its record; a failure is recorded, then re-raised."""
    out_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()
    job = Job(out_dir, {
        "status": "running", "task": cfg.get("task"), "study": cfg.get("study"), "row": cfg.get("row"),
        "seed": cfg.get("seed"), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **provenance(),
        "host": os.uname().nodename, "pid": os.getpid(), **hydra_context(),
    })
    prev = previous(out_dir)
    keep = prev is not None and prev.get("status") == "completed"  # never overwrite a finished record
    if prev is not None and prev.get("status") == "preempted":
        job.record["preemptions"] = prev.get("preemptions", 0) + 1
    try:
        cfg, overrides = job_config(cfg)
        cfg = native_input(cfg, overrides)
        job.record["overrides"] = overrides
        job.record["config"] = OmegaConf.to_container(cfg, resolve=True)
        job.meta_model = validate(cfg)
        job.weights = prepare_weights(cfg, job.meta_model)
        job.record["fingerprint"] = fingerprint(job.record["config"])
        if keep:
            if prev.get("fingerprint") == job.record["fingerprint"]:
                log.info("skipping %s: already completed (delete its metrics.json to run it again)", out_dir)
                return prev
            raise ConfigError(f"{out_dir} holds a completed run of a different config; delete that dir "
                              "or choose another runs_dir/study to keep both")
        job.update(threads=launch.set_threads(cfg.threads))
        job.record.update(TASKS[cfg.task](cfg, job))
    except (launch.Interrupted, KeyboardInterrupt) as e:
        interrupted(job, e, keep)
    except launch.Preempted as p:
        job.update(status="preempted", reason=str(p), preempted_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        log.warning("%s", p)
        launch.hand_over(p)  # submitit requeues; otherwise exit 128 + signal for SLURM/torchrun to restart
    except BaseException as e:
        reason = str(e) if isinstance(e, (ConfigError, Diverged)) else f"{type(e).__name__}: {e}"
        if not keep:
            job.update(status="failed", reason=reason, failed_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        to_log_file(f"job failed: {reason}")  # Hydra prints the error on the console, once
        raise
    job.update(status="completed", finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return job.record


def ended_as(e: BaseException) -> str:
    """The status a job that raised ``e`` ends with."""
    if isinstance(e, (launch.Interrupted, KeyboardInterrupt)):
        return "interrupted"
    return "preempted" if isinstance(e, launch.Preempted) else "failed"


def interrupted(job: Job, e: BaseException, keep: bool) -> None:
    """Ctrl-C: record the job as interrupted (never as failed), say in one line how to resume, exit 130.
    A first Ctrl-C in training checkpointed at the end of its step; a second one, or one outside
    the training loop, leaves ``last.pt`` as the last checkpoint left it."""
    where = str(e) if isinstance(e, launch.Interrupted) else "interrupted by Ctrl-C"
    if not keep:
        job.update(status="interrupted", reason=where, interrupted_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    resume = "resumes from last.pt" if (job.out_dir / CHECKPOINT).is_file() else "starts it again"
    print(f"{where.split(';')[0]}: relaunching the same command {resume} (completed jobs are skipped)",
          file=sys.stderr, flush=True)
    raise SystemExit(130)


@hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> dict:
    return run(cfg)


def row_in_front(args: list[str]) -> list[str]:
    """A single job's command line with its study row's overrides in front (rows.py), so that
    Hydra composes the job, and ``--cfg job`` shows it, with the row applied. A command line that
    does not compose is left as it is for Hydra to report."""
    from hydra._internal.utils import get_args_parser

    from .rows import row_of, with_row

    try:
        parsed = get_args_parser().parse_args(args)
    except SystemExit:
        return args
    if parsed.multirun or parsed.help or parsed.hydra_help or row_of(parsed.overrides) is None:
        return args
    extra = []
    if parsed.config_dir and not any(o.startswith("hydra.searchpath=") for o in parsed.overrides):
        extra = [f"hydra.searchpath=[file://{os.path.abspath(parsed.config_dir)}]"]
    from hydra import initialize_config_module

    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            table = compose(config_name=parsed.config_name or "config", overrides=[*parsed.overrides, *extra]).get("table")
    except Exception:
        return args
    full = with_row(parsed.overrides, table)
    return [*full[:len(full) - len(parsed.overrides)], *args]


def main() -> None:
    """``senet-ablate``. Under torchrun, ranks other than 0 keep Hydra's files out of the run dir."""
    from hydra.core.plugins import Plugins

    plugins = Plugins.instance()  # scan first: the scan re-imports the basic sweeper we subclass
    from hydra_plugins.senet_ablate_sweeper.rows_sweeper import RowsSweeper

    plugins.register(RowsSweeper)  # the scan misses it in an editable install
    sys.argv[1:] = row_in_front(sys.argv[1:])
    if launch.env_rank() > 0:
        sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=stdout", "hydra.job_logging.root.level=WARNING"]
    try:
        _hydra_main()
    except KeyboardInterrupt:  # between the jobs of a sweep: no job to record
        print("interrupted by Ctrl-C", file=sys.stderr, flush=True)
        raise SystemExit(130) from None


if __name__ == "__main__":
    # run the importable module rather than __main__, so that launchers pickle the task by reference
    from senet_ablate.app import main as _main

    _main()
