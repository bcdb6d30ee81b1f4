"""The house in three rooms (docs/layout.md): the core (torch alone), run/ (the Hydra edge) and
study/ (records to tables). Dependencies point one way: run/ uses the core and study/, study/
reads only the record format, the core imports neither."""

import ast
import subprocess
import sys

from conftest import ROOT, clean_env

PKG = ROOT / "senet_ablate"
RECORD_FORMAT = ("senet_ablate.records", "senet_ablate.errors")


def _module(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path) -> list[tuple[str, bool]]:
    """(the absolute module each import names, whether it runs at import time) for one file."""
    name = _module(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            mod = ".".join([*base, *([node.module] if node.module else [])])
            out += [(f"{mod}.{a.name}" if not node.module else mod, id(node) in top) for a in node.names]
    return out


def _room(module: str) -> str:
    for room in ("run", "study"):
        if module == f"senet_ablate.{room}" or module.startswith(f"senet_ablate.{room}."):
            return room
    return "core"


def test_dependencies_point_one_way():
    wrong = []
    for path in PKG.rglob("*.py"):
        me = _module(path)
        for target, _ in _imports(path):
            if not target.startswith("senet_ablate"):
                continue
            there = _room(target)
            if _room(me) == "core" and there != "core":
                wrong.append(f"{me} (core) imports {target}")
            if _room(me) == "study" and there == "run":  # not even lazily: a sweep's jobs are a record
                wrong.append(f"{me} (study) imports {target}")
            if _room(me) == "study" and there == "core" and not target.startswith(RECORD_FORMAT):
                wrong.append(f"{me} (study) reads more than the record format: {target}")
    assert not wrong, "\n".join(wrong)


def test_study_never_imports_torch_or_hydra_when_loaded():
    heavy = ("torch", "torchvision", "hydra", "omegaconf")
    wrong = [
        f"{_module(p)} imports {t} at import time"
        for p in (PKG / "study").rglob("*.py")
        for t, at_import in _imports(p)
        if at_import and t.split(".")[0] in heavy
    ]
    assert not wrong, "\n".join(wrong)


def test_few_modules_at_the_top():
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= 8, f"{len(top)} modules at the top of senet_ablate/ (a room for them?): {top}"
    assert {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file()} >= {"run", "study", "records", "se"}


BLOCKED = """
import sys
for name in ("torch", "torchvision", "hydra", "omegaconf"):
    sys.modules[name] = None  # any import of them now fails
import senet_ablate.study
from senet_ablate.study import cli, collect, compare, dashboard, grouping, inference, plots, report, sequential
from senet_ablate.study import status, tables
sys.argv = ["senet-report", "--help"]
cli.main()
"""


def test_study_and_senet_report_import_with_torch_and_hydra_blocked(tmp_path):
    out = subprocess.run([sys.executable, "-c", BLOCKED], capture_output=True, text=True, timeout=300, env=clean_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: senet-report") and "--status" in out.stdout
