"""A ``StudyTable`` written out: table.md (the answer in words, the table, the factorial effects, what the
columns mean, the notes, the sources) and table.tex (booktabs). table.csv is its frame as it stands."""

from __future__ import annotations

from . import answer
from .cells import brief_cells, cells, effects_cells
from .notes import footnote, notes
from .tables import StudyTable

WIDER = (
    "Every column (secondary metrics, p, P(better), the paper's cells, MACs, img/s): table.csv, the dashboard, "
    "or `senet-report DIR --wide` (table.wide=true at the end of a sweep)."
)


# One pass over the characters (a chain of str.replace would escape the braces it has just written).
# LaTeX's ten specials, then what pdflatex's default T1/utf8 setup does not print as typed.
TEX = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "_": r"\_",
    "^": r"\textasciicircum{}",
    "~": r"\textasciitilde{}",
    "<": r"$<$",  # text-mode < and > print as ¡ and ¿ in LaTeX's default font encoding
    ">": r"$>$",
    "†": r"\dag{}",
    "±": r"$\pm$",
    "×": r"$\times$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
    "≈": r"$\approx$",
    "−": "-",
    "–": "--",
    "—": "---",
    "Δ": r"$\Delta$",
    "α": r"$\alpha$",
    "σ": r"$\sigma$",
    "·": r"$\cdot$",
}


def to_markdown(table: StudyTable, spec: dict, wide: bool = False) -> str:
    """table.md: the title, the answer in words (``answer.lines``), the table (``brief_cells``; ``wide``: every
    column), the factorial effects, then what the columns mean, the notes and the sources."""
    head, body = cells(table) if wide else brief_cells(table)
    said = answer.lines(table)
    lines = [f"**{spec.get('title', '')}**", ""] + ([f"- {x}" for x in said] + [""] if said else [])
    brief = not wide and table.measured
    lines += aligned(head, body) if brief else plain(head, body)
    effects = effects_table(table)
    lines += ["", *effects] if effects else []
    if brief:
        lines += ["", WIDER]
    said_notes = [f"- {n}" for n in notes(table, spec)]
    sources = [f"- {n}" for n in spec.get("notes") or []]  # e.g. where each paper cell comes from
    return (
        "\n".join(
            lines
            + ["", footnote(table, brief=brief)]
            + ([table.speed_note] if table.speed_note else [])
            + (["", "Notes:", *said_notes] if said_notes else [])
            + (["", "Sources:", *sources] if sources else [])
        )
        + "\n"
    )


def aligned(head: list[str], body: list[list[str]]) -> list[str]:
    """A Markdown table with its columns padded to one width (the first left-aligned, the rest right), so that
    it reads as a table in a terminal too."""
    widths = [max(len(x) for x in col) for col in zip(head, *body)]

    def line(cells_: list[str]) -> str:
        return (
            "| "
            + " | ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(cells_, widths)))
            + " |"
        )

    rule = "|" + "|".join(("-" * (w + 1) + (":" if j else "-")) for j, w in enumerate(widths)) + "|"
    return [line(head), rule] + [line(c) for c in body]


def plain(head: list[str], body: list[list[str]]) -> list[str]:
    """A Markdown table without padding (the wide table, and tables of complexity only)."""
    rule = "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"
    return ["| " + " | ".join(head) + " |", rule] + ["| " + " | ".join(c) + " |" for c in body]


def effects_table(table: StudyTable) -> list[str]:
    """The factorial sweep's main effects and interactions as a Markdown table (none: [])."""
    found = effects_cells(table)
    return aligned(*found) if found is not None else []


def tex_escape(s: str) -> str:
    """Text as LaTeX prints it: every special character escaped (tests/test_tables_tex.py compiles it)."""
    return "".join(TEX.get(c, c) for c in str(s))


def to_latex(table: StudyTable, spec: dict, wide: bool = False) -> str:
    """A booktabs table (needs \\usepackage{booktabs}): the brief table's columns, or every one (``wide``)."""
    head, body = cells(table) if wide else brief_cells(table)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{tex_escape(spec.get('title', ''))}}}",
        r"\begin{tabular}{l" + "r" * (len(head) - 1) + "}",
        r"\toprule",
        " & ".join(map(tex_escape, head)) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(map(tex_escape, c)) + r" \\" for c in body]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
