"""``data.subset``: a class-stratified part of any dataset in one key, chosen from the data's
seed so that every row and seed of a study sees the same images, recorded and fingerprinted."""

import json

import pytest
import torch
from conftest import cut_cifar, run_cli, run_job

from senet_ablate import data
from senet_ablate.data import subset
from senet_ablate.errors import ConfigError
from senet_ablate.records.keys import fingerprint

SUBSET = "data.subset={train: 5000, eval: 1000}"


@pytest.fixture(scope="module")
def cifar_pool(tmp_path_factory):
    """600 train and 150 test images per class: more than the subset keeps, so which it keeps is a choice."""
    return cut_cifar(tmp_path_factory.mktemp("cifar-pool"), 600, 150)


def test_each_class_keeps_its_share_by_largest_remainder():
    labels = [0] * 50 + [1] * 30 + [2] * 20  # 100 images, unbalanced
    assert subset.per_class(labels, 10, "train") == {0: 5, 1: 3, 2: 2}
    assert subset.per_class(labels, 0.25, "train") == {0: 13, 1: 7, 2: 5}  # 12.5, 7.5, 5: the ties go up first
    assert sum(subset.per_class(labels, 7, "train").values()) == 7
    chosen = subset.choose(labels, 10, seed=0, split="train")
    assert chosen == sorted(chosen) and [labels[i] for i in chosen].count(0) == 5
    assert (
        chosen == subset.choose(labels, 10, seed=0, split="train") != subset.choose(labels, 10, seed=1, split="train")
    )
    assert subset.choose(labels, None, 0, "train") is None and subset.choose(labels, 1.0, 0, "train") is None


@pytest.mark.parametrize(
    "value, match",
    [
        ("0", r"data.subset=0 must be an image count"),
        ("1.5", r"data.subset=1.5 must be"),
        ("{train: 0}", r"data.subset.train=0 must be"),
        ("{tran: 5}", r"keys: train, eval"),
        ("{train: 2000}", r"data.subset.train=2000 but the train split has 1347 images"),
    ],
)
def test_a_bad_subset_fails_naming_the_key(compose_cfg, value, match):
    cfg = compose_cfg(f"data.subset={value}").data
    with pytest.raises(ConfigError, match=match):
        data.check(cfg)
        data.build(cfg, 64, 100, torch.device("cpu"), seed=0)


def test_an_in_memory_dataset_subset_is_the_same_for_every_run_seed(compose_cfg):
    cfg = compose_cfg("data.subset={train: 0.5, eval: 100}").data  # the digits: 1,347 / 450
    a, b = (data.build(cfg, 64, 100, torch.device("cpu"), seed=s) for s in (0, 1))
    assert a.subset == b.subset and a.subset["train"] == 674 and a.subset["eval"] == 100
    assert sum(a.subset["eval_per_class"]) == 100 and max(a.subset["eval_per_class"]) <= 11
    assert torch.equal(a.eval.images, b.eval.images) and a.train.num_samples == 674
    other = data.build(compose_cfg("data.subset={train: 0.5, eval: 100}", "data.subset_seed=1").data, 64, 100, "cpu", 0)
    assert other.subset["images_digest"] != a.subset["images_digest"]  # another data seed, other images


def test_the_subset_is_part_of_a_runs_identity(compose_cfg):
    from omegaconf import OmegaConf

    fp = lambda *o: fingerprint(OmegaConf.to_container(compose_cfg(*o), resolve=True))  # noqa: E731
    old = OmegaConf.to_container(compose_cfg(), resolve=True)
    del old["data"]["subset"], old["data"]["subset_seed"]  # a run recorded before the key existed
    assert fp() == fp("data.subset=null") == fingerprint(old)
    assert fp("data.subset=0.5") != fp() != fp("data.subset=0.5", "data.subset_seed=1")


def test_5000_and_1000_of_the_cifar_tree_are_500_and_100_a_class_for_every_seed(compose_cfg, cifar_pool, tmp_path):
    cfg = compose_cfg("data=cifar10_jpeg", f"data.root={cifar_pool}", SUBSET).data
    a, b = (data.build(cfg, 128, 500, torch.device("cpu"), seed=s, cache_dir=tmp_path / "cache") for s in (0, 1))
    assert a.subset["train_per_class"] == [500] * 10 and a.subset["eval_per_class"] == [100] * 10
    assert (a.cache, b.cache) == ("miss", "hit")  # the same images from a fresh decode and from the cache
    assert a.subset == b.subset and torch.equal(a.train.images, b.train.images)
    streamed = data.build(
        compose_cfg("data=imagefolder", f"data.root={cifar_pool}", "data.image_size=32", SUBSET).data,
        128,
        500,
        torch.device("cpu"),
        seed=0,
    )  # streamed from disk: the same files (the choice is made from the file list, before any decoding)
    assert streamed.subset["train_per_class"] == [500] * 10 and streamed.eval.num_samples == 1000
    assert streamed.eval_order() != a.eval_order()  # (pixels vs names: compare the labels in order instead)
    assert [y for _, y in streamed.eval.loader.dataset.dataset.samples] == a.eval.labels.tolist()


@pytest.mark.slow
def test_a_sweep_on_a_cifar_subset_records_it_for_every_row_and_seed(cifar_pool, tmp_path):
    """End to end, on a smaller cut (the 5,000 / 1,000 counts are checked above without training)."""
    args = ["data=cifar10_jpeg", f"data.root={cifar_pool}", "data.subset={train: 500, eval: 200}", "recipe=quick"]
    run_cli("run.app", "-m", *args, "recipe.epochs=1", "recipe.batch_size=250", "se.squeeze=avg,max", cwd=tmp_path)
    run_job(*args, "recipe.epochs=1", "recipe.batch_size=250", "seed=1", cwd=tmp_path)
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "runs").rglob("metrics.json"))]
    assert len(records) == 3 and all(r["status"] == "completed" for r in records)
    subsets = [r["data_subset"] for r in records]
    assert all(s == subsets[0] for s in subsets) and subsets[0]["train_per_class"] == [50] * 10
    assert subsets[0]["eval_per_class"] == [20] * 10 and all(r["eval_images"] == 200 for r in records)
    assert len({r["fingerprint"] for r in records}) == 3
