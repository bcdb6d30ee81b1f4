"""Adaptive studies end to end: ``hydra.sweeper.until=verdict`` on a cheap digits study whose rows
have a large true effect (one epoch at a fifth of the learning rate) and a small one (max vs avg squeeze), with
a margin too narrow for 450 test images to show equivalence; interrupted (SIGKILL), capped (``max_runs``) and
relaunched; bad plans refused before any work."""

import json
import os
import re
import signal

import pandas as pd
import pytest
from conftest import pause_env, record, run_cli, start_cli, wait_paused, write_files

pytestmark = pytest.mark.slow

EXPERIMENT = """# @package _global_
study: adaptive
row: base
deterministic: true
recipe: {epochs: 2}
table:
  title: adaptive digits
  baseline: base
  margin: 0.1
  correction: none
  rows:
    base: {label: SE avg, set: []}
    short: {label: "SE avg, 1 epoch at lr/5", set: [recipe.epochs=1, recipe.lr=0.01]}
    close: {label: SE max, set: [se.squeeze=max]}
hydra:
  sweeper:
    params:
      seed: 0,1,2
      row: base,short,close
"""
# Pocock's boundary: a first look at a level the large effect clears with room on any CPU (p about 0.006 < 0.038)
ARGS = [
    "-m",
    "--config-dir",
    "user_conf",
    "experiment=adaptive",
    "hydra.sweeper.until=verdict",
    "hydra.sweeper.spending=pocock",
]
MAX4 = "hydra.sweeper.max_seeds=4"


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The uninterrupted adaptive sweep."""
    cwd = tmp_path_factory.mktemp("adaptive")
    write_files(cwd, {"user_conf/experiment/adaptive.yaml": EXPERIMENT})
    out = run_cli("run.app", *ARGS, MAX4, "runs_dir=whole", cwd=cwd)
    return cwd, out.stdout + out.stderr


def seeds(root) -> dict:
    out: dict = {}
    for d in sorted(root.glob("row=*")):
        rec = record(d)
        if rec["status"] == "completed":
            out.setdefault(rec["row"], []).append(rec["seed"])
    return {k: sorted(v) for k, v in out.items()}


def decisions(root) -> dict:
    table = pd.read_csv(root / "table.csv")
    table = table.astype(object).fillna("–")  # the baseline row has no Δ and no stop
    return {r["row"]: (r["top1_err_verdict"], r["stopped"], r["top1_err_delta"]) for _, r in table.iterrows()}


def test_a_large_effect_stops_at_the_first_look_and_a_small_one_gets_seeds_up_to_max_seeds(whole):
    cwd, out = whole
    root = cwd / "whole" / "adaptive"
    assert seeds(root) == {"base": [0, 1, 2, 3], "close": [0, 1, 2, 3], "short": [0, 1, 2]}
    got = decisions(root)
    assert got["short"][:2] == ("worse", "worse at 3 seeds")
    assert got["close"][:2] == ("unresolved", "max_seeds reached at 4 seeds")
    assert "at most 12 runs" in out and "next round, 2 runs" in out  # the budget, then the one extra round
    plan = json.loads((root / "plan.json").read_text())
    assert plan["seeds"] == [0, 1, 2, 3] and plan["compared"] == {"short": "base", "close": "base"}
    assert plan["shares"] == {"short": 0.05, "close": 0.05}  # table.correction=none: each at alpha
    md = (root / "table.md").read_text()
    first = float(re.search(r"SE avg, 1 epoch at lr/5: α share 0.05; .*?\(seeds: level\): 3: ([0-9.e-]+);", md)[1])
    assert "Pocock-type" in md and 0.02 < first < 0.05  # the first look spends most of alpha: images dominate
    table = pd.read_csv(root / "table.csv").set_index("row")
    lo, hi = table.loc["short", ["top1_err_delta_lo", "top1_err_delta_hi"]]
    assert lo > 0 and table.loc["short", "top1_err_delta_level"] == pytest.approx(1 - first, abs=1e-3)


def test_an_interrupted_capped_and_relaunched_sweep_takes_the_same_decisions_and_trains_nothing_twice(whole):
    cwd, _ = whole
    cut = cwd / "cut" / "adaptive"
    marks = cwd / "marks"
    capped = [*ARGS, MAX4, "runs_dir=cut", "hydra.sweeper.max_runs=10"]
    proc = start_cli("run.app", *capped, cwd=cwd, env=pause_env(marks, "1:0", run="row=close,seed=3"))
    wait_paused(marks, proc)  # round 2 of the plan: the one run max_runs=10 leaves room for
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=120)
    first_round = {d.name: (d / "metrics.json").read_bytes() for d in cut.glob("row=*") if record(d)["seed"] < 3}
    assert len(first_round) == 9 and record(cut / "row=close,seed=3")["status"] == "running"

    run_cli("run.app", *capped, cwd=cwd)  # resumes the killed run, then stops at the cap
    assert seeds(cut) == {"base": [0, 1, 2], "close": [0, 1, 2, 3], "short": [0, 1, 2]}
    assert decisions(cut)["close"][1] == "max_runs reached at 3 seeds"
    status = run_cli("study.cli", "--status", str(cut), cwd=cwd).stdout
    assert "owes 1 runs for the next look: SE avg seed 3" in status and "max_runs=10 is reached" in status
    lifted = status.split("continue the plan (it resumes from the records): ")[1].strip()
    assert "hydra.sweeper.until=verdict" in lifted and "max_runs" not in lifted

    run_cli("run.app", *ARGS, MAX4, "runs_dir=cut", cwd=cwd)  # the cap lifted: the plan goes on to its end
    whole_root = cwd / "whole" / "adaptive"
    assert seeds(cut) == seeds(whole_root)
    assert decisions(cut) == decisions(whole_root)
    for d in whole_root.glob("row=*"):
        assert record(cut / d.name)["top1_err"] == record(d)["top1_err"], d.name
    assert {n: (cut / n / "metrics.json").read_bytes() for n in first_round} == first_round  # not trained again


def test_a_plan_that_cannot_hold_or_changes_after_looking_fails_before_any_work(whole):
    cwd, _ = whole
    bad = run_cli("run.app", *ARGS, "hydra.sweeper.max_runs=5", "runs_dir=bad", cwd=cwd, check=False)
    assert bad.returncode != 0 and "max_runs=5 is below the first round's 9 jobs" in bad.stderr
    assert not (cwd / "bad").exists() or not any((cwd / "bad").rglob("metrics.json"))
    typo = run_cli("run.app", *ARGS, "hydra.sweeper.until=verdicts", "runs_dir=bad", cwd=cwd, check=False)
    assert typo.returncode != 0 and "until='verdicts': valid values: verdict" in typo.stderr
    changed = run_cli("run.app", *ARGS, "hydra.sweeper.max_seeds=6", "runs_dir=whole", cwd=cwd, check=False)
    assert changed.returncode != 0 and "max_seeds: 4 -> 6" in changed.stderr
    assert json.loads((cwd / "whole" / "adaptive" / "plan.json").read_text())["max_seeds"] == 4


def test_a_plan_is_its_own_whatever_other_runs_share_its_study_dir(tmp_path):
    """The README tour in one directory: a 2×2 sweep, then an adaptive one in the same study (adhoc). The plan
    counts, looks at and tabulates its own runs only, and owes nothing of the other sweep's rows."""
    one = ["recipe.epochs=1", "data.subset=0.5"]
    run_cli("run.app", "-m", "se.squeeze=avg,max", "se.gate=sigmoid,tanh", "seed=0,1", *one, cwd=tmp_path)
    out = run_cli(
        "run.app", "-m", "se.squeeze=avg,max", "seed=0,1,2", "hydra.sweeper.until=verdict",
        "hydra.sweeper.max_seeds=3", *one, cwd=tmp_path,
    )  # fmt: skip
    said = out.stdout + out.stderr
    assert "2 rows, seeds 0,1,2 first" in said and "at most 6 runs" in said
    assert "adaptive sweep: 6 runs done, at most 0 more" in said and "runs are not part of its adaptive plan" in said
    plan = json.loads((tmp_path / "runs/adhoc/plan.json").read_text())
    assert plan["compared"] == {"se.squeeze=max": "se.squeeze=avg"} and len(plan["runs"]) == 6
    table = pd.read_csv(tmp_path / "runs/adhoc/table.csv")
    assert sorted(table["row"]) == ["se.squeeze=avg", "se.squeeze=max"] and set(table["completed"]) == {3}
    assert "se.gate" not in (tmp_path / "runs/adhoc/table.md").read_text()
