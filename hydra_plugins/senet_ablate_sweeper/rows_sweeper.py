"""Hydra's basic sweeper with two changes for study presets (see ``senet_ablate/rows.py``):

- each job's ``row=X`` gets the row's overrides in front of its own, so Hydra composes the job
  with the row applied (no second composition inside the job);
- the configs the sweeper composes to check a batch before launching it are handed to the
  launcher of this process instead of being composed again.

Jobs, their order, their run dirs and the launchers are exactly the basic sweeper's.
"""

from __future__ import annotations

from typing import Any, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.types import HydraContext

from senet_ablate.rows import with_row


class ReusingLoader:
    """A config loader that returns a config composed once already, for the same overrides.
    Pickled (joblib, submitit) it is the plain loader: other processes compose their own."""

    def __init__(self, loader) -> None:
        self.loader, self.composed = loader, {}

    def load_sweep_config(self, master_config, sweep_overrides):
        key = tuple(sweep_overrides)
        if key in self.composed:
            return self.composed.pop(key)
        return self.loader.load_sweep_config(master_config, sweep_overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def __reduce__(self):
        return (_plain, (self.loader,))


def _plain(loader):
    return loader


class RowsSweeper(BasicSweeper):
    def setup(self, *, hydra_context: HydraContext, task_function, config) -> None:
        self.reusing = ReusingLoader(hydra_context.config_loader)
        super().setup(
            hydra_context=HydraContext(config_loader=self.reusing, callbacks=hydra_context.callbacks),
            task_function=task_function,
            config=config,
        )

    def get_job_batch(self) -> Sequence[Sequence[str]]:
        self.reusing.composed.clear()  # left by a batch another process launched
        return [with_row(list(job), self.config.get("table")) for job in super().get_job_batch()]

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        for overrides in batch:  # what the basic sweeper does, keeping each result for the launcher
            cfg = self.reusing.loader.load_sweep_config(master_config=self.config, sweep_overrides=list(overrides))
            self.reusing.composed[tuple(overrides)] = cfg
