"""``senet-report --status DIR``: what a sweep still owes. Every sweep root (a dir holding Hydra's
``multirun.yaml``) has the jobs its sweeper recorded (``jobs.json``; for an older sweep, multirun.yaml expanded
as the basic sweeper expands it); each job's run dir is then completed, running, preempted, interrupted (a
running record whose process is gone), failed or missing, and the overrides that relaunch the unfinished ones
are printed.
"""

from __future__ import annotations

import itertools
import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..records import read_record
from ..records.keys import NOT_IN_DIRNAME, dir_name, override_key
from ..records.sweep import SweepJob, read_jobs
from .sequential import PLAN_FILE

if TYPE_CHECKING:
    from omegaconf import DictConfig

STATES = ("completed", "running", "preempted", "interrupted", "failed", "missing")
RELAUNCH = ("failed", "missing", "interrupted", "preempted")


# multirun.yaml is read with OmegaConf and, for a sweep without jobs.json, expanded with Hydra's public override
# parser, each imported here on first use: the rest of study/ (records to tables) imports neither Hydra nor torch.
def _load(path: Path):
    from omegaconf import OmegaConf

    return OmegaConf.load(path)


def sweep_jobs(root: Path, cfg: DictConfig | None = None) -> list[SweepJob]:
    """The jobs of the sweep in ``root``, in the order it launched them: its sweeper's record (``jobs.json``),
    else ``expand`` of its multirun.yaml (sweeps made before the record, or by another sweeper)."""
    recorded = read_jobs(root)
    return recorded if recorded is not None else expand(cfg if cfg is not None else _load(root / "multirun.yaml"))


def expand(cfg: DictConfig) -> list[SweepJob]:
    """A sweep's jobs from its multirun.yaml ``cfg`` as Hydra's basic sweeper expands them: the sweeper's
    ``params`` then the command line's overrides, the last of a key in the first one's place, every choice or
    range swept, the cartesian product in that order; run-dir names as ``override_dirname`` makes them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.get("params") or {}).items()]
    choices: dict[str, list[str]] = {}
    for o in OverridesParser.create().parse_overrides([*params, *map(str, cfg.hydra.overrides.task)]):
        key = o.get_key_element()
        if o.is_sweep_override() and not o.is_discrete_sweep():
            raise ValueError(f"{o.input_line}: the basic sweeper sweeps choices and ranges only")
        values = o.sweep_string_iterator() if o.is_sweep_override() else [o.get_value_element_as_str()]
        choices[key] = [f"{key}={v}" for v in values]
    naming = _dir_naming(cfg)
    return [SweepJob(job, dir_name(job, *naming)) for job in itertools.product(*choices.values())]


def _dir_naming(cfg: DictConfig) -> tuple[list[str], str, str]:
    """(exclude_keys, item_sep, kv_sep) of the sweep's ``override_dirname``; our configs' exclude_keys is the
    ``${senet_not_in_dirname:}`` interpolation, i.e. ``keys.NOT_IN_DIRNAME``."""
    from omegaconf import OmegaConf

    naming = OmegaConf.to_container(cfg.hydra.job.config.override_dirname, resolve=False)
    exclude = naming.get("exclude_keys") or []
    if exclude == "${senet_not_in_dirname:}":
        exclude = list(NOT_IN_DIRNAME)
    if not isinstance(exclude, list):
        raise ValueError(f"hydra.job.config.override_dirname.exclude_keys={exclude!r}: a list of keys expected")
    return [str(k) for k in exclude], str(naming.get("item_sep", ",")), str(naming.get("kv_sep", "="))


def _in_command_order(job: tuple[str, ...], task: list[str]) -> list[str]:
    """A job's overrides in the command line's order, the sweeper's ``params`` last (as ``--status`` prints
    them)."""
    first = [override_key(str(o)) for o in task]
    return sorted(job, key=lambda o: first.index(override_key(o)) if override_key(o) in first else len(first))


@dataclass
class Job:
    overrides: list[str]
    run_dir: Path
    state: str
    note: str = ""


@dataclass
class SweepStatus:
    root: Path
    study: str
    command: list[str]
    jobs: list[Job] = field(default_factory=list)
    prefix: list[str] = field(default_factory=list)  # --config-dir, --config-name, hydra overrides
    cwd: str | None = None  # where the sweep was launched (runs_dir is relative to it)

    def count(self, state: str) -> int:
        return sum(j.state == state for j in self.jobs)


def launch_prefix(cfg: DictConfig) -> list[str]:
    """What a relaunch needs in front of the job overrides, from a sweep's multirun.yaml: the
    user's ``--config-dir`` and ``--config-name``, and the Hydra overrides they typed
    (``hydra.searchpath=...``, ``hydra/launcher=joblib``), so that their experiment is found."""
    out = []
    for source in cfg.hydra.runtime.get("config_sources") or []:
        if source.get("provider") == "command-line":
            out += ["--config-dir", str(source.path)]
    name = cfg.hydra.job.get("config_name")
    if name and name != "config":
        out += ["--config-name", str(name)]
    return out + [str(o) for o in cfg.hydra.overrides.get("hydra") or [] if not str(o).startswith("hydra.mode=")]


def sweep_command(root: Path) -> str:
    """The command that (re)launches the sweep whose multirun.yaml lies in ``root``, runnable as
    printed: from another directory it starts with ``cd`` to where the sweep was launched."""
    cfg = _load(root / "multirun.yaml")
    return _from_cwd(
        cfg.hydra.runtime.get("cwd"), "senet-ablate -m " + _join([*launch_prefix(cfg), *cfg.hydra.overrides.task])
    )


def pinned_command(root: Path) -> str:
    """``sweep_command`` of ``root`` that runs as printed from any directory: it always starts with ``cd`` to
    where the sweep was launched (an adaptive plan keeps it, whatever later launches write multirun.yaml)."""
    cfg = _load(root / "multirun.yaml")
    command = "senet-ablate -m " + _join([*launch_prefix(cfg), *cfg.hydra.overrides.task])
    cwd = cfg.hydra.runtime.get("cwd")
    return f"cd {shlex.quote(str(cwd))} && {command}" if cwd else command


def _join(args) -> str:
    return " ".join(shlex.quote(str(a)) for a in args)


def _from_cwd(cwd: str | None, command: str) -> str:
    return (
        command
        if not cwd or os.path.realpath(cwd) == os.path.realpath(os.getcwd())
        else f"cd {shlex.quote(str(cwd))} && {command}"
    )


def _alive(rec: dict) -> bool:
    """A running record's process is alive (only knowable on the host that runs it)."""
    if rec.get("host") != os.uname().nodename or not rec.get("pid"):
        return True  # another machine (a cluster node): trust the record
    try:
        os.kill(int(rec["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _state(run_dir: Path) -> tuple[str, str]:
    try:
        rec = read_record(run_dir)
    except (OSError, ValueError):
        return "missing", ""
    status = rec.get("status")
    if status == "running" and not _alive(rec):
        return "interrupted", f"pid {rec.get('pid')} is gone; relaunch resumes from last.pt"
    if status == "running":
        return "running", f"epoch {rec.get('epochs_done', 0)}" if rec.get("task") == "train" else ""
    if status in ("failed", "preempted", "interrupted"):
        return status, str(rec.get("reason", ""))
    return ("completed", "") if status == "completed" else ("missing", f"unreadable status {status!r}")


def sweep_status(root: Path) -> SweepStatus:
    cfg = _load(root / "multirun.yaml")
    task = [str(o) for o in cfg.hydra.overrides.task]
    jobs = sweep_jobs(root, cfg)
    names = {j.dir_name for j in jobs}
    study = str(cfg.get("study") or root.name)
    out = SweepStatus(root, study, task, prefix=launch_prefix(cfg), cwd=cfg.hydra.runtime.get("cwd"))
    for job in jobs:
        state, note = _state(root / job.dir_name)
        out.jobs.append(Job(_in_command_order(job.overrides, task), root / job.dir_name, state, note))
    if (root / PLAN_FILE).is_file():  # an adaptive sweep: the seeds its later rounds added
        for run_dir in sorted(d for d in root.iterdir() if d.name not in names and (d / ".hydra").is_dir()):
            state, note = _state(run_dir)
            out.jobs.append(Job(_overrides(run_dir), run_dir, state, note))
    return out


def _overrides(run_dir: Path) -> list[str]:
    """A job's overrides as Hydra saved them (its row's in front: ``with_row`` keeps them once)."""
    try:
        return [str(o) for o in _load(run_dir / ".hydra" / "overrides.yaml")]
    except OSError:
        return [run_dir.name]


def find_sweeps(paths: Iterable[str | Path]) -> list[Path]:
    roots = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        roots += sorted(
            {m.parent for m in p.rglob("multirun.yaml")} | ({p} if (p / "multirun.yaml").is_file() else set())
        )
    return sorted(set(roots))


def render(s: SweepStatus) -> str:
    counts = ", ".join(
        f"{s.count(k)} {k}" for k in STATES if s.count(k) or k in ("completed", "failed", "missing", "running")
    )
    lines = [f"{s.study} ({s.root}): {len(s.jobs)} jobs: {counts}"]
    for j in s.jobs:
        if j.state != "completed":
            lines.append(f"  {j.state:<11} {' '.join(j.overrides)}" + (f"  ({j.note})" if j.note else ""))
    todo = [j for j in s.jobs if j.state in RELAUNCH]
    if todo:
        lines.append("relaunch these jobs:")
        lines += [f"  {_from_cwd(s.cwd, 'senet-ablate ' + _join([*s.prefix, *j.overrides]))}" for j in todo]
        lines.append("or the whole sweep (completed jobs are skipped, interrupted ones resume from last.pt):")
        lines.append(f"  {_from_cwd(s.cwd, 'senet-ablate -m ' + _join([*s.prefix, *s.command]))}")
    return "\n".join(lines)
