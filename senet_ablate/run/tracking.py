"""Experiment trackers (``logger=``): config, per-epoch metrics and the final summary.

The run record is always written; a tracker is a second copy. No credential is ever passed
through the config or written into a record: wandb reads its own login or WANDB_API_KEY.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from omegaconf import DictConfig


class NoTracker:
    def log_epoch(self, row: dict) -> None:
        pass

    def finish(self, summary: dict, status: str) -> None:
        pass


class WandbTracker(NoTracker):
    """One wandb run per job, grouped by study, offline unless ``logger.mode`` says otherwise."""

    def __init__(self, cfg: DictConfig, config: dict, out_dir: Path) -> None:
        import wandb

        self.run = wandb.init(
            project=cfg.logger.project,
            entity=cfg.logger.entity,
            mode=cfg.logger.mode,
            group=cfg.study,
            job_type=cfg.task,
            name=f"{cfg.study}/{out_dir.name}",
            tags=list(cfg.logger.tags),
            config=config,
            dir=str(out_dir),
            reinit="finish_previous",
        )

    def log_epoch(self, row: dict) -> None:
        self.run.log(row, step=row["epoch"])

    def finish(self, summary: dict, status: str) -> None:
        for k, v in summary.items():
            self.run.summary[k] = v
        self.run.summary["status"] = status
        self.run.finish(exit_code=0 if status == "completed" else 1)


TRACKERS = {"none": NoTracker, "wandb": WandbTracker}


def create(cfg: DictConfig, config: dict, out_dir: Path) -> NoTracker:
    name = cfg.logger.name
    if name not in TRACKERS:
        raise ConfigError(f"logger.name={name!r} is not a tracker; valid values: {', '.join(TRACKERS)}")
    return NoTracker() if name == "none" else TRACKERS[name](cfg, config, out_dir)
