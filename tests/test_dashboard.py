"""Figures and the static dashboard of a real (small) training sweep, rendered in headless Chromium."""

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from conftest import clean_env, run_cli, run_job
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])


def test_figures_are_written_as_png_and_svg(quick_sweep):
    figs = quick_sweep / "figures"
    names = {p.stem for p in figs.glob("*.png")}
    assert {"training_curves", "pareto_gflops"} <= names
    # params and GFLOPs rank ResNet-20 < SE avg = SE max alike: no second Pareto plot; no speed figure
    assert not names & {"pareto_params", "overhead"}, names
    for stem in names:
        assert (figs / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
        with Image.open(figs / f"{stem}.png") as im:
            assert im.size[0] > 300 and im.size[1] > 200


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_dashboard_renders_in_headless_chromium(quick_sweep, tmp_path):
    page = quick_sweep / "dashboard.html"
    url = page.as_uri()
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'u1'}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    ).stdout
    parsed = Dom()
    parsed.feed(dom)
    assert parsed.tags.count("table") == 1 and parsed.tags.count("tr") == 4  # header + 3 rows
    assert "SE-ResNet-20 (max squeeze)" in dom and "Welch" in dom
    assert len(parsed.imgs) == 4
    for src in parsed.imgs:
        with Image.open(quick_sweep / src) as im:
            im.verify()
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'u2'}",
            "--window-size=1400,2000",
            f"--screenshot={shot}",
            url,
        ],
        capture_output=True,
        timeout=120,
        check=True,
        env=clean_env(),
    )
    with Image.open(shot) as im:
        grey = im.convert("L")
        dark = sum(grey.histogram()[:200]) / (grey.size[0] * grey.size[1])
    assert dark > 0.03, "the page rendered (nearly) blank"
    index = (quick_sweep / "index.html").read_text()
    assert re.search(r"href='dashboard.html'>quickstart<", index)


def test_excitation_analysis_of_a_trained_run(quick_sweep, tmp_path):
    [run] = [d for d in quick_sweep.iterdir() if "row=se_avg" in d.name and "seed=0" in d.name]
    run_job("task=excitation", f"excitation.run='{run}'", "excitation.per_class=20", "study=exc", cwd=tmp_path)
    [out] = list((tmp_path / "runs/exc").iterdir())
    rec = json.loads((out / "metrics.json").read_text())
    assert rec["status"] == "completed" and rec["task"] == "excitation"
    # last block of stages 2 and 3, every block of the last stage (CIFAR ResNet-20: 3 blocks a stage)
    assert rec["excitation_blocks"] == ["SE_2_3", "SE_3_3", "SE_4_1", "SE_4_2", "SE_4_3"]
    assert rec["images_per_class"] == {"0": 20, "1": 20, "2": 20, "3": 20}
    result = json.loads((out / "excitation.json").read_text())
    for block in result.values():
        assert len(block["all_mean"]) in (16, 32, 64)
        assert all(0 < v < 1 for v in block["all_mean"])  # sigmoid gates
        assert set(block["class_mean"]) == {"0", "1", "2", "3"}
    for kind in ("inter_class", "intra_class"):
        assert (out / f"excitation_{kind}.png").is_file() and (out / f"excitation_{kind}.svg").is_file()


def test_excitation_needs_a_trained_run(tmp_path):
    proc = run_cli("run.app", "task=excitation", f"excitation.run={tmp_path}", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "must be a trained run dir holding last.pt" in proc.stderr


def test_every_file_of_a_sweep_follows_the_umask(quick_sweep):
    """Records, histories, checkpoints, tables, exports, figures and pages get the mode Hydra's own
    files get (0666 less the umask: 0644 under the usual 022), never a private 0600."""
    hydra_modes = {p.stat().st_mode & 0o777 for p in quick_sweep.rglob(".hydra/*.yaml")}
    assert len(hydra_modes) == 1
    ours = [p for p in quick_sweep.rglob("*") if p.is_file() and ".hydra" not in p.parts]
    names = {p.name for p in ours}
    assert {
        "metrics.json",
        "history.csv",
        "last.pt",
        "table.md",
        "table.tex",
        "table.csv",
        "runs.csv",
        "runs.parquet",
        "dashboard.html",
        "index.html",
        "pareto_gflops.png",
        "pareto_gflops.svg",
    } <= names
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in ours if p.stat().st_mode & 0o777 not in hydra_modes} == {}


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o027])
def test_atomic_writes_take_the_process_umask(tmp_path, mask):
    import os

    from senet_ablate.records.atomic import write_atomic

    old = os.umask(mask)
    try:
        write_atomic(tmp_path / "a" / "table.md", "x\n")
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "table.md").stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["table.md"]  # no temporary file left behind
