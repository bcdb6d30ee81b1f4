"""The CPU's fast path by default: ``train.amp: auto`` is bf16 autocast where torch says the
CPU computes bf16 natively, fp32 elsewhere; ``train.amp=false`` is exact fp32; evaluation follows
training unless ``eval.amp`` says otherwise; a checkpoint resumes only in its own precision."""

import pytest
import torch
from conftest import record


def _cpu(monkeypatch, native: bool) -> None:
    """Make torch's CPU probes report (or deny) native bf16, as on another machine."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: native, raising=False)


@pytest.mark.parametrize(
    "native, amp, said",
    [(True, "auto", "bf16"), (True, "false", "fp32"), (False, "auto", "fp32"), (False, "true", "bf16")],
)
def test_the_record_says_which_precision_ran(tmp_path, compose_cfg, monkeypatch, native, amp, said):
    from senet_ablate.run import app

    _cpu(monkeypatch, native)
    monkeypatch.chdir(tmp_path)
    # 480 of the digits: what is asserted is the record's precision, and emulated bf16 (a CPU without it) is slow
    app.run(compose_cfg("recipe.epochs=1", f"train.amp={amp}", "device=cpu", "data.subset={train: 480}"))
    rec = record(tmp_path)
    assert rec["status"] == "completed"
    assert (rec["amp"], rec["eval_amp"]) == (said, said)


def test_eval_amp_overrides_and_bad_values_name_the_key(compose_cfg, monkeypatch):
    from senet_ablate.errors import ConfigError
    from senet_ablate.train import runtime

    _cpu(monkeypatch, True)
    rt = runtime(compose_cfg("eval.amp=false", "device=cpu"))
    assert rt.amp and not rt.eval_bf16 and rt.channels_last
    with pytest.raises(ConfigError, match="train.amp='fast' is not valid; valid values: auto, true, false"):
        runtime(compose_cfg("train.amp=fast", "device=cpu"))


def test_a_checkpoint_resumes_only_in_its_own_precision(tmp_path, compose_cfg, monkeypatch):
    """A run started in fp32 (say, before bf16 became the CPU default) is never finished in bf16."""
    from senet_ablate.errors import ConfigError
    from senet_ablate.run import app

    monkeypatch.chdir(tmp_path)
    _cpu(monkeypatch, False)
    app.run(compose_cfg("recipe.epochs=1", "data.subset={train: 480}"))
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["amp"] == "fp32"
    (tmp_path / "metrics.json").unlink()  # as if the run had stopped after its checkpoint
    _cpu(monkeypatch, True)
    with pytest.raises(
        ConfigError,
        match=r"was trained in fp32, this relaunch would go on in bf16: relaunch "
        r"with train.amp=false",
    ):
        app.run(compose_cfg("recipe.epochs=1", "data.subset={train: 480}"))
