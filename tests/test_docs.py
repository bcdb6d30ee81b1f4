"""The documentation's runnable examples, run as written: in each page, a fenced block
after ``<!-- docs-test: file NAME -->`` is saved as NAME in a fresh directory, and one after
``<!-- docs-test: run -->`` is run there (bash or python, with that directory on PYTHONPATH); the
table rows of an output block right after a run must appear in what it printed. The site itself
builds with ``mkdocs build --strict`` (a broken link or a page missing from the nav fails)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, clean_env, doc_steps

PAGES = sorted(p for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")] if "docs-test:" in p.read_text())


def test_every_marker_is_read():
    for page in PAGES:
        assert page.read_text().count("docs-test:") == len(doc_steps(page)), page


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_examples_run_as_written(page, tmp_path):
    env = clean_env(PYTHONPATH=str(tmp_path))
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # this venv's senet-ablate
    for kind, name, lang, code, expected in doc_steps(page):
        if kind == "file":
            (tmp_path / name).write_text(code)
            continue
        cmd = ["bash", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, f"{page.name}:\n{code}\n{out.stdout}\n{out.stderr}"
        for row in (line for line in expected.splitlines() if line.startswith("| ") and "---" not in line):
            assert row in out.stdout, f"{page.name}: {row!r} not printed by\n{code}\n{out.stdout}"


@pytest.mark.slow
def test_the_site_builds_strict(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[test]')")
    out = subprocess.run(
        [mkdocs, "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=clean_env(NO_MKDOCS_2_WARNING="1"),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "create_model" in (tmp_path / "site/python-api/index.html").read_text()  # the reference from docstrings
