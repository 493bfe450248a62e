"""Cost model and paper-ready reports: Liberty, synthesis, timing, energy, cost, CSV /
Markdown / LaTeX tables, plots. Imports :mod:`qrtl.golden` and :mod:`qrtl.hw` only (the
RTL runs of the report are handed in by the layer above)."""
