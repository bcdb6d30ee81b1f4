"""Private APIs of our dependencies that the code relies on, each checked against the release it was
verified with. An upgrade that moves past one fails here, naming what to re-check, rather
than somewhere deep in a sweep; and each API's shape is checked on what is installed."""

import importlib.metadata as md

import pytest

# (package, the release line verified, the private API, where we use it, what to re-check)
PRIVATE = [
    (
        "hydra-core",
        "1.3",
        "hydra._internal.core_plugins.basic_sweeper.BasicSweeper (the base class: sweep, split_arguments, "
        "get_job_batch, its overrides and batch_index)",
        "hydra_plugins/senet_ablate_sweeper/rows_sweeper.py",
        "a sweep runs the same jobs in the same run dirs, records them (jobs.json) before the first starts, and rows "
        "still apply (tests/test_adhoc.py, test_scaleout.py --status)",
    ),
    (
        "hydra-core",
        "1.3",
        "hydra._internal.config_loader_impl.ConfigLoaderImpl.load_configuration (counted, in the tests only)",
        "tests/test_private_apis.py: COUNT_COMPOSITIONS",
        "the counts of compositions below still count every composition Hydra makes",
    ),
    (
        "torch",
        "2.14",
        "DataLoader's multi-process iterator: _shutdown_workers(), _workers",
        "senet_ablate/data/workers.py:stop_workers",
        "a failed or interrupted job leaves no worker behind (tests/test_data.py worker-lifecycle tests)",
    ),
    (
        "torch",
        "2.14",
        "torch._dynamo.utils.counters['stats']['unique_graphs']",
        "senet_ablate/train/compiled.py:compiled_graphs",
        "the recompilation warning of train.compile still fires (tests/test_train.py, train.compile)",
    ),
]


def _line(version: str) -> str:
    return ".".join(version.split(".")[:2])


@pytest.mark.parametrize("package", sorted({p[0] for p in PRIVATE}))
def test_private_apis_were_verified_with_the_installed_release(package):
    installed = md.version(package)
    uses = [p for p in PRIVATE if p[0] == package]
    verified = {p[1] for p in uses}
    if _line(installed) not in verified:
        lines = [f"- {api}\n    used in {where}\n    re-check: {check}" for _, _, api, where, check in uses]
        pytest.fail(
            f"{package} {installed} is not the release line these private APIs were verified with "
            f"({', '.join(sorted(verified))}). Re-check each, then update PRIVATE in tests/test_private_apis.py:\n"
            + "\n".join(lines)
        )


def test_the_hydra_private_apis_have_the_shape_we_call():
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(["a=1,2", "b=x"])
    assert BasicSweeper.split_arguments(parsed, None) == [[["a=1", "b=x"], ["a=2", "b=x"]]]
    sweeper = BasicSweeper(max_batch_size=None, params=None)
    assert sweeper.batch_index == 0 and callable(sweeper.get_job_batch)  # what RowsSweeper.get_job_batch reads


# varied overrides: groups, +/++/~, packages, quoted values holding = and commas, lists, dicts, paths, excluded keys
OVERRIDES = [
    *("a=1", "+b.c=x", "++d=2", "~e", "~f=3", "model=resnet50", "hydra/launcher=joblib", "g@pkg=v", "+grp@pkg=v2"),
    *("h='x=y'", "i=[1,2]", "j={k:1}", "l=a/b", 'm="q r"', "seed=0", "study=s", "table.baseline=x", "n= 5", "o="),
    *("p=null", "runs_dir=/tmp/x", "se.stages=[]", "recipe.lr=0.05"),
]


@pytest.mark.parametrize("sep", [(",", "="), ("__", ":")])
def test_run_dir_names_are_hydras_override_dirname_without_its_private_api(sep):
    """``keys.dir_name`` (plain Python) names a run dir as Hydra's private ``get_overrides_dirname`` did (then
    ``/`` as ``_``, ``default`` for none): committed results/ resume by these names (tests/test_results.py)."""
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from senet_ablate.records.keys import dir_name

    excluded = ["seed", "study", "table.baseline", "runs_dir", "g", "e"]
    for overrides in [OVERRIDES, [], *([o] for o in OVERRIDES)]:
        parsed = OverridesParser.create().parse_overrides(overrides)
        hydra = get_overrides_dirname(parsed, excluded, *sep).replace("/", "_") or "default"
        assert dir_name(overrides, excluded, *sep) == hydra, overrides


def test_status_expands_an_unrecorded_sweep_as_the_basic_sweeper_does(tmp_path):
    """A sweep without jobs.json (older results/): ``status.expand`` reads its multirun.yaml with Hydra's public
    override parser into the jobs, order and run dirs of the basic sweeper's private ``split_arguments``."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from senet_ablate.records.keys import NOT_IN_DIRNAME, dir_name
    from senet_ablate.study import status

    task = ["seed=0,1", "+x@p=1,2", "~y", "model=a,b", "se.reduction=range(2,8,2)", "study=q", "a='u,v'", "b=[1,2]"]
    params = {"recipe.lr": "0.1,0.2", "seed": "5"}
    naming = {"exclude_keys": "${senet_not_in_dirname:}", "item_sep": ",", "kv_sep": "="}
    cfg = OmegaConf.create({"hydra": {"overrides": {"task": task}, "sweeper": {"params": params}}})
    cfg.hydra.job = {"config": {"override_dirname": naming}}
    params = [f"{k}={v}" for k, v in params.items()]
    (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params + task), None)
    expanded = status.expand(cfg)
    assert [list(j.overrides) for j in expanded] == jobs and len(jobs) == 2 * 2 * 2 * 3 * 2
    assert [j.dir_name for j in expanded] == [dir_name(j, NOT_IN_DIRNAME) for j in jobs]


def test_the_dataloader_iterator_still_has_the_workers_we_stop():
    import torch
    from torch.utils.data import DataLoader

    it = iter(DataLoader(torch.arange(8), batch_size=2, num_workers=1))
    try:
        assert callable(it._shutdown_workers) and len(it._workers) == 1 and it._workers[0].is_alive()
    finally:
        it._shutdown_workers()
    assert not it._workers[0].is_alive()


def test_dynamo_still_counts_unique_graphs():
    import torch
    from torch._dynamo.utils import counters

    before = counters["stats"]["unique_graphs"]
    torch.compile(lambda x: x * 2 + 1, backend="eager")(torch.ones(3))  # dynamo's graph capture, no inductor
    assert counters["stats"]["unique_graphs"] == before + 1


# senet-ablate with Hydra's config loader counted: every composition of a config, Hydra's own included
COUNT_COMPOSITIONS = """
import atexit, sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl
calls = []
original = ConfigLoaderImpl.load_configuration
def counted(self, config_name, overrides, *args, **kwargs):
    calls.append(list(overrides))
    return original(self, config_name, overrides, *args, **kwargs)
ConfigLoaderImpl.load_configuration = counted
atexit.register(lambda: print(f"COMPOSITIONS {len(calls)}", flush=True))
sys.argv = ["senet-ablate", *sys.argv[1:]]
from senet_ablate.run.app import main
main()
"""


@pytest.mark.parametrize(
    "args, compositions, jobs",
    [
        # a sweep: Hydra's mode check and the master config, then each job once (the sweeper puts its row in
        # front); before, the basic sweeper composed a job to check it, the launcher again, the job with its
        # row a third time: 2 + 3 x 2 = 8
        (["-m", "experiment=paper/table11_squeeze", "task=profile"], 4, 2),
        # a single job with a row: the row read from the preset's files (run/cmdline.py), then Hydra's mode
        # check and the job; before, reading the rows composed the config first: 3
        (["experiment=paper/table10_reduction", "row=r4", "task=profile"], 2, 1),
    ],
)
def test_each_job_is_composed_once(tmp_path, args, compositions, jobs):
    import json

    from conftest import ZYGOTE, clean_env

    (tmp_path / "count_compositions.py").write_text(COUNT_COMPOSITIONS)  # run as `python -m count_compositions`
    proc = ZYGOTE.run("count_compositions", args, cwd=tmp_path, env=clean_env(PYTHONPATH=str(tmp_path)), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"COMPOSITIONS {compositions}\n" in proc.stdout
    recs = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("metrics.json")]
    assert len(recs) == jobs and all(r["status"] == "completed" for r in recs)
    if jobs == 1:
        assert recs[0]["config"]["se"]["reduction"] == 4 and recs[0]["overrides"][0] == "se.reduction=4"
