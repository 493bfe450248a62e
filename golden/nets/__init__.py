"""Golden models of real networks trained on the digits data (see :mod:`golden.nets.data`)."""
