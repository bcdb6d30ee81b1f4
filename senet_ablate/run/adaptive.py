"""``hydra.sweeper.until=verdict``: a sweep that adds seeds where a verdict is still open.

Round 1 runs the sweep as the basic sweeper would. After each round the study's table is built from the
records with the plan's group-sequential levels (``sequential.py``); every compared row whose verdict is
still ``unresolved`` gets its next seed, and its baseline the same seed (the pair stays paired), through the
sweep's own launcher. It ends when every row has a verdict, ``max_seeds``, or ``max_runs``.

The decisions are a function of the records, so a sweep interrupted at any point (Ctrl-C, SIGTERM, a killed
SLURM job) continues when relaunched with the same command: completed runs are not launched again and the
same looks give the same decisions. ``plan.json`` in the sweep dir keeps the design (seed sequence,
``max_seeds``, spending function), the run dirs its jobs may write (no other run in the study dir joins its
table or budget) and, from the first look, the compared rows with their shares of α; a relaunch that would
change it stops before any work.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..records import read_record
from ..study.sequential import Plan
from ..study.status import pinned_command
from .rows import dir_name, last_value, parse, row_of, typed, with_row

if TYPE_CHECKING:
    import pandas as pd

    from hydra_plugins.senet_ablate_sweeper.rows_sweeper import RowsSweeper

    from ..study.tables import StudyTable

log = logging.getLogger("senet_ablate")
UNTIL = ("verdict",)


def check(until: str | None, max_seeds: int, max_runs: int | None, spending: str) -> None:
    """Fail before any work on a bad setting, naming the key and its valid values."""
    if until not in (None, *UNTIL):
        raise ValueError(
            f"hydra.sweeper.until={until!r}: valid values: verdict (add seeds until each row has one), null"
        )
    if until is not None:
        Plan.make([0], max_seeds, spending, max_runs)


def seed_of(job: Sequence[str]) -> int | None:
    """The value of the last ``seed=`` among a job's overrides (None: the config's)."""
    value = last_value(job, "seed")
    return None if value is None else int(value)


def with_seed(job: Sequence[str], seed: int) -> list[str]:
    """``job`` with its ``seed=`` set to ``seed`` (added when the job had none)."""
    if seed_of(job) is None:
        return [*job, f"seed={seed}"]
    return [f"seed={seed}" if o.key_or_group == "seed" else s for o, s in zip(parse(job), job)]


class AdaptiveSweep:
    """One adaptive sweep: ``sweeper`` (a RowsSweeper set up by Hydra) and its first round's ``jobs``."""

    def __init__(self, sweeper: RowsSweeper, jobs: list[list[str]]) -> None:
        self.sweeper, self.cfg = sweeper, sweeper.config
        self.table = self.cfg.get("table")
        self.jobs = jobs
        self.sweep_dir = Path(str(self.cfg.hydra.sweep.dir))
        seeds = [seed_of(j) for j in jobs]
        first = [s if s is not None else int(self.cfg.seed) for s in seeds]
        self.plan = Plan.make(first, sweeper.max_seeds, sweeper.spending, sweeper.max_runs, self.table)
        if self.plan.max_runs is not None and self.plan.max_runs < len(jobs):
            raise ValueError(
                f"hydra.sweeper.max_runs={self.plan.max_runs} is below the first round's {len(jobs)} jobs: "
                "raise it or sweep fewer rows or seeds"
            )
        self.rows = len({row_of(j) or tuple(o for o in j if seed_of([o]) is None) for j in jobs})
        self.failed: set = set()
        self.first_error = None
        self.next_idx = 0

    def run_dir(self, job: list[str]) -> Path:
        return self.sweep_dir / dir_name(
            typed(with_row(job, self.table), self.table), self.cfg.hydra.job.config.override_dirname
        )

    def _completed(self, job: list[str]) -> bool:
        try:
            return read_record(self.run_dir(job)).get("status") == "completed"
        except (OSError, ValueError):
            return False

    def start(self) -> None:
        """Write the plan (or check a relaunch keeps it) and print the budget."""
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        self.plan.runs = sorted({self.run_dir(with_seed(j, s)).name for j in self.jobs for s in self.plan.seeds})
        old = Plan.read(self.sweep_dir)
        if old is not None and old.design() != self.plan.design():
            was, now = old.design(), self.plan.design()
            diff = ", ".join(f"{k}: {was[k]} -> {now[k]}" for k in was if was[k] != now[k])
            raise ValueError(
                f"{self.sweep_dir} holds an adaptive sweep with another plan ({diff}). Changing the plan after "
                "looking breaks its error rate: relaunch with the settings it started with (hydra.sweeper.*, "
                "table.alpha / margin / correction), or use another runs_dir"
            )
        if old is not None and old.runs and old.runs != self.plan.runs:
            raise ValueError(
                f"{self.sweep_dir} holds an adaptive sweep of other rows or seeds: relaunch it with the command it "
                "started with (senet-report --status shows it), or use another study (study=...) or runs_dir"
            )
        if old is not None:  # the first look fixed the compared rows and their shares of alpha
            self.plan.compared, self.plan.shares, self.plan.command = old.compared, old.shares, old.command
        if self.plan.command is None:
            self.plan.command = pinned_command(self.sweep_dir)
        self.plan.write(self.sweep_dir)
        worst = self.rows * self.plan.max_seeds
        cap = f", capped at max_runs={self.plan.max_runs}" if self.plan.max_runs is not None else ""
        log.info(
            "adaptive sweep (hydra.sweeper.until=verdict): %d rows, seeds %s first, then one seed a round for rows "
            "still unresolved (and their baselines), up to max_seeds=%d: at most %d runs%s; looks spend alpha by the "
            "%s boundary (sequential.py)",
            self.rows, ",".join(map(str, self.plan.seeds[: self.plan.first])), self.plan.max_seeds, worst, cap,
            self.plan.spending,
        )  # fmt: skip

    def launch(self, jobs: list[list[str]]) -> int:
        """Launch ``jobs`` (those not completed already) through the sweep's launcher; a failed job is
        remembered, not relaunched in this sweep, and the sweep goes on."""
        todo = [with_row(j, self.table) for j in jobs if not self._completed(j)]
        if not todo:
            return 0
        self.sweeper.validate_batch_is_legal(todo)
        results = self.sweeper.launcher.launch(todo, initial_job_idx=self.next_idx)
        self.next_idx += len(todo)
        for job, r in zip(todo, results):
            try:
                r.return_value  # noqa: B018 - raises the job's error when it failed
            except Exception as e:  # noqa: BLE001 - any job error: recorded by the job, reported here
                self.failed.add(self.run_dir(job))
                self.first_error = self.first_error or e
                log.error("job failed: %s (%s); the adaptive sweep goes on without it", " ".join(job), e)
        return len(todo)

    def templates(self, runs: pd.DataFrame) -> dict[str, list[str]]:
        """{table row: a first-round job of it}, matched through the run dirs."""
        by_dir = {self.run_dir(j).resolve(): j for j in self.jobs}
        out = {}
        for _, run in runs.iterrows():
            job = by_dir.get(Path(run["run_dir"]).resolve())
            if job is not None:
                out.setdefault(run["row"], job)
        return out

    def next_round(self, state: tuple[StudyTable, pd.DataFrame, dict]) -> list[list[str]]:
        """The jobs the open comparisons' next looks need, within ``max_runs``."""
        table, runs, _ = state
        owed = table.owed
        tpl = self.templates(runs)
        jobs = [with_seed(tpl[row], seed) for row, seed in owed if row in tpl]
        jobs = [j for j in jobs if self.run_dir(j) not in self.failed]
        if self.plan.max_runs is not None:
            left = self.plan.max_runs - int(table.frame["completed"].sum())
            if left < len(jobs):
                log.info("max_runs=%d: %d of the %d owed runs fit", self.plan.max_runs, max(left, 0), len(jobs))
            jobs = jobs[: max(left, 0)]
        return jobs

    def budget(self, table: StudyTable, runs: pd.DataFrame) -> None:
        """What the plan has run and may still run, with the time per run once one has finished."""
        done = int(table.frame["completed"].sum())
        worst = self.rows * self.plan.max_seeds
        if self.plan.max_runs is not None:
            worst = min(worst, self.plan.max_runs)
        secs = []
        for run_dir in runs.loc[runs["status"] == "completed", "run_dir"]:
            try:
                rec = read_record(Path(run_dir))
                secs.append((_time(rec["finished_at"]) - _time(rec["started_at"])).total_seconds())
            except (OSError, TypeError, ValueError, KeyError):
                continue
        each = statistics.median(secs) if secs else None
        more = max(worst - done, 0)
        said = f"; a run takes {_duration(each)} (median), the rest at most {_duration(more * each)}" if secs else ""
        log.info("adaptive sweep: %d runs done, at most %d more%s", done, more, said)

    def run(self) -> None:
        from ..study.report import study_state

        self.start()
        self.launch(self.jobs)
        for _ in range(self.plan.max_seeds + 1):  # a round adds one seed: bounded
            state = study_state(self.sweep_dir, self.plan)
            if state is None:
                break
            self.plan.write(self.sweep_dir)  # the first look froze its compared rows and their shares of alpha
            self.budget(state[0], state[1])
            jobs = self.next_round(state)
            if not jobs:
                log.info("adaptive sweep: nothing more to run; each planned row's stop is in the table's last column")
                break
            log.info("adaptive sweep: next round, %d runs: %s", len(jobs), "; ".join(" ".join(j) for j in jobs))
            if not self.launch(jobs):
                break
        if self.first_error is not None:
            raise self.first_error


def _duration(secs: float) -> str:
    return f"{secs:.0f} s" if secs < 120 else f"{secs / 60:.0f} min" if secs < 7200 else f"{secs / 3600:.1f} h"


def _time(text) -> datetime:
    return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S%z")
