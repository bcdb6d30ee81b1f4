"""A wheel install, as a user outside this repository gets it: configs and presets inside the
package (pkg://senet_ablate.conf), and the user's own experiment files beside ours."""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import ROOT, clean_env, user_package, write_files

SKIP = shutil.ignore_patterns(
    ".git",
    ".venv",
    "runs",
    "multirun",
    "outputs",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    "results",
    "notebooks",
)
USER_STUDY = """# @package _global_
# a user's own study, kept in their own repository
defaults:
  - override /model: resnet50
  - override /data: imagenet
study: mine/se_vs_plain
row: se
table:
  title: "My study: SE-ResNet-50 vs ResNet-50"
  baseline: plain
  rows:
    plain: {label: "ResNet-50", set: ["se.stages=[]"]}
    se:    {label: "SE-ResNet-50 (r = 8)", set: [se.reduction=8]}
hydra:
  sweeper:
    params:
      row: plain,se
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build the wheel from a copy of the sources and install it (no dependencies) into a fresh
    venv outside the repository that borrows this environment's packages for its dependencies
    (pip too: the venv is made without its own, which ensurepip would spend seconds installing)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=SKIP, symlinks=True)
    build = ["--no-build-isolation"] if _has("setuptools") else []
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *build, "-w", str(tmp / "dist"), str(src)],
        check=True,
        capture_output=True,
        timeout=600,
        env=clean_env(),
    )
    [wheel] = (tmp / "dist").glob("senet_ablate-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300, env=clean_env())
    site = Path(
        subprocess.run(
            [venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            env=clean_env(),
        ).stdout.strip()
    )
    (site / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [venv / "bin/python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
        env=clean_env(),
    )
    return venv, wheel


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def run(venv: Path, cwd: Path, *args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in clean_env().items() if k != "VIRTUAL_ENV"}  # clean_env drops PYTHONPATH
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)  # the user's own package, outside this repository
    proc = subprocess.run(
        [str(venv / "bin/senet-ablate"), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.mark.slow
def test_the_wheel_holds_configs_and_presets(installed):
    import zipfile

    names = zipfile.ZipFile(installed[1]).namelist()
    for path in (
        "senet_ablate/conf/config.yaml",
        "senet_ablate/conf/model/resnet50.yaml",
        "senet_ablate/conf/experiment/paper/table10_reduction.yaml",
        "senet_ablate/conf/hydra/sweeper/rows.yaml",
        "hydra_plugins/senet_ablate_sweeper/rows_sweeper.py",
    ):
        assert path in names, path
    # every module of the checkout is in the wheel: a package left out of pyproject's list is not
    sources = [
        p.relative_to(ROOT).as_posix() for d in ("senet_ablate", "hydra_plugins") for p in (ROOT / d).rglob("*.py")
    ]
    missing = [s for s in sources if "__pycache__" not in s and s not in names]
    assert not missing, f"not in the wheel (add their packages to [tool.setuptools] packages): {missing}"


@pytest.mark.slow
def test_installed_wheel_profiles_a_paper_preset_and_a_user_experiment_from_an_empty_dir(installed, tmp_path):
    venv, _ = installed
    where = subprocess.run(
        [venv / "bin/python", "-c", "import senet_ablate; print(senet_ablate.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(),
    ).stdout
    assert where.startswith(str(venv)), where  # the wheel, not this checkout

    paper = run(venv, tmp_path, "-m", "experiment=paper/table11_squeeze", "task=profile")
    assert "Table 11" in paper.stdout and (tmp_path / "runs/paper/table11_squeeze/table.md").is_file()

    mine = tmp_path / "my_configs"
    (mine / "experiment").mkdir(parents=True)
    (mine / "experiment/se_vs_plain.yaml").write_text(USER_STUDY)
    out = run(venv, tmp_path, "--config-dir", str(mine), "-m", "experiment=se_vs_plain", "task=profile").stdout
    assert "My study" in out and "| SE-ResNet-50 (r = 8) | 30.604 |" in out
    shown = run(
        venv, tmp_path, f"hydra.searchpath=[file://{mine}]", "experiment=se_vs_plain", "row=se", "--cfg", "job"
    ).stdout
    assert "  reduction: 8\n" in shown  # the same study through hydra.searchpath, its row applied


@pytest.mark.slow
def test_installed_wheel_runs_a_users_own_module_backbone_and_dataset(installed, tmp_path):
    """The user's attention module, backbone and dataset, in their own package outside
    this repository, with the wheel installed: a profile sweep beside SE, a train sweep with its
    table, and a relaunch that trains nothing."""
    venv, _ = installed
    pkg = write_files(tmp_path / "user_code", user_package())  # docs/bring-your-own.md's my_gates, my_nets, my_data
    work = tmp_path / "work"
    work.mkdir()
    gate = "{_target_: my_gates.ChannelGate, k: 5}"
    profile = run(venv, work, "-m", "task=profile", "model=resnet50", f"se.module={gate},null", pythonpath=pkg).stdout
    # ResNet-50 (25,557,032) plus 5 conv weights in each of its 16 units; SE-ResNet-50 (28,088,024) beside it
    assert f"| se.module=ChannelGate(k=5) | {(25_557_032 + 16 * 5) / 1e6:.3f} |" in profile
    assert "| se.module=null | 28.088 |" in profile

    train = [
        "-m",
        "task=train",
        "model=custom",
        "model._target_=my_nets.two_stages",
        "data=custom",
        "data._target_=my_data.blobs",
        "data.image_size=12",
        f"se.module={gate}",
        "recipe=quick",
        "recipe.epochs=1",
        "seed=0,1",
        "study=mine",
    ]
    out = run(venv, work, *train, pythonpath=pkg).stdout
    assert "| Row |" in out and "2 done" in out and (work / "runs/mine/table.md").is_file()
    again = run(venv, work, *train, pythonpath=pkg)
    assert (again.stdout + again.stderr).count("already completed") == 2  # nothing trains again
