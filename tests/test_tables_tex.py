"""table.tex prints what the table holds: every LaTeX special character in a row label, a title or
a user's _target_ arguments is escaped. Where pdflatex exists the sweep's table.tex is
compiled; elsewhere the escaping is checked character by character against LaTeX's rules."""

import shutil
import subprocess

import pytest
from conftest import run_cli

from senet_ablate.study.formats import TEX, tex_escape

# LaTeX's ten special characters and how a document prints each of them as text (the LaTeX
# Companion, "special characters"), written out here rather than read back from our table
SPECIALS = {
    "#": r"\#",
    "$": r"\$",
    "%": r"\%",
    "&": r"\&",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}
LABELS = {"plain": "ResNet-20 {a_b} $5 ^2 ~x", "se": "SE & 50% #1 † <r>"}


def test_every_special_character_is_escaped_once():
    for char, latex in SPECIALS.items():
        assert tex_escape(char) == latex, char
    # in one pass: the braces and backslashes an escape writes are not escaped again
    assert tex_escape("{\\}") == r"\{\textbackslash{}\}"
    assert tex_escape("a†b") == r"a\dag{}b" and tex_escape("±") == r"$\pm$" and tex_escape("<") == "$<$"
    assert set(SPECIALS) <= set(TEX)


def _unescaped(tex: str) -> list[str]:
    """Specials left in text once every escape our table may write is taken out."""
    for escape in sorted(TEX.values(), key=len, reverse=True):
        tex = tex.replace(escape, "")
    return [c for c in "#$%&_{}~^\\" if c in tex]


def test_a_sweep_with_special_characters_in_its_labels_writes_a_tex_table_latex_accepts(tmp_path):
    mine = tmp_path / "my_configs/experiment"
    mine.mkdir(parents=True)
    sets = {"plain": "se.stages=[]", "se": "se.reduction=8"}
    rows = "\n".join(f'    {k}: {{label: "{v}", set: ["{sets[k]}"]}}' for k, v in LABELS.items())
    (mine / "tex.yaml").write_text(
        "# @package _global_\nstudy: tex\ntask: profile\nrow: plain\n"
        f'table:\n  title: "Labels with ^ and ~ and $ and {{braces}}"\n  baseline: plain\n  rows:\n{rows}\n'
        "hydra:\n  sweeper:\n    params:\n      row: plain,se\n"
    )
    run_cli("run.app", "--config-dir", "my_configs", "-m", "experiment=tex", "model=cifar_resnet20", cwd=tmp_path)
    tex = (tmp_path / "runs/tex/table.tex").read_text()
    cells = [line for line in tex.splitlines() if "&" in line and "toprule" not in line]
    assert any(tex_escape(LABELS["se"]) in c for c in cells) and any(tex_escape(LABELS["plain"]) in c for c in cells)
    rows_only = "\n".join(line.split(" & ")[0] for line in cells)
    assert not _unescaped(rows_only), rows_only
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed: the characters are checked above, the document not compiled")
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + tex + "\\end{document}\n")
    out = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0
