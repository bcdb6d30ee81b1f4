"""Hydra's basic sweeper with two changes for study presets (see ``senet_ablate/run/rows.py``):

- each job's ``row=X`` gets the row's overrides in front of its own, so Hydra composes the job
  with the row applied (no second composition inside the job);
- the configs the sweeper composes to check a batch before launching it are handed to the
  launcher of this process instead of being composed again;
- before the first job starts, it records every job (its overrides, its run dir) in the sweep dir
  (``jobs.json``, ``senet_ablate/records/sweep.py``): ``senet-report --status`` reads what the sweep owes there.

Jobs, their order, their run dirs and the launchers are exactly the basic sweeper's. With
``until=verdict`` the sweep is adaptive (``senet_ablate/run/adaptive.py``): the basic sweep is its first round,
and rows whose verdict is still open get more seeds (``max_seeds``, ``max_runs``, ``spending``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import HydraContext
from omegaconf import OmegaConf

from senet_ablate.records.sweep import SweepJob, write_jobs
from senet_ablate.run import adaptive
from senet_ablate.run.rows import dir_name, with_row


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
    def __init__(self, max_batch_size=None, params=None, until=None, max_seeds=10, max_runs=None, spending="pocock"):
        super().__init__(max_batch_size=max_batch_size, params=params)
        adaptive.check(until, max_seeds, max_runs, spending)  # before any work
        self.until, self.max_seeds, self.max_runs, self.spending = until, max_seeds, max_runs, spending

    def sweep(self, arguments: list[str]) -> Any:
        if self.until is None:
            return super().sweep(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        jobs = self.split_arguments(parser.parse_overrides(self._parse_config() + list(arguments)), None)[0]
        run = adaptive.AdaptiveSweep(self, jobs)  # checks the plan before writing anything
        Path(self.config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, Path(self.config.hydra.sweep.dir) / "multirun.yaml")
        self.record_jobs(jobs)
        run.run()
        return []

    def setup(self, *, hydra_context: HydraContext, task_function, config) -> None:
        self.reusing = ReusingLoader(hydra_context.config_loader)
        super().setup(
            hydra_context=HydraContext(config_loader=self.reusing, callbacks=hydra_context.callbacks),
            task_function=task_function,
            config=config,
        )

    def record_jobs(self, jobs: Sequence[Sequence[str]]) -> None:
        """Every job of the sweep (its first round, when adaptive) in launch order, in ``jobs.json``."""
        naming = self.config.hydra.job.config.override_dirname
        write_jobs(self.config.hydra.sweep.dir, [SweepJob(tuple(j), dir_name(list(j), naming)) for j in jobs])

    def get_job_batch(self) -> Sequence[Sequence[str]]:
        self.reusing.composed.clear()  # left by a batch another process launched
        if self.batch_index == 0:  # the basic sweep has expanded and written multirun.yaml: nothing launched yet
            self.record_jobs([job for batch in self.overrides for job in batch])
        return [with_row(list(job), self.config.get("table")) for job in super().get_job_batch()]

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        for overrides in batch:  # what the basic sweeper does, keeping each result for the launcher
            cfg = self.reusing.loader.load_sweep_config(master_config=self.config, sweep_overrides=list(overrides))
            self.reusing.composed[tuple(overrides)] = cfg
