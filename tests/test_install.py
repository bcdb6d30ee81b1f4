"""A wheel install, as a user outside this repository gets it: configs and presets inside the
package (pkg://senet_ablate.conf), and the user's own experiment files beside ours."""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import ROOT, clean_env

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
    venv outside the repository that borrows this environment's packages for its dependencies."""
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
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=clean_env())
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


def run(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in clean_env().items() if k != "VIRTUAL_ENV"}  # clean_env drops PYTHONPATH
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
