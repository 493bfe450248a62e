"""Shared fixtures: run the CLI in-process and capture what it prints."""

from __future__ import annotations

import pytest

from qrtl.cli import main


@pytest.fixture
def cli(capsys):
    """``cli("describe", "xnor_popcount")`` -> (exit status, stdout, stderr)."""
    def run(*argv):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err
    return run
