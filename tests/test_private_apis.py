"""Private APIs of our dependencies that the code relies on, each checked against the release it was
verified with. An upgrade that moves past one fails here, naming what to re-check, rather
than somewhere deep in a sweep; and each API's shape is checked on what is installed."""

import importlib.metadata as md
import inspect

import pytest

# (package, the release line verified, the private API, where we use it, what to re-check)
PRIVATE = [
    (
        "hydra-core",
        "1.3",
        "hydra._internal.core_plugins.basic_sweeper.BasicSweeper (split_arguments, sweep)",
        "senet_ablate/run/rows.py:expand, hydra_plugins/senet_ablate_sweeper/rows_sweeper.py",
        "a sweep expands to the same jobs (tests/test_adhoc.py, test_scaleout.py --status) and rows still apply",
    ),
    (
        "hydra-core",
        "1.3",
        "hydra._internal.config_loader_impl.get_overrides_dirname",
        "senet_ablate/run/rows.py:dir_name",
        "run-dir names are unchanged (committed results/ resume by them: tests/test_results.py)",
    ),
    (
        "hydra-core",
        "1.3",
        "hydra._internal.utils.get_args_parser",
        "senet_ablate/run/app.py (a single run's row before Hydra composes it)",
        "`senet-ablate row=...` and --config-dir still compose the row (tests/test_presets.py)",
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
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    assert list(inspect.signature(get_overrides_dirname).parameters) == [
        "overrides",
        "exclude_keys",
        "item_sep",
        "kv_sep",
    ]
    parsed = OverridesParser.create().parse_overrides(["a=1,2", "b=x"])
    assert BasicSweeper.split_arguments(parsed, None) == [[["a=1", "b=x"], ["a=2", "b=x"]]]
    args = get_args_parser().parse_args(["-m", "--config-dir", "d", "x=1"])
    assert args.multirun and args.config_dir == "d" and args.overrides == ["x=1"]


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
