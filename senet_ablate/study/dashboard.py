"""A static, offline dashboard: one HTML page per study (tables, figures, the commands that made
them, run counts and failures) and an index over studies. No scripts, no CDN: plain HTML + CSS."""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd

from ..records.atomic import write_atomic
from .answer import lines
from .cells import cells
from .formats import effects_table
from .notes import footnote, notes
from .tables import StudyTable

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f2f2f2}
.fail{color:#b00}
figure{display:inline-block;margin:.5rem;vertical-align:top}
img{max-width:560px;border:1px solid #ddd}
code,pre{background:#f6f6f6;padding:.2rem .4rem}
"""


def _page(title: str, body: str) -> str:
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def table_html(table: StudyTable) -> str:
    head, body = cells(table, extended=True)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>\n" for r in body)
    return (
        "<table class='study'><thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + f"</tr></thead><tbody>\n{rows}</tbody></table>"
    )


def study_page(
    out_dir: Path,
    study: str,
    spec: dict,
    table: StudyTable,
    runs: pd.DataFrame,
    figures: list[Path],
    commands: list[str],
) -> Path:
    runs = runs[runs["row"].isin(list(spec["rows"]))]  # the records the table counts, no others
    counts = runs["status"].value_counts().to_dict()
    failed = runs[runs["status"] == "failed"]
    said, said_first, effects = notes(table, spec), lines(table), effects_table(table)
    parts = [
        f"<h1>{html.escape(spec.get('title') or study)}</h1>",
        f"<p>Study <code>{html.escape(study)}</code>: "
        + ", ".join(f"{n} {html.escape(str(s))}" for s, n in sorted(counts.items()))
        + " run(s).</p>",
        *(
            ["<h2>Answer</h2><ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in said_first) + "</ul>"]
            if said_first
            else []
        ),  # fmt: skip
        *_forest(figures, out_dir),
        table_html(table),
        *([f"<pre>{html.escape(chr(10).join(effects))}</pre>"] if effects else []),
        f"<p><small>{html.escape(footnote(table))}</small></p>",
        *(["<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in said) + "</ul>"] if said else []),
        "<p>Also: <a href='table.md'>table.md</a> · <a href='table.tex'>table.tex</a> · "
        "<a href='table.csv'>table.csv</a> · <a href='runs.csv'>runs.csv</a></p>",
    ]
    if len(failed):
        items = "".join(f"<li><code>{html.escape(os.path.relpath(d, out_dir))}</code></li>" for d in failed["run_dir"])
        parts.append(f"<h2 class='fail'>Failed runs ({len(failed)})</h2><ul class='fail'>{items}</ul>")
    pngs = [f for f in figures if f.suffix == ".png" and not f.stem.startswith("forest_")]
    if pngs:
        parts.append("<h2>Figures</h2>")
        parts += [
            f"<figure><img src='{html.escape(os.path.relpath(f, out_dir))}' alt='{html.escape(f.stem)}'>"
            f"<figcaption>{html.escape(f.stem)} "
            f"(<a href='{html.escape(os.path.relpath(f.with_suffix('.svg'), out_dir))}'>svg</a>)"
            "</figcaption></figure>"
            for f in pngs
        ]
    parts.append("<h2>Commands</h2><pre>" + html.escape("\n".join(commands)) + "</pre>")
    path = out_dir / "dashboard.html"
    write_atomic(path, _page(spec.get("title") or study, "\n".join(parts)))
    return path


def _forest(figures: list[Path], out_dir: Path) -> list[str]:
    """The forest plots, first among the figures: Δ with the interval each verdict is read from."""
    return [
        f"<figure><img src='{html.escape(os.path.relpath(f, out_dir))}' alt='{html.escape(f.stem)}'>"
        f"<figcaption>{html.escape(f.stem)}: Δ and the interval its verdict uses</figcaption></figure>"
        for f in figures
        if f.suffix == ".png" and f.stem.startswith("forest_")
    ]


def index_page(root: Path, pages: dict[str, Path]) -> Path:
    items = "".join(
        f"<li><a href='{html.escape(os.path.relpath(p, root))}'>{html.escape(s)}</a></li>"
        for s, p in sorted(pages.items())
    )
    path = root / "index.html"
    write_atomic(path, _page("senet-ablate studies", f"<h1>Studies</h1><ul>{items}</ul>"))
    return path
