"""Any set of runs -> the rows of a study table, for sweeps that are not presets (and
``senet-report --by``): one row per distinct combination of the config keys whose values differ
among the runs (the keys a sweep varied, or the ``--by`` keys), labelled ``key=value, ...`` in
sweep order. Seeds and the keys that do not change a result (keys.py) are aggregated over, never
row keys. A row whose runs differ in another key is flagged, never averaged silently. The table
built from these rows is a preset's (tables.py).
"""

from __future__ import annotations

import logging
import math
import re

import pandas as pd

from ..records.keys import ADDED_LATER, added_later_default, row_key, same_as

log = logging.getLogger("senet_ablate")

ALL = "all runs"  # the label of the one row of runs that share their config


def fmt(v: object) -> str:
    """A config value as a Hydra override writes it (``[2,3,4]``, ``null``, ``true``); a ``_target_``
    node (``se.module``) as its class and arguments, ``ChannelGate(k=5)``."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(fmt(x) for x in v) + "]"
    if isinstance(v, dict) and isinstance(v.get("_target_"), str):  # se.module: its class and arguments
        args = ", ".join(f"{k}={fmt(x)}" for k, x in v.items() if k != "_target_")
        return f"{v['_target_'].rpartition('.')[2]}({args})"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{fmt(x)}" for k, x in v.items()) + "}"
    return repr(v) if isinstance(v, float) else str(v)


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """A nested config as {dotted key: formatted value}, with the keys added later at their
    defaults where an older record lacks them."""
    out = {} if prefix else {k: fmt(added_later_default(k)) for k in ADDED_LATER}
    for k, v in config.items():
        if isinstance(v, dict) and v and "_target_" not in v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = fmt(same_as(f"{prefix}{k}", v))
    return out


def value(run: pd.Series, key: str) -> str:
    """``key``'s value in one run (a row of collect's frame): the option of a config group
    (``data=cifar10_jpeg``), else the config value, else what the command line said."""
    choices, flat, typed = run["_choices"], run["_flat"], run["_typed"]
    if key in choices:
        return fmt(choices[key])
    if key in flat:
        return flat[key]
    if key in typed:
        return typed[key]
    return flat.get(f"{key}.name", "null")


def _ordered(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs in the order they were launched: by job number within a sweep (the order the command line typed
    its values), the earlier sweep first among equal job numbers, then by run dir."""
    num = pd.to_numeric(runs["job_num"], errors="coerce").fillna(math.inf)
    began = runs["started_at"].fillna("~") if "started_at" in runs else pd.Series("~", index=runs.index)
    out = runs.assign(_num=num, _began=began).sort_values(["_num", "_began", "run_dir"], kind="stable")
    return out.drop(columns=["_num", "_began"])


def _union(lists) -> list[str]:
    return list(dict.fromkeys(k for keys in lists for k in keys))


def row_keys(runs: pd.DataFrame) -> list[str]:
    """The keys that tell the runs apart: those typed on the command lines whose values differ,
    else (runs made from edited files) the config keys whose values differ."""
    recs = [r for _, r in runs.iterrows()]
    for keys in (_union(r["_typed"] for r in recs), _union(r["_flat"] for r in recs)):
        differ = [k for k in keys if row_key(k) and len({value(r, k) for r in recs}) > 1]
        if differ:
            return differ
    return []


def mixed(runs: pd.DataFrame) -> dict[str, list[str]]:
    """Keys (outside the row keys) whose values differ among ``runs`` of one row: {key: values}.
    A key only some records hold (added to the project later) is not counted."""
    recs = [r["_flat"] for _, r in runs.iterrows()]
    out = {}
    for k in _union(recs):
        if row_key(k) and all(k in r for r in recs) and len({r[k] for r in recs}) > 1:
            out[k] = list(dict.fromkeys(r[k] for r in recs))
    return out


def split_parts(text: str) -> list[tuple[str, str]]:
    """``'se.squeeze=max, se.stages=[2,3]'`` -> [(key, value)]: commas inside brackets stay; ``:`` may
    stand for ``=`` (Hydra's override grammar has no ``=`` in a value unless it is quoted)."""
    parts = [p.strip() for p in re.split(r",(?![^\[]*\])", text) if p.strip()]
    out = []
    for p in parts:
        m = re.match(r"([^=:]+)[=:](.*)", p)
        if not m:
            raise ValueError(f"{p!r} is not key=value")
        out.append((m.group(1).strip(), m.group(2).strip()))
    return out


def pick_baseline(rows: dict[str, dict], wanted: str | None) -> str:
    """The baseline row: ``wanted`` (a label, or key=value parts that single out one row), else
    the first row with SE off (``se.stages=[]``), else the first row (that of the first job launched)."""
    if wanted:
        if wanted in rows:
            return wanted
        want = split_parts(wanted)
        hits = [label for label, row in rows.items() if all(row["values"].get(k) == v for k, v in want)]
        if len(hits) != 1:
            raise ValueError(
                f"baseline {wanted!r} matches {len(hits)} rows; valid values: "
                + "; ".join(rows)
                + " (or key=value parts that single out one)"
            )
        return hits[0]
    off = [label for label, row in rows.items() if row["se_off"]]
    return off[0] if off else next(iter(rows))


def common(runs: pd.DataFrame) -> str:
    """What every run shares, for the table's notes: config groups, epochs and seeds."""
    recs = [r for _, r in runs.iterrows()]
    shared = []
    for group in (g for g in _union(r["_choices"] for r in recs) if row_key(g)):
        vals = {fmt(r["_choices"].get(group)) for r in recs}
        if len(vals) == 1 and vals != {"null"}:
            shared.append(f"{group}={vals.pop()}")
    epochs = {r["_flat"].get("recipe.epochs") for r in recs if r["task"] == "train"}
    if len(epochs) == 1:
        shared.append(f"recipe.epochs={epochs.pop()}")
    seeds = sorted({int(s) for s in runs["seed"].dropna()})
    if seeds:
        shared.append(("seeds " if len(seeds) > 1 else "seed ") + ", ".join(map(str, seeds)))
    return ", ".join(shared)


def group(
    runs: pd.DataFrame, study: str, by: list[str] | None = None, baseline: str | None = None
) -> tuple[pd.DataFrame, dict]:
    """(runs with ``row`` set to their table row, the table spec). ``by``: the row keys (default:
    the keys that differ); ``baseline``: as ``pick_baseline``. Raises ValueError on a bad baseline."""
    runs = _ordered(runs[runs["task"] != "excitation"])
    keys = list(by) if by else row_keys(runs)
    labels = [", ".join(f"{k}={value(r, k)}" for k in keys) or ALL for _, r in runs.iterrows()]
    runs = runs.assign(row=labels)
    rank = {k: list(dict.fromkeys(value(r, k) for _, r in runs.iterrows())) for k in keys}
    first = runs.drop_duplicates("row")
    order = sorted(first.index, key=lambda i: [rank[k].index(value(first.loc[i], k)) for k in keys])
    rows, notes = {}, []
    for label in first.loc[order, "row"]:
        mine = runs[runs["row"] == label]
        values = {k: value(mine.iloc[0], k) for k in keys}
        mix = mixed(mine)
        rows[label] = {
            "label": label + (" †" if mix else ""),
            "set": [f"{k}={v}" for k, v in values.items()],
            "values": values,
            "se_off": all(r.get("se.stages") == "[]" for r in mine["_flat"]),
        }
        if mix:
            what = "; ".join(f"{k} ({', '.join(v)})" for k, v in mix.items())
            notes.append(
                f"† {label}: its runs differ in {what}; averaged together here (report them "
                f"apart with senet-report --by {','.join([*keys, *mix])})."
            )
    base = pick_baseline(rows, baseline)
    why = (
        "chosen by table.baseline / --baseline"
        if baseline
        else "the row with SE off"
        if rows[base]["se_off"]
        else "the row of the first job launched; table.baseline or --baseline picks another"
    )
    spec = {
        "title": f"{study}: " + (" × ".join(keys) if keys else ALL),
        "rows": rows,
        "keys": keys,
        "baseline": base,
        "adhoc": True,
        "baseline_why": why,
        "baseline_given": bool(baseline),
        "remarks": [f"All rows: {common(runs)}."] + notes,
    }
    return runs, spec


# ---------------------------------------------------------------------------- which runs make which table
def keep(runs: pd.DataFrame, filters: list[str]) -> pd.DataFrame:
    """The runs whose value of each ``key=value`` in ``filters`` matches (grouping.value)."""
    for key, want in (kv for f in filters for kv in split_parts(f)):
        known(runs, key, "--filter")
        runs = runs[[value(r, key) == want for _, r in runs.iterrows()]]
    if runs.empty:
        raise ValueError(f"no run matches --filter {' '.join(filters)}")
    return runs


def known(runs: pd.DataFrame, key: str, option: str) -> None:
    """Fail on a key that no run's config, config groups or command line holds."""
    if not any(
        key in r["_choices"]
        or key in r["_typed"]
        or key in r["_flat"]
        or f"{key}.name" in r["_flat"]
        or any(k.startswith(key + ".") for k in r["_flat"])
        for _, r in runs.iterrows()
    ):
        raise ValueError(
            f"{option} {key}: no run has this key; use a config key (e.g. se.reduction, "
            "recipe.epochs) or a config group (model, data, attention)"
        )


def tables_for(
    runs: pd.DataFrame, specs: dict, by: list[str] | None = None, baseline: str | None = None
) -> list[tuple[str, pd.DataFrame, dict]]:
    """(name, its runs, table spec) per table: a preset study with its own spec; any other study
    with rows from the keys its runs differ in (grouping.py); with ``by``, every run in one table."""
    if by:
        for key in by:
            known(runs, key, "--by")
        name = "+".join(sorted(runs["study"].fillna("adhoc").unique()))
        return [(name, *group(runs, name, by, baseline))]
    out = []
    for study in runs["study"].fillna("adhoc").unique():
        mine = runs[runs["study"].fillna("adhoc") == study]
        spec = specs.get(study)
        out.append(
            (study, mine, preset(spec, study, baseline)) if spec is not None else (study, *adhoc(mine, study, baseline))
        )
    return out


def preset(spec: dict, study: str, baseline: str | None) -> dict:
    """A preset's own spec, with ``baseline`` (one of its rows) for Δ when given."""
    if baseline and baseline not in spec["rows"]:
        raise ValueError(f"--baseline {baseline!r} is not a row of {study}; valid values: {', '.join(spec['rows'])}")
    return {**spec, "baseline": baseline or spec.get("baseline")}


def adhoc(mine: pd.DataFrame, study: str, baseline: str | None) -> tuple[pd.DataFrame, dict]:
    """A study without table rows: ``group`` it, with ``baseline`` or else the newest run's
    ``table.baseline`` (a baseline from the config that matches no row falls back, with a warning)."""
    asked = [
        v
        for v in (
            r["_flat"].get("table.baseline") for _, r in mine.sort_values("finished_at", na_position="first").iterrows()
        )
        if v not in (None, "null")
    ]
    try:
        return group(mine, study, baseline=baseline or (asked[-1] if asked else None))
    except ValueError as e:
        if baseline:  # senet-report --baseline: the caller's to fix
            raise
        log.warning("table.baseline: %s; the default baseline is used", e)
        return group(mine, study)
