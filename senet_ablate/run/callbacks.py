"""The end-of-sweep Hydra callback: every multirun ends in its study's table (``senet-report``)."""

from __future__ import annotations

import atexit
import logging
import os
import shlex
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..records import env_rank
from ..study.report import report

log = logging.getLogger("senet_ablate")


class PrintTableCallback(Callback):
    """At the end of every multirun, print the study's table and write it, its figures and its
    dashboard beside the sweep. Hydra skips ``on_multirun_end`` when a job failed (it re-raises
    that job's error), so the report then runs at interpreter exit; the exit code stays non-zero."""

    def __init__(self) -> None:
        self.sweep_dir: str | None = None
        self.wide = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.sweep_dir = str(config.hydra.sweep.dir)
        self.wide = bool(config.get("table", {}).get("wide", False))
        atexit.register(self._after_failure)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._report()

    def _after_failure(self) -> None:
        if self.sweep_dir is not None and os.path.isdir(self.sweep_dir):  # on_multirun_end never came
            where = self._report()
            print(
                f"\nSome job of this sweep did not complete (failed or interrupted: see above). "
                f"`senet-report --status {shlex.quote(where)}` lists every job and the commands that relaunch the "
                "unfinished ones.",
                flush=True,
            )

    def _report(self) -> str:
        where, self.sweep_dir = self.sweep_dir, None
        if env_rank() > 0 or not os.path.isdir(where):  # torchrun: rank 0 reports; no job ran: nothing to say
            return where
        try:
            tables = report([where], html=True, export_runs=False, wide=self.wide)
        except Exception as e:  # the sweep's records are safe; a report problem must not fail it
            log.warning("could not build the study table: %s", e)
            return where
        for study, md in tables.items():
            if study != "_index":  # one sweep, one study: its dashboard is link enough
                print("\n" + md, flush=True)
        return where
