"""The CLI contract: list, describe, verilog, and one-line errors for bad input."""

from __future__ import annotations

import json
import re

import pytest

from qrtl.hw.units import all_units, configure
from qrtl.sim.runner import RunResult

UNITS = [u.name for u in all_units()]


def verilog_ports(text: str, module: str) -> dict:
    """Module ports declared in Amaranth's Verilog: name -> (direction, width)."""
    m = re.search(rf"^module {re.escape(module)}\(([^)]*)\);", text, re.M)
    assert m, f"module {module} not found"
    names = [n.strip() for n in m.group(1).split(",") if n.strip()]
    ports = {}
    for d in re.finditer(r"^\s*(input|output)\s+(?:signed\s+)?(?:\[(\d+):0\]\s+)?(\w+);", text, re.M):
        direction = "in" if d.group(1) == "input" else "out"
        ports[d.group(3)] = (direction, int(d.group(2)) + 1 if d.group(2) else 1)
    assert set(ports) == set(names)
    return ports


def test_list_shows_every_unit_and_parameter(cli):
    code, out, _ = cli("list")
    assert code == 0
    for spec in all_units():
        assert f"{spec.name}:" in out
        for p in spec.params:
            assert p.name in out


@pytest.mark.parametrize("unit", UNITS)
def test_describe_json_is_the_contract(cli, unit):
    code, out, _ = cli("describe", unit, "--json")
    assert code == 0
    d = json.loads(out)
    assert set(d) == {"unit", "source", "params", "module", "latency", "clock", "reset", "ports"}
    assert d["source"] == "qrtl"
    assert d["unit"] == unit
    assert d["params"] == configure(unit).params
    assert (d["clock"] is None) == (d["latency"] == 0 and d["reset"] is None)
    for p in d["ports"]:
        assert set(p) == {"name", "direction", "width", "signed"}
        assert p["direction"] in ("in", "out") and p["width"] >= 1
        assert p["name"] not in ("clk", "rst")


@pytest.mark.parametrize("unit", UNITS)
def test_describe_and_verilog_agree(cli, unit, tmp_path):
    code, out, _ = cli("describe", unit, "--json")
    d = json.loads(out)
    path = tmp_path / "unit.v"
    code, _, err = cli("verilog", unit, "-o", str(path))
    assert code == 0 and d["module"] in err
    ports = verilog_ports(path.read_text(), d["module"])
    expect = {p["name"]: (p["direction"], p["width"]) for p in d["ports"]}
    if d["clock"]:
        expect["clk"] = ("in", 1)
    if d["reset"]:
        expect["rst"] = ("in", 1)
    assert ports == expect


@pytest.mark.parametrize("params", [["-p", "n=7", "-p", "threshold=1"],
                                    ["-p", "pipeline=3", "-p", "n=100"],
                                    ["-p", "popcount=naive", "-p", "n=9"]])
def test_describe_and_verilog_agree_xnor_variants(cli, params, capsys):
    code, out, _ = cli("describe", "xnor_popcount", "--json", *params)
    d = json.loads(out)
    code, text, _ = cli("verilog", "xnor_popcount", *params)
    assert code == 0
    expect = {p["name"]: (p["direction"], p["width"]) for p in d["ports"]}
    if d["clock"]:
        expect.update(clk=("in", 1), rst=("in", 1))
    assert verilog_ports(text, d["module"]) == expect


BAD = [
    (["describe", "nosuchunit"], "unknown unit 'nosuchunit'"),
    (["describe", "xnor_popcount", "-p", "bogus=1"], "unknown parameter 'bogus'"),
    (["describe", "xnor_popcount", "-p", "n=0"], "n=0 is out of range (allowed 1..4096)"),
    (["describe", "xnor_popcount", "-p", "n=4097"], "n=4097 is out of range"),
    (["describe", "xnor_popcount", "-p", "n=six"], "n='six' is not an integer"),
    (["describe", "xnor_popcount", "-p", "n=6.5"], "is not an integer"),
    (["describe", "xnor_popcount", "-p", "n"], "not of the form NAME=VALUE"),
    (["describe", "xnor_popcount", "-p", "popcount=fast"], "allowed: tree, naive"),
    (["verilog", "xnor_popcount", "-o", "/nonexistent-dir/x.v"], "cannot write output file"),
    (["sim", "xnor_popcount", "--vectors", "0"], "--vectors=0"),
    (["sim", "xnor_popcount", "--vectors", "many"], "invalid int value"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(cli, argv, message):
    code, out, err = cli(*argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("qrtl: error: ")
    assert message in err
    assert "Traceback" not in err


def test_sim_reports_first_mismatch_and_fails(cli, monkeypatch):
    """The CLI prints inputs/expected/actual and exits non-zero on a mismatch."""
    fake = RunResult("xnor_popcount", "m", {}, 10, 1,
                     {"index": 3, "inputs": {"a": "1"}, "expected": {"dot": "2"},
                      "actual": {"dot": "3"}}, 0.1, 0.2)
    monkeypatch.setattr("qrtl.api.verify", lambda *a, **k: fake)
    code, out, _ = cli("sim", "xnor_popcount")
    assert code == 1
    assert "first mismatch at vector 3" in out
    assert "expected dot=2" in out and "actual   dot=3" in out
