"""Figures and the static dashboard of a real (small) training sweep, rendered in headless Chromium."""
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from PIL import Image

from conftest import run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def quick_sweep(tmp_path_factory):
    """A real 3-row x 2-seed training sweep (1 epoch) on digits, reported with --html."""
    cwd = tmp_path_factory.mktemp("dash")
    run_cli("app", "-m", "experiment=quickstart", "recipe.epochs=2", cwd=cwd)
    run_cli("report", "runs/quickstart", "--html", cwd=cwd)
    return cwd / "runs/quickstart"


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
    assert {"training_curves", "pareto_gflops", "pareto_params", "overhead"} <= names
    for stem in names:
        assert (figs / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
        with Image.open(figs / f"{stem}.png") as im:
            assert im.size[0] > 300 and im.size[1] > 200


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_dashboard_renders_in_headless_chromium(quick_sweep, tmp_path):
    page = quick_sweep / "dashboard.html"
    url = page.as_uri()
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'u1'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout
    parsed = Dom()
    parsed.feed(dom)
    assert parsed.tags.count("table") == 1 and parsed.tags.count("tr") == 4  # header + 3 rows
    assert "SE-ResNet-20 (max squeeze)" in dom and "Welch" in dom
    assert len(parsed.imgs) == 4
    for src in parsed.imgs:
        with Image.open(quick_sweep / src) as im:
            im.verify()
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'u2'}", "--window-size=1400,2000",
                    f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    with Image.open(shot) as im:
        grey = im.convert("L")
        dark = sum(grey.histogram()[:200]) / (grey.size[0] * grey.size[1])
    assert dark > 0.03, "the page rendered (nearly) blank"
    index = (quick_sweep / "index.html").read_text()
    assert re.search(r"href='dashboard.html'>quickstart<", index)
