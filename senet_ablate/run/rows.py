"""Study rows as overrides, applied before Hydra composes a job.

A preset (``experiments/``) lists its table rows, each a short list of overrides (``set:``), and
sweeps ``row=...``. A job with ``row=X`` runs with ``[*rows[X].set, *its own overrides]``: the
row first, so that the command line still wins, and a row may pick a config group
(``model=resnet101``). The row's overrides are put in front of the job's before Hydra composes
it: by our sweeper (``hydra_plugins/senet_ablate_sweeper``) for ``-m``, and by ``senet-ablate``
itself for a single job, so ``--cfg job`` shows what the job runs and each job is composed once.

Run dirs are named from the overrides a user typed (``row=r4,task=profile``), never from the
ones a row put in front of them, so a relaunch of one job finds the dir its sweep wrote.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from ..records import keys
from ..records.keys import NOT_IN_DIRNAME

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override


def row_set(table: DictConfig | None, row: str | None) -> list[str] | None:
    """The overrides of ``row`` in a study's ``table`` (None: no such row, or no row)."""
    rows = (table or {}).get("rows") or {}
    if row is None or row not in rows:
        return None
    return [str(o) for o in (rows[row].get("set") or [])]


def parse(overrides: Iterable[str]) -> list[Override]:
    """Override strings as Hydra reads them (key or group, value, ``+`` / ``~`` / ``++``)."""
    return OverridesParser.create().parse_overrides([str(o) for o in overrides])


def last_value(overrides: Iterable[str], key: str) -> str | None:
    """The value of the last ``key=`` (or ``+key=``) among ``overrides``, as typed (None: not there)."""
    vals = [o.get_value_element_as_str() for o in parse(overrides) if o.key_or_group == key and not o.is_delete()]
    return vals[-1] if vals else None


def row_of(overrides: list[str]) -> str | None:
    """The value of the last ``row=`` among ``overrides``."""
    return last_value(overrides, "row")


def with_row(overrides: list[str], table: DictConfig | None) -> list[str]:
    """``overrides`` with their row's overrides in front (unchanged when there is none, or when
    they are there already)."""
    pre = row_set(table, row_of(overrides))
    if not pre or overrides[: len(pre)] == pre:
        return list(overrides)
    return [*pre, *overrides]


def typed(overrides: list[str], table: DictConfig | None) -> list[str]:
    """The overrides the user gave: ``overrides`` less the row's, when those lead them."""
    pre = row_set(table, row_of(overrides))
    return list(overrides[len(pre) :]) if pre and overrides[: len(pre)] == pre else list(overrides)


def dir_name(overrides: list[str], dirname_cfg: DictConfig) -> str:
    """The run-dir name of a job: ``keys.dir_name`` of its typed overrides under the config's
    ``hydra.job.config.override_dirname`` (exclude_keys, item_sep, kv_sep)."""
    return keys.dir_name(overrides, list(dirname_cfg.exclude_keys), dirname_cfg.item_sep, dirname_cfg.kv_sep)


def _run_dir_resolver(*, _root_: DictConfig) -> str:
    task = list(_root_.hydra.overrides.task)
    return dir_name(typed(task, _root_.get("table")), _root_.hydra.job.config.override_dirname)


OmegaConf.register_new_resolver("senet_run_name", _run_dir_resolver, replace=True)
OmegaConf.register_new_resolver("senet_not_in_dirname", lambda: list(NOT_IN_DIRNAME), replace=True)


def _native_resolver(name: str) -> DictConfig | None:
    """``model.native``: the input backbone ``name`` is built for, from its registry entry (models.MODELS)."""
    from ..models import MODELS  # torch, on first use: --status reads this module without it

    entry = MODELS.get(name)
    return (
        None if entry is None else OmegaConf.create({"image_size": entry.image_size, "num_classes": entry.num_classes})
    )


OmegaConf.register_new_resolver("senet_native", _native_resolver, replace=True)
