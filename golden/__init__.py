"""Bit-exact NumPy golden models of every qrtl unit (vectorised, integer bit patterns)."""
