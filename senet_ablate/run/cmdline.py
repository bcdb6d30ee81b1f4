"""A single job's command line with its study row in front, read before Hydra composes it.

``senet-ablate experiment=paper/table10_reduction row=r4`` runs the row's overrides (the preset's
``table.rows.r4.set``) in front of the command line's, so that Hydra composes the job once with the
row applied and ``--cfg job`` shows it. The rows are read from the preset's YAML files (the preset
and the presets its defaults list names), not by composing a config: the job's one composition is
Hydra's. A sweep (``-m``) gets the same from our sweeper (``hydra_plugins/senet_ablate_sweeper``).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .rows import last_value, parse, with_row

CONFIG_MODULE = "senet_ablate.conf"  # conf/ of the repository, shipped inside the wheel


@dataclass(frozen=True)
class CommandLine:
    """What ``senet-ablate`` was given: Hydra's flags that matter here and the overrides."""

    overrides: list[str]
    config_dirs: list[Path]  # where presets are looked up besides the package's conf/
    single_job: bool  # neither -m nor a help flag: one job, composed by Hydra's run mode


def _flags() -> argparse.ArgumentParser:
    """Hydra's command-line flags (``senet-ablate --hydra-help``), read with argparse: the ones this
    module needs keep their values, the others are accepted so that the overrides come out right."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in ("--help", "-h", "--hydra-help", "--version", "--resolve", "--run", "-r", "--shell-completion", "-sc"):
        p.add_argument(flag, action="store_true", dest=f"flag_{flag.lstrip('-')}")
    p.add_argument("--multirun", "-m", action="store_true")
    for flags in (("--cfg", "-c"), ("--package", "-p"), ("--config-path", "-cp"), ("--config-name", "-cn")):
        p.add_argument(*flags)
    p.add_argument("--config-dir", "-cd")
    p.add_argument("--experimental-rerun")
    p.add_argument("--info", "-i", nargs="?", const="all")
    p.add_argument("overrides", nargs="*")
    return p


def read(args: list[str]) -> CommandLine | None:
    """The command line, or None when it does not parse (Hydra then reports it)."""
    try:
        parsed, unknown = _flags().parse_known_args(args)
    except SystemExit:
        return None
    if unknown:
        return None
    helps = [v for k, v in vars(parsed).items() if k.startswith("flag_") and k not in ("flag_resolve", "flag_run")]
    dirs = [Path(os.path.abspath(parsed.config_dir))] if parsed.config_dir else []
    dirs += _search_path(parsed.overrides)
    single = not (parsed.multirun or any(helps) or parsed.info)
    return CommandLine(list(parsed.overrides), dirs, single)


def _search_path(overrides: list[str]) -> list[Path]:
    """The ``file://`` folders of a ``hydra.searchpath=[...]`` override."""
    found = [o.value() for o in parse(overrides) if o.key_or_group == "hydra.searchpath" and not o.is_delete()]
    entries = found[-1] if found and isinstance(found[-1], list) else []
    return [Path(str(e).removeprefix("file://")).expanduser() for e in entries if str(e).startswith("file://")]


def _preset_file(name: str, dirs: list[Path]) -> Path | None:
    """``experiment/<name>.yaml`` in the user's folders first, then in the package's conf/."""
    for root in dirs:
        path = root / "experiment" / f"{name}.yaml"
        if path.is_file():
            return path
    packaged = resources.files(CONFIG_MODULE) / "experiment" / f"{name}.yaml"
    return Path(str(packaged)) if packaged.is_file() else None


def preset_rows(name: str, dirs: list[Path], depth: int = 0) -> DictConfig | None:
    """A preset's ``table.rows`` with the presets its defaults list names merged in Hydra's order (a
    preset's own content after its defaults unless ``_self_`` says otherwise); None when the preset
    is not found or names no rows."""
    path = _preset_file(name, dirs)
    if path is None or depth > 8:
        return None
    own = OmegaConf.load(path)
    entries = [e for e in own.get("defaults") or [] if isinstance(e, str)]
    parts = [] if "_self_" in entries else [None]  # None: the preset's own rows
    for entry in reversed(entries):
        parts.insert(0, None if entry == "_self_" else _parent(name, entry))
    merged = OmegaConf.create({})
    for parent in parts:
        rows = (own.get("table") or {}).get("rows") if parent is None else preset_rows(parent, dirs, depth + 1)
        if rows is not None:
            merged = OmegaConf.merge(merged, rows)
    return merged if len(merged) else None


def _parent(name: str, entry: str) -> str:
    """The preset a defaults entry of preset ``name`` names: ``/experiment/x`` absolute, ``x`` relative to
    the preset's own folder (another group's config gives a name no preset has)."""
    if entry.startswith("/"):
        return entry[len("/experiment/") :] if entry.startswith("/experiment/") else entry
    return str(Path(name).parent / entry)


def row_in_front(args: list[str]) -> list[str]:
    """A single job's arguments with its row's overrides in front; unchanged when there is no row, no
    preset, or the command line is not a single job (a sweep's rows are put in front by the sweeper).
    A row the preset does not name is left for the job to report with the valid rows."""
    line = read(args)
    if line is None or not line.single_job or last_value(line.overrides, "row") is None:
        return args
    experiment = last_value(line.overrides, "experiment")
    rows = preset_rows(experiment, line.config_dirs) if experiment else None
    if rows is None:
        return args
    full = with_row(line.overrides, OmegaConf.create({"rows": rows}))
    return [*full[: len(full) - len(line.overrides)], *args]
