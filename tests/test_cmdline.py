"""A single job's study row, read from the preset's files before Hydra composes the job
(senet_ablate/run/cmdline.py): the same rows Hydra's composition gives, for every preset."""

from pathlib import Path

import pytest
from conftest import EXPERIMENTS, ROOT, write_files
from omegaconf import OmegaConf

from senet_ablate.run.cmdline import preset_rows, read, row_in_front


def _sets(rows) -> dict:
    return {name: [str(o) for o in (row.get("set") or [])] for name, row in (rows or {}).items()}


# every preset that inherits another's rows (its defaults list names one), and two that do not
INHERITING = [p for p in EXPERIMENTS if "/experiment/" in (ROOT / "experiments" / f"{p}.yaml").read_text()]
PLAIN = ["paper/table10_reduction", "cpu/table11_squeeze"]


@pytest.mark.parametrize("preset", INHERITING + PLAIN)
def test_the_rows_read_from_the_files_are_the_composed_rows(compose_cfg, preset):
    composed = compose_cfg(f"experiment={preset}").get("table") or {}
    assert _sets(preset_rows(preset, [])) == _sets(composed.get("rows"))


def test_the_row_goes_in_front_and_the_command_line_still_wins():
    args = ["experiment=paper/table10_reduction", "row=r4", "se.reduction=8", "--cfg", "job"]
    assert row_in_front(args) == ["se.reduction=4", *args]
    assert row_in_front(["experiment=paper/table2_imagenet", "row=se_resnet101"])[0] == "model=resnet101"


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "experiment=paper/table10_reduction", "row=r4"],  # a sweep: the sweeper puts rows in front
        ["experiment=paper/table10_reduction", "row=r4", "--help"],
        ["experiment=paper/table10_reduction"],  # no row typed: the preset's own row: value
        ["experiment=paper/table10_reduction", "row=nope"],  # not a row: the job names the valid ones
        ["row=r4"],  # no preset
        ["experiment=paper/table10_reduction", "row=r4", "--no-such-flag"],  # Hydra reports it
    ],
)
def test_left_as_typed(args):
    assert row_in_front(args) == args


def test_a_users_preset_in_a_config_dir_inherits_a_packaged_one(tmp_path: Path):
    write_files(
        tmp_path,
        {
            "experiment/mine.yaml": "# @package _global_\ndefaults:\n  - /experiment/paper/table10_reduction\n"
            "table:\n  rows:\n    r64: {label: r64, set: [se.reduction=64]}\n"
        },
    )
    line = read(["-cd", str(tmp_path), "experiment=mine", "row=r64"])
    assert line is not None and line.single_job and line.config_dirs == [tmp_path]
    rows = preset_rows("mine", line.config_dirs)
    assert _sets(rows)["r64"] == ["se.reduction=64"] and _sets(rows)["r4"] == ["se.reduction=4"]
    assert row_in_front([f"hydra.searchpath=[file://{tmp_path}]", "experiment=mine", "row=r64"])[0] == "se.reduction=64"
    assert OmegaConf.is_config(rows)
