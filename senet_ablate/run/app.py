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
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf, open_dict

from .. import data, distributed
from ..errors import ConfigError
from ..records import Job, provenance, read_record
from ..records.keys import fingerprint
from ..study import inference
from ..train import CHECKPOINT, Diverged, check_recipe
from . import launch
from .assemble import JobModel, job_model, make_model, prepare_weights
from .cmdline import CONFIG_MODULE, row_in_front
from .detect import check as check_detection
from .detect import is_detection
from .rows import parse, with_row
from .tasks import TASKS

log = logging.getLogger("senet_ablate")


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
    chosen = any(o.key_or_group.split(".", 1)[0] == "data" for o in parse(overrides))
    if cfg.get("task") != "profile" or not native or chosen or cfg.data.name != "digits":
        return cfg
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.model.input_size, cfg.model.num_classes = native.image_size, native.num_classes
    log.info(
        "no data chosen: counting %s at its native input, %d px and %d classes (data=... to change it)",
        cfg.model.name,
        native.image_size,
        native.num_classes,
    )
    return cfg


def validate(cfg: DictConfig) -> JobModel:
    """Everything that can be checked without doing work; raises ConfigError naming the key. Returns
    the job's model, built once here (its stages, SE widths and published weights checked)."""
    if cfg.task not in TASKS:
        raise ConfigError(f"task={cfg.task!r} is not a task; valid values: {', '.join(TASKS)}")
    size = cfg.model.get("input_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError(f"model.input_size={size!r} must be a positive integer (224 for ImageNet, 32 for CIFAR)")
    detection = is_detection(cfg)
    if not detection:
        data.check(cfg.data)
    launch.job_threads(cfg.threads)
    try:
        inference.settings(OmegaConf.to_container(cfg.get("table") or {}, resolve=True))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if cfg.task == "eval" and not cfg.model.get("weights"):
        raise ConfigError(
            "task=eval needs model.weights (a state-dict file, timm:<name> or torchvision:<name>); "
            "to evaluate a run of ours, pass its last.pt"
        )
    if cfg.task in ("train", "detect"):
        check_recipe(cfg.recipe)
        distributed.PreemptionGuard(cfg.train.preempt_signals)  # checks the signal names
    if detection or cfg.task == "detect":
        meta = make_model(cfg, device="meta", num_classes=cfg.model.get("num_classes") or 1)
        check_detection(cfg, meta)  # the trunk's four strided stages, the detect.* values
        return JobModel(meta, False, cfg.model.get("num_classes"), prepare_weights(cfg, meta))
    if cfg.task == "profile":
        return job_model(cfg, cfg.model.get("num_classes"))
    # the data's classes (an ImageFolder's class folders), else the config's; None: known once loaded
    return job_model(cfg, data.count_classes(cfg.data) or cfg.model.get("num_classes"))


# ---------------------------------------------------------------------------- record
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


def run(cfg: DictConfig, out_dir: Path | None = None) -> dict:
    """Run one job and write its record in ``out_dir`` (default: Hydra's output dir, else the working
    dir); returns the record. A failure is recorded, then re-raised. The CLI, the sweeper's launchers
    and the tests all call this."""
    if out_dir is None:
        out_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()
    job = Job(
        out_dir,
        {
            "status": "running",
            "task": cfg.get("task"),
            "study": cfg.get("study"),
            "row": cfg.get("row"),
            "seed": cfg.get("seed"),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **provenance(),
            "host": os.uname().nodename,
            "pid": os.getpid(),
            **hydra_context(),
        },
    )
    prev = previous(out_dir)
    keep = prev is not None and prev.get("status") == "completed"  # never overwrite a finished record
    if prev is not None and prev.get("status") == "preempted":
        job.record["preemptions"] = prev.get("preemptions", 0) + 1
    try:
        cfg, overrides = job_config(cfg)
        cfg = native_input(cfg, overrides)
        job.record["overrides"] = overrides
        job.record["config"] = OmegaConf.to_container(cfg, resolve=True)
        model = validate(cfg)
        job.record["fingerprint"] = fingerprint(job.record["config"])
        if keep:
            if prev.get("fingerprint") == job.record["fingerprint"]:
                log.info("skipping %s: already completed (delete its metrics.json to run it again)", out_dir)
                return prev
            raise ConfigError(
                f"{out_dir} holds a completed run of a different config; delete that dir "
                "or choose another runs_dir/study to keep both"
            )
        job.update(threads=launch.set_threads(cfg.threads))
        job.record.update(TASKS[cfg.task](cfg, job, model))
    except (distributed.Interrupted, KeyboardInterrupt) as e:
        interrupted(job, e, keep)
    except distributed.Preempted as p:
        job.update(status="preempted", reason=str(p), preempted_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        log.warning("%s", p)
        distributed.hand_over(p)  # submitit requeues; otherwise exit 128 + signal for SLURM/torchrun to restart
    except BaseException as e:
        reason = str(e) if isinstance(e, (ConfigError, Diverged)) else f"{type(e).__name__}: {e}"
        if not keep:
            job.update(status="failed", reason=reason, failed_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        to_log_file(f"job failed: {reason}")  # Hydra prints the error on the console, once
        raise
    job.update(status="completed", finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return job.record


def interrupted(job: Job, e: BaseException, keep: bool) -> None:
    """Ctrl-C: record the job as interrupted (never as failed), say in one line how to resume, exit 130.
    A first Ctrl-C in training checkpointed at the end of its step; a second one, or one outside
    the training loop, leaves ``last.pt`` as the last checkpoint left it."""
    where = str(e) if isinstance(e, distributed.Interrupted) else "interrupted by Ctrl-C"
    if not keep:
        job.update(status="interrupted", reason=where, interrupted_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    resume = "resumes from last.pt" if (job.out_dir / CHECKPOINT).is_file() else "starts it again"
    print(
        f"{where.split(';')[0]}: relaunching the same command {resume} (completed jobs are skipped)",
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(130)


class CompactConfigError(ConfigError, CompactHydraException):
    """A ConfigError at the Hydra edge: Hydra prints its message alone, without a traceback (exit 1)."""


@hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> dict:
    try:
        return run(cfg)
    except ConfigError as e:  # the core raises plain ValueErrors; Hydra shows this kind in one line
        raise CompactConfigError(str(e)) from None


def main() -> None:
    """``senet-ablate``. Under torchrun, ranks other than 0 keep Hydra's files out of the run dir."""
    from hydra.core.plugins import Plugins

    plugins = Plugins.instance()  # scan first: the scan re-imports the basic sweeper we subclass
    from hydra_plugins.senet_ablate_sweeper.rows_sweeper import RowsSweeper

    plugins.register(RowsSweeper)  # the scan misses it in an editable install
    sys.argv[1:] = row_in_front(sys.argv[1:])
    if distributed.env_rank() > 0:
        sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=stdout", "hydra.job_logging.root.level=WARNING"]
    try:
        _hydra_main()
    except KeyboardInterrupt:  # between the jobs of a sweep: no job to record
        print("interrupted by Ctrl-C", file=sys.stderr, flush=True)
        raise SystemExit(130) from None


if __name__ == "__main__":
    # run the importable module rather than __main__, so that launchers pickle the task by reference
    from .app import main as _main

    _main()
