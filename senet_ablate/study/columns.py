"""The vocabulary of a study table (table.csv, table.md, the dashboard): its metrics, each metric's cells, the
complexity columns printed beside the paper's, our cost columns, and the order of table.csv's columns.

A metric's cells are named ``<metric>_<part>`` (``top1_err_delta_lo``): ``Part`` lists the parts once, in
table.csv's order, and ``Part.DELTA_LO.of("top1_err")`` names the column.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Compared:
    """A complexity column printed beside the paper's cell: Δ = ours rounded to ``paper_digits`` minus the
    paper's figure."""

    header: str
    paper_digits: int  # the decimals the SE paper prints (a table may say otherwise: table.paper_digits)
    digits: int  # the decimals we print


@dataclass(frozen=True)
class Extra:
    """One of our own cost columns: the record's value times ``scale``, printed with ``digits`` decimals."""

    header: str
    scale: float
    digits: int


COMPARED = {
    "params_m": Compared("Params (M)", 1, 3),
    "gflops": Compared("GFLOPs", 2, 4),
    "mflops": Compared("MFLOPs", 0, 1),
}
EXTRA = {
    "macs": Extra("MACs (G)", 1e-9, 4),
    "elementwise_ops": Extra("SE elementwise (M)", 1e-6, 2),
    "images_per_s": Extra("train img/s", 1.0, 0),
}
# error columns -> header
ERRORS = {"top1_err": "top-1 err. (%)", "top5_err": "top-5 err. (%)"}
# detection scores (task=detect, Table 7): the paper's AP and AP50 with their CI, Δ and paper cells; the rest
# as mean ± std. Columns empty in every row are left out, so a classification table is unchanged.
SCORES = {"ap": "AP", "ap50": "AP50"}
SCORES_BRIEF = {"ap75": "AP75", "ap_small": "AP_S", "ap_medium": "AP_M", "ap_large": "AP_L"}
WITH_VERDICT = {**ERRORS, **SCORES}  # the metrics with a CI, Δ and verdict
MEASURED = {**WITH_VERDICT, **SCORES_BRIEF}
# a metric's short name in verdict headers and notes
SHORT = {"top1_err": "top-1", "top5_err": "top-5", "ap": "AP", "ap50": "AP50"}
# a metric's name in figures, and the unit a Δ of it is said in
NAMES = {"top1_err": "top-1 error", "top5_err": "top-5 error", "ap": "AP", "ap50": "AP50"}
UNIT = {"top1_err": "top-1 points", "top5_err": "top-5 points", "ap": "AP points", "ap50": "AP50 points"}
# the trained tasks a table counts: trained runs, evaluated weights, detectors
TRAINED_TASKS = ("train", "eval", "detect")


class Part(Enum):
    """A metric's cells, in table.csv's order: the row's own (n, mean, spread, CI), then Δ vs its baseline with
    the interval its verdict is read from, p, P(better), the seeds Δ would need, and the paper's figure."""

    N = "n"
    MEAN = "mean"
    STD = "std"
    CI95 = "ci95"
    SEED_DF = "seed_df"
    IMAGE_SE = "image_se"
    METHOD = "method"
    VERDICT = "verdict"
    WITHIN = "within"
    SHOWN = "shown"
    DELTA = "delta"
    DELTA_LO = "delta_lo"
    DELTA_HI = "delta_hi"
    DELTA_LEVEL = "delta_level"
    DELTA_CI95 = "delta_ci95"
    P = "p"
    P_ADJ = "p_adj"
    P_EQUIV = "p_equiv"
    PAIRED = "paired"
    DELTA_METHOD = "delta_method"
    DELTA_SEED_DF = "delta_seed_df"
    DELTA_IMAGE_SE = "delta_image_se"
    PROB_BETTER = "prob_better"
    PROB_BETTER_LO = "prob_better_lo"
    PROB_BETTER_HI = "prob_better_hi"
    SEEDS_NEEDED = "seeds_needed"
    SEEDS_NEEDED_LO = "seeds_needed_lo"
    SEEDS_NEEDED_HI = "seeds_needed_hi"
    PAPER = "paper"

    def of(self, metric: str) -> str:
        """The column of this part of ``metric``: ``Part.MEAN.of("top1_err")`` is ``top1_err_mean``."""
        return f"{metric}_{self.value}"


# the cells every metric has in every table, empty where no run has the metric (so tables share one shape)
SHAPE = (Part.N, Part.MEAN, Part.STD, Part.CI95, Part.DELTA, Part.DELTA_LO, Part.DELTA_HI, Part.P)
# table.csv's first columns: the row and its runs
FIRST = ("row", "label", "baseline", "completed", "failed", "running", "interrupted", "did_not_train")


def column_order(columns: Collection[str]) -> list[str]:
    """table.csv's columns: the row and its runs, then each metric's cells together, then the rest."""
    first = [c for c in FIRST if c in columns]
    metric = [p.of(m) for m in MEASURED for p in Part if p.of(m) in columns]
    return first + metric + [c for c in columns if c not in first and c not in metric]
