"""Datasets and batch augmentation on real data: sklearn digits and the shared CIFAR-10 JPEG tree."""

import gc
import re
import socket

import pytest
import torch

from senet_ablate import data
from senet_ablate.errors import ConfigError
from senet_ablate.run import launch


@pytest.fixture(autouse=True)
def _no_pass_left_over():
    """Passes an earlier test left unfinished (a generator held by a traceback cycle) end when the garbage
    collector finalizes them, not at a time a test can see: collect them first, so that the tests below that
    read data._LIVE_ITERATORS see only their own passes."""
    gc.collect()
    yield


def test_digits_split_is_fixed_and_stratified(compose_cfg):
    cfg = compose_cfg("data=digits").data
    (xtr, ytr), (xte, yte), split = data.load_digits_split(cfg)
    assert (len(ytr), len(yte), split) == (1347, 450, "test")
    assert xtr.dtype == torch.uint8 and xtr.shape[1:] == (3, 8, 8) and int(xtr.max()) == 255
    share = torch.bincount(yte, minlength=10) / len(yte)
    assert torch.allclose(share, torch.bincount(ytr, minlength=10) / len(ytr), atol=0.01)
    again = data.load_digits_split(cfg)
    assert torch.equal(again[0][0], xtr) and torch.equal(again[1][1], yte)


def test_crop_flip_yields_true_crops_of_the_padded_image():
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    out = data.crop_flip(x, g, slice(None), 16, pad=2)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        crops = [
            p[:, dy : dy + 8, dx : dx + 8] for p in (padded[i], padded[i].flip(2)) for dy in range(5) for dx in range(5)
        ]
        assert any(torch.equal(out[i], c) for c in crops)
    assert torch.equal(out, data.crop_flip(x, torch.Generator().manual_seed(0), slice(None), 16, pad=2))
    assert not torch.equal(out, data.crop_flip(x, torch.Generator().manual_seed(1), slice(None), 16, pad=2))


def test_tensor_loader_order_depends_on_seed_and_epoch_only():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 2, 2).contiguous()
    labels = torch.arange(10)
    loader = data.TensorLoader(images, labels, 4, train=True, augment="none", mean=[0, 0, 0], std=[1 / 255] * 3, seed=3)
    order = lambda: torch.cat([y for _, y in loader]).tolist()  # noqa: E731
    first = order()
    assert sorted(first) == list(range(10)) and len(loader) == 3
    assert order() == first
    loader.set_epoch(1)
    assert order() != first
    loader.set_epoch(0)
    assert order() == first


def _digits_loader(rank=0, world=1, batch=64, augment="cifar"):
    (x, y), _, _ = data.load_digits_split(None)
    return data.TensorLoader(
        x, y, batch, train=True, augment=augment, mean=[0.5] * 3, std=[0.25] * 3, seed=7, rank=rank, world=world
    )


@pytest.mark.parametrize("world", [2, 3])
def test_ddp_ranks_hold_disjoint_parts_that_make_up_the_single_process_batch(world):
    """DDP sharding: the ranks' augmented parts, put side by side, are the global batch."""
    whole = _digits_loader()
    ranks = [_digits_loader(r, world) for r in range(world)]
    for loader in (whole, *ranks):
        loader.set_epoch(2)
    assert all(len(r) == len(whole) == 22 for r in ranks)  # 1,347 images / 64 per global batch
    for (xw, yw), *parts in zip(whole, *ranks):
        assert torch.equal(torch.cat([x for x, _ in parts]), xw)
        assert torch.equal(torch.cat([y for _, y in parts]), yw)
        assert max(len(y) for _, y in parts) - min(len(y) for _, y in parts) <= 1


def test_a_loader_started_mid_epoch_yields_the_remaining_batches_unchanged():
    """Resume after preemption: skipping k batches gives batches k.. of the uninterrupted epoch."""
    loader = _digits_loader()
    loader.set_epoch(1)
    full = list(loader)
    loader.set_epoch(1, start=5)
    rest = list(loader)
    assert len(rest) == len(full) - 5
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(full[5:], rest))


def test_eval_batches_shard_the_split_in_file_order():
    assert [data.shard(10, r, 3) for r in range(3)] == [slice(0, 4), slice(4, 7), slice(7, 10)]
    assert data.shard(1, 1, 2) == slice(1, 1)  # an empty part is allowed


def test_imagefolder_in_memory_from_the_cifar_jpeg_tree(compose_cfg, cifar_jpeg):
    cfg = compose_cfg("data=cifar10_jpeg", f"data.root={cifar_jpeg}").data
    d = data.build(cfg, 32, 100, torch.device("cpu"), seed=0)
    assert (d.num_classes, d.image_size, d.eval_split) == (10, 32, "test")
    assert d.train.num_samples == 200 and d.eval.num_samples == 50
    x, y = next(iter(d.train))
    assert x.shape == (32, 3, 32, 32) and x.dtype == torch.float32 and y.max() < 10
    assert abs(float(x.mean())) < 1.0  # normalised


def test_imagefolder_streamed_with_paper_augmentation(compose_cfg, cifar_jpeg):
    cfg = compose_cfg("data=imagefolder", f"data.root={cifar_jpeg}", "data.image_size=24", "data.workers=0").data
    d = data.build(cfg, 16, 16, torch.device("cpu"), seed=0)
    assert d.num_classes == 10 and d.train.num_samples == 200
    x, y = next(iter(d.train))
    assert x.shape == (16, 3, 24, 24) and x.dtype == torch.float32
    xe, _ = next(iter(d.eval))
    assert xe.shape == (16, 3, 24, 24)


def _tree(root, files):
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    return root


@pytest.mark.parametrize(
    "layout, overrides, match",
    [
        (None, [], r"data.root is not set"),
        ("absent", [], r"does not exist or is not a directory"),
        ({"train/a/x.jpg": b"1"}, [], r"must hold train/ and val/"),
        ({"train/a/.keep": b"", "val/a/.keep": b""}, [], r"no images under"),
        ({"train/a/1.jpg": b"1", "train/a/notes.txt": b"hi", "val/a/1.jpg": b"1"}, [], r"not an image file.*notes.txt"),
        (
            {"train/a/1.jpg": b"1", "train/b/1.jpg": b"1", "val/a/1.jpg": b"1", "val/b/1.jpg": b"1"},
            ["data.num_classes=10"],
            r"data.num_classes=10 but .* has 2 class folders",
        ),
        ({"train/a/1.jpg": b"1", "train/b/1.jpg": b"1", "val/a/1.jpg": b"1"}, [], r"class folders differ"),
        (
            {"train/a/1.jpg": b"not a jpeg", "test/a/1.jpg": b"x"},
            ["data.num_classes=1"],
            r"cannot decode image .*1.jpg",
        ),
    ],
)
def test_imagefolder_bad_trees_fail_clearly(compose_cfg, tmp_path, layout, overrides, match):
    root = tmp_path / "tree"
    if isinstance(layout, dict):
        _tree(root, layout)
    args = ["data=cifar10_jpeg", "data.num_classes=null", *overrides] + (
        [] if layout is None else [f"data.root={root}"]
    )
    cfg = compose_cfg(*args).data
    with pytest.raises(ConfigError, match=match):
        data.build(cfg, 8, 8, torch.device("cpu"), seed=0)


def test_cifar10_download_offline_says_what_to_do(compose_cfg, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable (test: offline)")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    cfg = compose_cfg("data=cifar10", f"data.root={tmp_path}", "data.download=true").data
    with pytest.raises(ConfigError, match=r"could not download cifar10 .*unpack it into data.root"):
        data.build(cfg, 8, 8, torch.device("cpu"), seed=0)


def test_cifar10_missing_without_download(compose_cfg, tmp_path):
    cfg = compose_cfg("data=cifar10", f"data.root={tmp_path}", "data.download=false").data
    with pytest.raises(ConfigError, match=r"cifar10 not found under data.root.*data.download=true"):
        data.build(cfg, 8, 8, torch.device("cpu"), seed=0)


# ---------------------------------------------------------------------------- unreadable images, workers
class _Broken(torch.utils.data.Dataset):
    """Fails in the worker with an error that is not about decoding (a bug in a transform, say)."""

    def __len__(self):
        return 64

    def __getitem__(self, i):
        if i >= 8:
            raise RuntimeError(f"transform bug at item {i}")
        return torch.zeros(3, 4, 4), 0


def _workers_of(loader):
    """The worker processes of the loader's running pass (read from its live DataLoader iterator)."""
    return [w for it in list(data._LIVE_ITERATORS) for w in it._workers]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_worker_error_reaches_the_main_process_and_stops_every_worker(workers):
    loader = data.StreamLoader(_Broken(), 8, train=False, workers=workers, pin_memory=False, seed=0)
    batches = iter(loader)
    next(batches)
    procs = _workers_of(loader)
    assert len(procs) == workers and all(p.is_alive() for p in procs)
    with pytest.raises(RuntimeError, match="transform bug at item"):
        for _ in batches:
            pass
    assert not any(p.is_alive() for p in procs) and not data._LIVE_ITERATORS


def test_closing_a_loader_mid_epoch_stops_its_workers():
    """An error in the main process (a diverged loss, a CUDA error) leaves the epoch unfinished:
    Data.close() then stops the workers, which ignore SIGTERM (preemption is the main process's)."""
    loader = data.StreamLoader(_Broken(), 4, train=False, workers=2, pin_memory=False, seed=0)
    next(iter(loader))
    procs = _workers_of(loader)
    assert procs and all(p.is_alive() for p in procs)
    loader.close()
    assert not any(p.is_alive() for p in procs) and not data._LIVE_ITERATORS


def _corrupt_copy(src, dst, bad="train/cat/0003.jpg"):
    import shutil

    shutil.copytree(src, dst)
    (dst / bad).write_bytes(b"this is not a JPEG")
    return dst / bad


def _workers(cfg) -> dict:
    """``data.workers`` resolved as the app resolves it for ``data.build``."""
    return dict(
        workers=launch.data_workers(cfg.get("workers", 0)),
        decode_workers=launch.decode_processes(cfg.get("workers", "auto")),
    )


@pytest.mark.parametrize("in_memory", [False, True])
def test_an_unreadable_image_fails_naming_it_or_is_skipped_when_asked(compose_cfg, cifar_jpeg, tmp_path, in_memory):
    bad = _corrupt_copy(cifar_jpeg, tmp_path / "tree")
    mode = ["data=cifar10_jpeg"] if in_memory else ["data=imagefolder", "data.image_size=32", "data.workers=2"]
    cfg = compose_cfg(*mode, f"data.root={tmp_path / 'tree'}").data
    with pytest.raises(ConfigError, match=rf"cannot decode image {re.escape(str(bad))}") as err:
        d = data.build(cfg, 50, 50, torch.device("cpu"), seed=0, **_workers(cfg))
        for _ in d.train:
            pass
    assert in_memory or "(epoch 1, batch " in str(err.value) and "data.skip_bad_images=true" in str(err.value)
    assert not data._LIVE_ITERATORS

    cfg = compose_cfg(*mode, f"data.root={tmp_path / 'tree'}", "data.skip_bad_images=true").data
    d = data.build(cfg, 50, 50, torch.device("cpu"), seed=0, **_workers(cfg))
    seen = sum(len(y) for _, y in d.train)
    assert seen == 199 and d.skipped_images() == [str(bad)]  # 200 train images less the bad one
    d.close()


def test_a_tree_of_small_images_read_at_224_px_gets_one_hint(compose_cfg, cifar_jpeg, caplog):
    cfg = compose_cfg("data=imagefolder", f"data.root={cifar_jpeg}", "data.workers=0").data
    with caplog.at_level("WARNING", logger="senet_ablate"):
        data.build(cfg, 16, 16, torch.device("cpu"), seed=0)
    [hint] = [r.getMessage() for r in caplog.records if "upsampled" in r.getMessage()]
    assert "32x32, 32x32, 32x32 px but data.image_size=224" in hint and "data=cifar10_jpeg" in hint
    caplog.clear()
    cfg = compose_cfg("data=imagefolder", f"data.root={cifar_jpeg}", "data.workers=0", "data.image_size=32").data
    with caplog.at_level("WARNING", logger="senet_ablate"):
        data.build(cfg, 16, 16, torch.device("cpu"), seed=0)
    assert not [r for r in caplog.records if "upsampled" in r.getMessage()]


# ---------------------------------------------------------------------------- decoded-data cache
def _load(compose_cfg, root, cache):
    cfg = compose_cfg("data=cifar10_jpeg", f"data.root={root}").data
    return data.build(cfg, 50, 50, torch.device("cpu"), seed=0, cache_dir=cache)


def test_an_in_memory_tree_is_decoded_once_and_a_changed_tree_again(compose_cfg, cifar_jpeg, tmp_path, caplog):
    import os
    import shutil

    tree, cache = tmp_path / "tree", tmp_path / "cache"
    shutil.copytree(cifar_jpeg, tree)
    first = _load(compose_cfg, tree, cache)
    again = _load(compose_cfg, tree, cache)
    assert (first.cache, again.cache) == ("miss", "hit")
    assert len(list((cache / "decoded").glob("*.pt"))) == 1
    for a, b in ((first.train, again.train), (first.eval, again.eval)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    off = _load(compose_cfg, tree, None)
    assert off.cache == "off" and torch.equal(off.train.images, first.train.images)

    # rewrite one image with another's content (a different number of bytes): decoded afresh
    victim, donor = tree / "train/cat/0003.jpg", tree / "train/ship/0011.jpg"
    assert victim.stat().st_size != donor.stat().st_size
    victim.write_bytes(donor.read_bytes())
    changed = _load(compose_cfg, tree, cache)
    assert changed.cache == "miss"
    i, j = (
        next(
            k
            for k, (p, _) in enumerate(
                data.scan_imagefolder(compose_cfg("data=cifar10_jpeg", f"data.root={tree}").data)[1]["train"]
            )
            if p == str(f)
        )
        for f in (victim, donor)
    )
    assert torch.equal(changed.train.images[i], changed.train.images[j])
    assert not torch.equal(changed.train.images[i], first.train.images[i])
    assert changed.train.labels[i] == first.train.labels[i]  # still a cat

    # same bytes, a new modification time (e.g. `touch`): the key changes too
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _load(compose_cfg, tree, cache).cache == "miss"
    # an image added: a miss with one more image
    shutil.copy(donor, tree / "train/cat/9999.jpg")
    grown = _load(compose_cfg, tree, cache)
    assert grown.cache == "miss" and grown.train.num_samples == first.train.num_samples + 1

    # a damaged cache file is decoded again, with a warning naming it
    [entry] = [
        p
        for p in (cache / "decoded").glob("*.pt")
        if p.stat().st_mtime_ns == max(q.stat().st_mtime_ns for q in (cache / "decoded").glob("*.pt"))
    ]
    entry.write_bytes(b"truncated")
    with caplog.at_level("WARNING", logger="senet_ablate"):
        assert _load(compose_cfg, tree, cache).cache == "miss"
    assert any("damaged decoded-data cache" in r.getMessage() and str(entry) in r.getMessage() for r in caplog.records)
    assert _load(compose_cfg, tree, cache).cache == "hit"


def test_a_cached_tree_with_an_unreadable_image_still_fails_unless_skipping(compose_cfg, cifar_jpeg, tmp_path):
    bad = _corrupt_copy(cifar_jpeg, tmp_path / "tree")
    cache = tmp_path / "cache"
    cfg = compose_cfg("data=cifar10_jpeg", f"data.root={tmp_path / 'tree'}", "data.skip_bad_images=true").data
    d = data.build(cfg, 50, 50, torch.device("cpu"), seed=0, cache_dir=cache)
    assert d.cache == "miss" and d.skipped_images() == [str(bad)]
    d = data.build(cfg, 50, 50, torch.device("cpu"), seed=0, cache_dir=cache)
    assert d.cache == "hit" and d.skipped_images() == [str(bad)] and d.train.num_samples == 199
    strict = compose_cfg("data=cifar10_jpeg", f"data.root={tmp_path / 'tree'}").data
    with pytest.raises(ConfigError, match=rf"cannot decode image {re.escape(str(bad))}"):
        data.build(strict, 50, 50, torch.device("cpu"), seed=0, cache_dir=cache)


def test_a_large_tree_is_decoded_by_worker_processes_into_the_same_tensors(cifar_jpeg):
    items = [(str(p), 0) for p in sorted(cifar_jpeg.rglob("*.jpg"))]
    one, _, _ = data.decode_split(items, 32, 0, False, cifar_jpeg)
    two, labels, _ = data.decode_split(items, 32, 2, False, cifar_jpeg)
    assert one.shape == (250, 3, 32, 32) and torch.equal(one, two) and labels.dtype == torch.int64
    assert (
        data.decode_workers(launch.decode_processes("auto"), 1999) == 0
        and data.decode_workers(launch.decode_processes(4), 100_000) == 4
    )


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA: checks that GPU batches never make the host wait"
)
def test_in_memory_batches_on_a_gpu_never_wait_for_the_gpu():
    """No host sync in the hot loop. The epoch's order is copied to the GPU once, when
    the epoch starts; after that, drawing, cropping, flipping and normalising a batch must not
    synchronise (torch's sync debug mode raises on any sync)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (1000, 3, 32, 32), generator=g, dtype=torch.uint8).cuda()
    labels = torch.randint(0, 10, (1000,), generator=g).cuda()
    loader = data.TensorLoader(images, labels, 100, train=True, augment="cifar", mean=[0.5] * 3, std=[0.25] * 3, seed=0)
    loader.set_epoch(0)
    it = iter(loader)
    next(it)  # the one copy of the epoch's order
    torch.cuda.set_sync_debug_mode("error")
    try:
        rest = [x for x, _ in it]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(rest) == 9 and rest[0].device.type == "cuda"
