"""Verification: cocotb testbenches on Verilator against the golden models."""
