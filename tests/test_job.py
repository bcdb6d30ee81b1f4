"""One job, one model: ``run(cfg)`` builds the job's model once, before any work (its stages, SE
widths and published weights checked), and every task uses that model (run/assemble.py JobModel)."""

import pytest
from conftest import run_job

import senet_ablate.run.assemble as assemble


@pytest.fixture
def builds(monkeypatch) -> list[str]:
    """The devices of every backbone the job builds."""
    seen: list[str] = []
    original = assemble.build_model

    def counted(*args, **kwargs):
        seen.append(str(kwargs.get("device") or "cpu"))
        return original(*args, **kwargs)

    monkeypatch.setattr(assemble, "build_model", counted)
    return seen


def test_a_profile_builds_its_model_once_on_the_meta_device(tmp_path, builds):
    rec = run_job("task=profile", "model=resnet50", "data=imagenet", cwd=tmp_path)
    assert rec["status"] == "completed" and round(rec["params"] / 1e6, 1) == 28.1  # SE-ResNet-50, paper Table 2
    assert builds == ["meta"]


def test_a_training_and_an_evaluation_of_it_each_build_one_model(tmp_path, builds):
    rec = run_job("recipe.epochs=1", "data.subset={train: 0.2, eval: 90}", cwd=tmp_path)
    assert rec["status"] == "completed" and rec["params"] > 0
    assert builds == ["cpu"]  # built from the seed before the data were loaded; counted on it too
    last = next(tmp_path.rglob("last.pt"))
    builds.clear()
    ev = run_job("task=eval", f"model.weights='{last}'", "data.subset={train: 0.2, eval: 90}", cwd=tmp_path)
    assert ev["status"] == "completed" and ev["top1_err"] == rec["top1_err"]
    assert builds == ["cpu"]
