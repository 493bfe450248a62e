"""One table, three formats: CSV for data, Markdown for the README/report, LaTeX for papers.

Numbers are formatted once (:func:`fmt`) and the same strings go into every format, so a
number in ``report.md`` is literally a value of the CSV next to it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Mapping, Sequence

from qrtl.golden.cache import atomic_output, atomic_write

__all__ = ["fmt", "Table", "latex_escape", "save_figure"]

_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
        "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def fmt(value, digits: int = 4) -> str:
    """A number with ``digits`` significant digits (integers exact); text unchanged."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == 0:
            return "0"
        mag = math.floor(math.log10(abs(value)))
        decimals = max(0, digits - 1 - mag)
        if abs(value) >= 1e6 or abs(value) < 1e-4:
            return f"{value:.{digits - 1}e}"
        return f"{value:.{decimals}f}"
    return str(value)


def latex_escape(text: str) -> str:
    return "".join(_TEX.get(c, c) for c in str(text))


class Table:
    """Rows of already formatted strings with column names, written three ways."""

    def __init__(self, rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None,
                 digits: int = 4, caption: str = "", label: str = "",
                 brief: Sequence[str] | None = None):
        self.columns = list(columns or (rows[0].keys() if rows else []))
        self.rows = [[fmt(r.get(c), digits) for c in self.columns] for r in rows]
        self.caption, self.label = caption, label
        # Markdown and LaTeX show the ``brief`` columns (a subset, for a page); CSV has all.
        self.brief = list(brief) if brief else list(self.columns)
        missing = [c for c in self.brief if c not in self.columns]
        if missing:
            raise ValueError(f"brief columns {missing} are not table columns")

    def _shown(self):
        idx = [self.columns.index(c) for c in self.brief]
        return self.brief, [[r[i] for i in idx] for r in self.rows]

    def csv(self, path: Path) -> Path:
        with atomic_output(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(self.columns)
            w.writerows(self.rows)
        return path

    def markdown(self) -> str:
        cols, rows = self._shown()
        numeric = [all(_is_number(r[i]) for r in rows if r[i] != "") for i in range(len(cols))]
        head = "| " + " | ".join(cols) + " |"
        rule = "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"
        body = ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join([head, rule, *body]) + "\n"

    def latex(self) -> str:
        """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
        cols, rows = self._shown()
        numeric = [all(_is_number(r[i]) for r in rows if r[i] != "") for i in range(len(cols))]
        spec = "".join("r" if n else "l" for n in numeric)
        lines = [r"\begin{table}[t]", r"\centering", r"\footnotesize", r"\setlength{\tabcolsep}{3pt}"]
        if self.caption:
            lines.append(r"\caption{" + latex_escape(self.caption) + "}")
        if self.label:
            lines.append(r"\label{" + self.label + "}")
        lines += [r"\begin{tabular}{" + spec + "}", r"\toprule",
                  " & ".join(latex_escape(c) for c in cols) + r" \\", r"\midrule"]
        lines += [" & ".join(latex_escape(v) for v in r) + r" \\" for r in rows]
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        return "\n".join(lines) + "\n"

    def write(self, stem: Path, formats=("csv", "md", "tex")) -> list[Path]:
        """Write ``stem.csv``/``stem.md``/``stem.tex``; returns the paths."""
        out = []
        for f in formats:
            path = stem.with_suffix("." + f)
            if f == "csv":
                self.csv(path)
            elif f == "md":
                atomic_write(path, self.markdown())
            elif f == "tex":
                atomic_write(path, self.latex())
            out.append(path)
        return out


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def save_figure(fig, out: Path, stem: str) -> list[Path]:
    """Write a matplotlib figure as ``out/stem.png`` and ``out/stem.svg`` (atomically), close
    it, and return the two paths: the one figure writer of the reports."""
    import matplotlib.pyplot as plt
    written = []
    for ext in ("png", "svg"):
        with atomic_output(out / f"{stem}.{ext}", "wb") as fh:
            fig.savefig(fh, format=ext)
        written.append(out / f"{stem}.{ext}")
    plt.close(fig)
    return written
