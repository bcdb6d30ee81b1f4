"""task=excitation (paper Sec. 7.2, Figs. 6 and 7) picks its blocks by their stage and unit index,
whatever a backbone names them: the Shake nets' units carry one block per branch."""

from __future__ import annotations

import json

import pytest
from conftest import run_job

from senet_ablate.models import MODELS, build_model
from senet_ablate.run.activations import blocks_of_interest
from senet_ablate.se import ChannelAttention, SESpec

SHAKE_BRANCHES = ["SE_2_4a", "SE_2_4b", "SE_3_4a", "SE_3_4b", *[f"SE_4_{k}{t}" for k in range(1, 5) for t in "ab"]]


@pytest.mark.parametrize(
    "name, options, spec, want",
    [
        ("cifar_resnet20", {}, SESpec(), ["SE_2_3", "SE_3_3", "SE_4_1", "SE_4_2", "SE_4_3"]),
        ("cifar_resnet20", {}, SESpec(stages=(2, 3)), ["SE_2_3", "SE_3_1", "SE_3_2", "SE_3_3"]),
        ("shake_shake26_2x96d", {}, SESpec(), SHAKE_BRANCHES),
        (
            "shake_shake26_2x96d",
            {"se_on": "sum"},
            SESpec(),
            ["SE_2_4", "SE_3_4", "SE_4_1", "SE_4_2", "SE_4_3", "SE_4_4"],
        ),
        ("bn_inception", {}, SESpec(), ["SE_3_3", "SE_4_5", "SE_5_1", "SE_5_2"]),
    ],
)
def test_the_last_unit_of_every_stage_and_every_unit_of_the_last_stage(name, options, spec, want):
    model = build_model(name, spec, 10, device="meta", **options)
    assert list(blocks_of_interest(model)) == want


@pytest.mark.parametrize("name", list(MODELS))
def test_every_block_carries_the_stage_and_unit_its_name_says(name):
    options = {"se_on": "branch"} if name.startswith("shake") else {}
    blocks = [
        m
        for m in build_model(name, SESpec(), 10, device="meta", **options).modules()
        if isinstance(m, ChannelAttention)
    ]
    assert blocks
    for b in blocks:
        assert isinstance(b.stage, int) and isinstance(b.index, int) and b.index >= 1
        assert b.name in (f"SE_{b.stage}_{b.index}", f"SE_{b.stage}_{b.index}a", f"SE_{b.stage}_{b.index}b")


@pytest.mark.slow
def test_excitation_of_a_trained_shake_shake_run_keeps_both_branch_blocks(tmp_path):
    """One epoch of Shake-Shake 26 2x96d on 256 of the 8x8 digits (data.subset: 10 eval images a class, what
    the analysis reads), then its excitation figures: every block of interest is a branch block (its name
    ends in a or b)."""
    run_job(
        "task=train",
        "model=shake_shake26_2x96d",
        "data=digits",
        "data.subset={train: 256, eval: 100}",
        "recipe=quick",
        "recipe.epochs=1",
        "study=shake",
        cwd=tmp_path,
    )
    [run] = [p.parent for p in (tmp_path / "runs/shake").rglob("last.pt")]
    run_job("task=excitation", f"excitation.run='{run}'", "excitation.per_class=10", "study=exc", cwd=tmp_path)
    [out] = list((tmp_path / "runs/exc").iterdir())
    assert (out / "excitation_inter_class.png").is_file() and (out / "excitation_intra_class.png").is_file()
    result = json.loads((out / "excitation.json").read_text())
    assert list(result) == SHAKE_BRANCHES
    assert json.loads((out / "metrics.json").read_text())["excitation_blocks"] == SHAKE_BRANCHES
