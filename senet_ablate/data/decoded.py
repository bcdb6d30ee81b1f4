"""The decoded-image cache of in-memory ImageFolder trees (``data=cifar10_jpeg``, any tree with
``data.in_memory=true``): the first job decodes the tree into uint8 tensors and saves them under
``cache_dir``; every later job of the same tree and image size loads that file instead (a proxy
sweep's jobs would otherwise each decode all 60,000 CIFAR JPEGs again).

The key is the tree's manifest: every image's path below ``data.root``, its class, its size in
bytes and its modification time (ns), with the image size and this file's format version, hashed.
An image added, removed, renamed, rewritten or touched changes the key, so a changed tree is
decoded afresh; the same tree copied elsewhere with its times (``cp -a``, ``rsync -a``) shares the
entry. Jobs that start together take a lock: one decodes while the others wait, then load its
file. Files are written whole (``atomic.write_atomic``); a damaged one is decoded again.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Callable

import torch
from filelock import AcquireReturnProxy, FileLock, Timeout

from ..records.atomic import write_atomic

log = logging.getLogger("senet_ablate")

VERSION = 1  # bump when the decoding (resize, dtype, layout) or the entry's contents change


def tree_key(root: Path, samples: dict[str, list[tuple[str, int]]], image_size: int) -> str:
    """A hash of the tree's manifest (relative path, class, bytes, mtime) and the image size."""
    h = hashlib.blake2b(digest_size=12)
    h.update(f"v{VERSION} image_size={image_size}\n".encode())
    cut = len(str(root).rstrip(os.sep)) + 1
    for split, items in samples.items():
        h.update(f"[{split}]\n".encode())
        for path, label in items:
            st = os.stat(path)
            h.update(f"{path[cut:]}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _load(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if entry.get("version") != VERSION:
            raise ValueError(f"format version {entry.get('version')}, expected {VERSION}")
        return entry
    except Exception as e:  # noqa: BLE001 - any unreadable entry is rebuilt
        log.warning("ignoring the damaged decoded-data cache file %s (%s); decoding the tree again", path, e)
        return None


def _take(lock: FileLock, path: Path) -> AcquireReturnProxy:
    """``lock``, acquired (for a ``with``); said first when another job holds it, decoding the same tree."""
    try:
        return lock.acquire(timeout=0)
    except Timeout:
        log.info("another job is decoding this tree into %s: waiting for it", path)
        return lock.acquire()


def cached(cache_dir: str | os.PathLike | None, name: str, key: str, build: Callable[[], dict]) -> tuple[dict, str]:
    """``build()``'s entry through the cache: (entry, "hit" | "miss" | "off"). ``cache_dir`` None: off."""
    if not cache_dir:
        return build(), "off"
    folder = Path(str(cache_dir)).expanduser() / "decoded"
    path = folder / f"{name}-{key}.pt"
    entry = _load(path)
    if entry is not None:
        return entry, "hit"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        log.warning("cannot create the cache dir %s (%s): decoding without a cache (set cache_dir=...)", folder, e)
        return build(), "off"
    with _take(FileLock(path.with_name(path.name + ".lock")), path):  # one job decodes, the others wait for it
        entry = _load(path)  # another job may have decoded it while this one waited
        if entry is not None:
            return entry, "hit"
        entry = {**build(), "version": VERSION}
        try:
            write_atomic(path, lambda f: torch.save(entry, f))
        except OSError as e:
            log.warning("could not write the decoded-data cache %s: %s", path, e)
    return entry, "miss"
