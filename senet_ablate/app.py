"""The Hydra entry point (``senet-ablate``): compose one job's config, validate it, run its task,
write its run record.

A study preset (``experiments/``) lists its table rows, each a short list of overrides; the
sweep iterates ``row=...`` and each job re-composes its config with the row's overrides placed
before the command line's, so a row may also pick a config group (e.g. ``model=resnet101``).
"""
from __future__ import annotations

import logging
import os
import platform
import sys
import time
from pathlib import Path

import hydra
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from . import __version__
from .complexity import count, cpu_latency_ms
from .errors import ConfigError
from .models import build_model
from .records import write_record
from .se import SESpec

log = logging.getLogger("senet_ablate")


def _conf_dir() -> str:
    here = Path(os.environ.get("SENET_ABLATE_CONF", Path(__file__).resolve().parent.parent / "conf"))
    if not (here / "config.yaml").is_file():
        sys.exit(f"senet-ablate: no config directory at {here}. Install from a clone of the repository "
                 "with `pip install -e .`, or point SENET_ABLATE_CONF at its conf/ directory.")
    return str(here)


def _dirname(override_dirname: str) -> str:
    """Stable run-dir name from the job's overrides ('default' when there are none)."""
    return override_dirname.replace("/", "_") or "default"


OmegaConf.register_new_resolver("senet_dirname", _dirname, replace=True)


# ---------------------------------------------------------------------------- config
def job_config(cfg: DictConfig) -> tuple[DictConfig, list[str]]:
    """Apply the study row named by ``row``; return the job's config and its full overrides."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    if cfg.get("row") is None:
        return cfg, overrides
    rows = (cfg.get("table") or {}).get("rows") or {}
    if cfg.row not in rows:
        where = f"study {cfg.study!r}" if rows else "this config (no experiment with table rows selected)"
        raise ConfigError(f"row={cfg.row!r} is not a row of {where}; valid values: {', '.join(rows) or '(none)'}")
    overrides = [*rows[cfg.row].get("set", []), *overrides]
    name = HydraConfig.get().job.config_name if HydraConfig.initialized() else "config"
    return compose(config_name=name, overrides=overrides), overrides


def se_spec(cfg: DictConfig) -> SESpec | None:
    spec = SESpec.from_config(OmegaConf.to_container(cfg.se, resolve=True))
    return None if spec.stages == () else spec


def make_model(cfg: DictConfig, device=None):
    m = cfg.model
    return build_model(m.name, se_spec(cfg), m.num_classes, m.get("stride_style", "caffe"), device=device)


def validate(cfg: DictConfig) -> None:
    """Everything that can be checked without doing work; raises ConfigError naming the key."""
    if cfg.task not in TASKS:
        raise ConfigError(f"task={cfg.task!r} is not a task; valid values: {', '.join(TASKS)}")
    size = cfg.model.get("input_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError(f"model.input_size={size!r} must be a positive integer (224 for ImageNet, 32 for CIFAR)")
    make_model(cfg, device="meta")  # checks stages and every SE width without allocating memory


# ---------------------------------------------------------------------------- tasks
def profile(cfg: DictConfig) -> dict:
    """Params, MACs, SE elementwise ops and paper-convention GFLOPs; no data touched."""
    metrics = count(make_model(cfg, device="meta"), cfg.model.input_size).as_dict()
    if cfg.profile.latency:
        metrics["latency_ms_cpu_b1"] = cpu_latency_ms(make_model(cfg), cfg.model.input_size, cfg.profile.latency_runs)
    log.info("%s: params %.3fM  MACs %.4fG  SE elementwise %.2fM  GFLOPs %.4f",
             cfg.get("row") or cfg.model.name, metrics["params"] / 1e6, metrics["macs"] / 1e9,
             metrics["elementwise_ops"] / 1e6, metrics["gflops"])
    return metrics


TASKS = {"profile": profile}


# ---------------------------------------------------------------------------- record
def run(cfg: DictConfig) -> dict:
    """Run one job and write its record; a failure is recorded, then re-raised."""
    out_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()
    record = {
        "status": "running", "task": cfg.get("task"), "study": cfg.get("study"), "row": cfg.get("row"),
        "seed": cfg.get("seed"), "senet_ablate_version": __version__, "python": platform.python_version(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        cfg, overrides = job_config(cfg)
        record["overrides"] = overrides
        record["config"] = OmegaConf.to_container(cfg, resolve=True)
        validate(cfg)
        write_record(out_dir, record)
        record.update(TASKS[cfg.task](cfg))
    except BaseException as e:
        reason = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
        write_record(out_dir, {**record, "status": "failed", "reason": reason})
        log.error("job failed: %s", reason)
        raise
    record.update(status="completed", finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    write_record(out_dir, record)
    return record


@hydra.main(config_path=_conf_dir(), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict:
    return run(cfg)


if __name__ == "__main__":
    main()
