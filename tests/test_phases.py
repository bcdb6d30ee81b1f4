"""No silent minutes: a phase of a job that may take long (compiling, decoding an image tree into the
cache, waiting for another job's decode, a slow first evaluation) is logged when it starts, before the
wait, and only when it runs."""

import importlib
import re
import threading
import time
from types import SimpleNamespace

import pytest
import torch
from conftest import record
from filelock import FileLock

from senet_ablate import data
from senet_ablate.data import decoded, sources

LOGGER = "senet_ablate"


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


class Compiling(Exception):
    """Raised by the stubbed torch.compile: the test has what it needs, no training follows."""


def test_a_run_compiled_by_auto_says_why_before_it_compiles(tmp_path, compose_cfg, monkeypatch, caplog):
    """train.compile=auto deciding to compile logs its reason before torch.compile is reached (the first
    compile is lazy and takes minutes on a CPU). The stubbed torch.compile notes the lines logged so far
    and stops the job there."""
    from senet_ablate.run import app

    runtime = importlib.import_module("senet_ablate.train.runtime")  # the module (the package exports a function)
    seen: list[list[str]] = []

    def fake_compile(model, **kwargs):
        seen.append(_messages(caplog))
        raise Compiling

    monkeypatch.setattr(runtime, "AUTO_COMPILE_STEPS", 1)  # any CPU run is long enough
    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("INFO", logger=LOGGER), pytest.raises(Compiling):
        app.run(compose_cfg("recipe.epochs=1", "device=cpu", "train.compile=auto", "cache_dir=null"))
    assert record(tmp_path)["reason"] == "Compiling: "  # the job got as far as torch.compile, no further
    [before] = seen
    said = [m for m in before if m.startswith("compiling the model")]
    assert len(said) == 1, before
    assert re.match(r"compiling the model \(torch.compile, auto: compiled, \d+ training steps >= 1\): ", said[0])
    assert "the first compile takes 1 to 5 min on a CPU" in said[0]


def test_no_compile_line_when_the_run_is_eager(caplog):
    from senet_ablate.train import Runtime, announce_compile

    with caplog.at_level("INFO", logger=LOGGER):
        announce_compile(Runtime(torch.device("cpu"), False, False, None), "train.compile=false")
        assert not _messages(caplog)
        announce_compile(Runtime(torch.device("cpu"), False, False, "default"), "train.compile=true")
    [line] = _messages(caplog)
    assert "(torch.compile, train.compile=true)" in line and "on a CPU" in line


def _png_tree(root, per_class: int = 2) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for c, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (32, 32), colour).save(root / split / c / f"{i}.png")


def test_an_image_tree_is_announced_before_it_is_listed_and_decoded_into_the_cache(
    tmp_path, compose_cfg, monkeypatch, caplog
):
    root, cache = tmp_path / "tree", tmp_path / "cache"
    _png_tree(root)
    cfg = compose_cfg("data=cifar10_jpeg", f"data.root={root}", "data.num_classes=null").data
    seen: list[list[str]] = []
    decode = sources.decode_split

    def recording(*args, **kwargs):
        seen.append(_messages(caplog))
        return decode(*args, **kwargs)

    monkeypatch.setattr(sources, "decode_split", recording)
    with caplog.at_level("INFO", logger=LOGGER):
        assert data.build(cfg, 4, 4, torch.device("cpu"), seed=0, cache_dir=cache).cache == "miss"
    listing, decoding = seen[0]  # before the first image was decoded: these two, in this order
    assert listing.startswith(f"listing the image files of 2 classes under {root}")
    assert decoding.startswith(f"decoding 8 images of {root} into the cache (once; about ")

    caplog.clear()
    seen.clear()
    with caplog.at_level("INFO", logger=LOGGER):
        assert data.build(cfg, 4, 4, torch.device("cpu"), seed=0, cache_dir=cache).cache == "hit"
    assert not seen and not any(m.startswith("decoding") for m in _messages(caplog))  # a hit decodes nothing


def test_a_job_waiting_for_another_jobs_decode_says_so_first(tmp_path, caplog):
    cache = tmp_path / "cache"
    name, key = "tree-32px", "k"
    folder = cache / "decoded"
    folder.mkdir(parents=True)
    other = FileLock(folder / f"{name}-{key}.pt.lock")  # the job that decodes
    out: list = []
    with caplog.at_level("INFO", logger=LOGGER):
        with other:
            waiter = threading.Thread(target=lambda: out.append(decoded.cached(cache, name, key, dict)))
            waiter.start()
            deadline = time.monotonic() + 30
            while not any("waiting for it" in m for m in _messages(caplog)) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not out  # still waiting, having said so
        waiter.join(30)
    assert out and out[0][1] == "miss"
    [line] = [m for m in _messages(caplog) if "waiting for it" in m]
    assert line.startswith("another job is decoding this tree into ")


@pytest.mark.parametrize("epoch_s, in_memory, said", [(100.0, True, None), (100.0, False, 25), (1000.0, True, 62)])
def test_a_slow_first_evaluation_is_announced(caplog, epoch_s, in_memory, said):
    """Expected from the epoch's time per image: 500 images after 1,000 trained in ``epoch_s``."""
    from senet_ablate.distributed import Dist
    from senet_ablate.train.loop import announce_eval

    meter = SimpleNamespace(time=epoch_s, seen=1000.0)
    loader = SimpleNamespace(num_samples=500, **({"images": None} if in_memory else {}))
    with caplog.at_level("INFO", logger=LOGGER):
        announce_eval(meter, SimpleNamespace(eval=loader, eval_split="val"), Dist())
    assert _messages(caplog) == ([f"evaluating on the 500 val images (about {said} s)"] if said else [])
