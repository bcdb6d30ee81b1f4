"""``predictions.npz`` beside a run's ``metrics.json``: what the run predicted for every image of its eval set,
so that a table can count the test sample's part of every error's uncertainty.

Arrays: ``label`` (int, N), ``top5`` (int, N x 5: the five highest-scoring classes, best first; -1 pads
when there are fewer than 5 classes), in the eval set's fixed order; ``order`` and ``labels``: fingerprints
of that order (the images, or their files) and of the labels, so that two runs can be checked to have
scored the same images in the same order. Written atomically, at the evaluation that gives the record's
final error. Plain numpy: both the run side (writes) and the study side (reads) use it.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import write_atomic

FILE = "predictions.npz"


def digest(*chunks: bytes) -> str:
    """A short sha256 fingerprint of byte chunks."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()[:16]


@dataclass
class Predictions:
    label: np.ndarray
    top5: np.ndarray
    order: str
    labels: str

    @property
    def key(self) -> tuple[str, str, int]:
        """Runs whose keys are equal scored the same images in the same order."""
        return self.order, self.labels, len(self.label)

    def wrong(self, k: int = 1) -> np.ndarray:
        """Per image: True where the label is not among the top ``k`` (1 or 5) classes."""
        return ~(self.top5[:, :k] == self.label[:, None]).any(1)

    def error(self, k: int = 1) -> float:
        """Top-``k`` error (%), as the record's ``top1_err`` / ``top5_err``."""
        return 100 * int(self.wrong(k).sum()) / len(self.label)


def write(run_dir: Path, label: np.ndarray, top5: np.ndarray, order: str) -> Path:
    """Write ``predictions.npz`` whole (a reader never sees half a file)."""
    label = np.asarray(label, dtype=np.int64)
    top5 = np.asarray(top5, dtype=np.int64)
    if top5.shape[1] < 5:
        top5 = np.concatenate([top5, np.full((len(top5), 5 - top5.shape[1]), -1, dtype=np.int64)], 1)
    small = np.int16 if max(int(label.max(initial=0)), int(top5.max(initial=0))) < 2**15 else np.int32
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        label=label.astype(small),
        top5=top5.astype(small),
        order=np.array(order),
        labels=np.array(digest(label.tobytes())),
    )
    path = Path(run_dir) / FILE
    write_atomic(path, buf.getvalue())
    return path


def read(run_dir: Path) -> Predictions | None:
    """A run's predictions, or None when it has none (an older record) or the file is damaged."""
    path = Path(run_dir) / FILE
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            label, top5 = z["label"].astype(np.int64), z["top5"].astype(np.int64)
            return Predictions(label, top5, str(z["order"]), str(z["labels"]))
    except (OSError, ValueError, KeyError):
        return None
