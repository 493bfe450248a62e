"""Cost model and paper-ready reports (CSV / Markdown / LaTeX tables, plots)."""
