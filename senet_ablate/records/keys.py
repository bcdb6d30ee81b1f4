"""Which config keys change a result: the run fingerprint (skip-completed, resume) and the rows
of a study table (``grouping.py``) both read it from here. Plain Python: no Hydra, no torch."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable

# keys that do not change a result: a relaunch that differs only here is the same run. data.skip_bad_images: so
# that a run stopped by a corrupt file resumes with it (the record lists what it skipped); model.weights_file: where
# a local copy of model.weights lies, like data.root; cache_dir and train.compile_mode: where caches live and how a
# compiled run is scheduled, speed not result. Runs recorded before a key existed still match.
NOT_FINGERPRINTED = (
    "runs_dir",
    "cache_dir",
    "train.compile_mode",
    "logger",
    "device",
    "threads",
    "train.progress",
    "train.preempt_signals",
    "data.root",
    "data.download",
    "data.workers",
    "data.skip_bad_images",
    "model.weights_file",
    "table.alpha",  # the inference keys shape the report, not the run
    "table.margin",
    "table.correction",
    "table.test",
    "table.resamples",
    "table.wide",  # how many columns the report prints
    "table.best",  # which rows the report asks "which is best" of
)

# keys added after runs were recorded: left out of the fingerprint at this value (or any of a tuple of values: a
# key that does not apply is null), so those runs still match
ADDED_LATER = {
    "se.min_hidden": 0,
    "se.excitation": "fc",
    "se.fusion": "scale",
    "se.spatial": "none",
    "se.hidden_divisor": 1,
    "se.kernel_size": None,
    "se.extent": 0,
    "data.pad_mode": "zeros",
    "data.cutout": None,
    "recipe.warmup": "linear",
    "eval.amp": "auto",
    "se.module": None,
    "recipe.optimizer": "sgd",
    "se.round_limit": (0.0, None),
    "se.hidden_from": ("site", None),
    "se.hidden_act": ("relu", None),
    "se.groups": None,
    "se.between": "none",
    "se.energy_lambda": None,
    "data.subset": None,
    "data.subset_seed": (0, None),
}

# values that name the same configuration as another: fingerprinted and tabulated as that one. train.compile=auto
# chooses per run between eager and compiled (the record's compile says which ran), and the runs
# recorded under false before it keep their identity and their rows
SAME_AS = {"train.compile": {"auto": False}}


def same_as(key: str, value):
    """``value`` of dotted ``key`` as the configuration it names (``SAME_AS``)."""
    return SAME_AS.get(key, {}).get(value, value) if isinstance(value, (str, bool)) else value


# keys left out of a run dir's name (conf/config.yaml reads this through ${senet_not_in_dirname:}): what does not
# change a result, which experiment/study the run belongs to (its parent dirs say it), and how its table is shown
NOT_IN_DIRNAME = ("experiment", "study", *NOT_FINGERPRINTED, "logger.mode", "table.baseline")

# never a table row: what a job is (task, its study and row), the seed (rows aggregate over it), where it ran
NOT_ROW_KEYS = ("seed", "task", "study", "row", "table", "hydra", *NOT_FINGERPRINTED)


def fingerprint(config: dict) -> str:
    """A hash of everything in ``config`` that changes a result. A ``table`` without rows (an
    ad-hoc study's ``table.baseline``) only shapes the report, so it is left out."""
    c = copy.deepcopy(config)
    for key in SAME_AS:
        node, leaf = _parent(c, key)
        if leaf in node:
            node[leaf] = same_as(key, node[leaf])
    for key in (*NOT_FINGERPRINTED, *ADDED_LATER):
        node, leaf = _parent(c, key)
        if key in NOT_FINGERPRINTED or leaf not in node or node[leaf] in _values(ADDED_LATER[key]):
            node.pop(leaf, None)
    if isinstance(c.get("table"), dict) and not c["table"].get("rows"):
        c["table"] = None  # what it was before table.baseline existed: those runs still match
    return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _parent(config: dict, key: str) -> tuple[dict, str]:
    """The node of ``config`` that holds dotted ``key`` (an empty dict where a parent is missing), and its leaf."""
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
        node = node.get(p) or {}
    return node, leaf


def _values(v) -> tuple:
    return v if isinstance(v, tuple) else (v,)


def added_later_default(key: str):
    """The value an older record that lacks ``key`` ran with (the first of ADDED_LATER's values)."""
    return _values(ADDED_LATER[key])[0]


def row_key(key: str) -> bool:
    """Whether ``key`` (a dotted config path or a config group) may tell table rows apart."""
    return not any(key == k or key.startswith(k + ".") for k in NOT_ROW_KEYS)


def dir_name(overrides: Iterable[str], exclude_keys: Iterable[str] = (), item_sep: str = ",", kv_sep: str = "=") -> str:
    """A run dir's name from a job's override strings, as Hydra's ``override_dirname`` builds it: those whose
    key (``+``, ``++``, ``~`` and an ``@package`` left off) is not in ``exclude_keys``, as typed, sorted, joined
    by ``item_sep``, each ``=`` as ``kv_sep``; then ``/`` as ``_`` (a config group's path), ``default`` when none."""
    excluded = set(exclude_keys)
    kept = sorted(str(o) for o in overrides if override_key(str(o)) not in excluded)
    return item_sep.join(kept).replace("=", kv_sep).replace("/", "_") or "default"


def override_key(override: str) -> str:
    """The config key or group an override string sets (``+a.b@pkg=1`` -> ``a.b``), as Hydra names it."""
    key = override.split("=", 1)[0].strip()
    for prefix in ("++", "+", "~"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    return key.split("@", 1)[0].strip()
