"""Verification: cocotb testbenches on Verilator against the golden models, benchmarks, and
network replay on the RTL. Imports :mod:`qrtl.golden` and :mod:`qrtl.hw` only."""
