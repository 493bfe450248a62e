"""Units from outside qrtl: plug-in packages (the ``qrtl.units`` entry-point group) and
foreign Verilog (``--verilog``, ``qrtl.unit_from_verilog``), through every command.

The two plug-in packages under ``tests/`` are installed for real, with pip, into a folder
of this session (``pip install --target``), and the commands that should see them run in
a subprocess with that folder on ``PYTHONPATH``: the test environment's own registry (and
``qrtl report``) stays exactly the built-in one, and a broken plug-in can be tested without
breaking every other test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import qrtl
from qrtl.golden.cache import build_root

HERE = Path(__file__).parent
DATA = HERE / "data"
PLUGINS = {"good": HERE / "plugin_pkg", "broken": HERE / "plugin_broken"}

# one worker installs the plug-ins once and runs these tests
pytestmark = pytest.mark.xdist_group("plugins")


@pytest.fixture(scope="session")
def plugin_dirs(tmp_path_factory) -> dict:
    """``{"good": folder, "broken": folder}``, each holding one plug-in package installed
    by pip (from a copy of its source, so that the build leaves nothing in tests/)."""
    root = tmp_path_factory.mktemp("plugins")
    out = {}
    for name, src in PLUGINS.items():
        shutil.copytree(src, root / f"src-{name}")
        out[name] = root / name
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--no-build-isolation", "--no-index", "--target", str(out[name]),
                        str(root / f"src-{name}")], check=True, capture_output=True, text=True)
    return out


def run_qrtl(*argv, plugins=(), dirs=None, cwd=None, python=None):
    """Run ``qrtl ARGV`` (or ``python -c PYTHON``) in a subprocess that sees ``plugins``:
    (exit status, stdout, stderr)."""
    env = dict(os.environ, QRTL_BUILD=str(build_root()),
               PYTHONPATH=os.pathsep.join(str(dirs[p]) for p in plugins))
    cmd = [sys.executable, "-c", python] if python else \
        [sys.executable, "-c", "import sys; from qrtl.cli import main; sys.exit(main())", *argv]
    # never the repository root as the current folder: its qrtl/ would shadow the package
    proc = subprocess.run(cmd, cwd=cwd or DATA, env=env, capture_output=True, text=True,
                          timeout=1200)
    return proc.returncode, proc.stdout, proc.stderr


# --- plug-ins ------------------------------------------------------------------------------

def test_plugin_unit_is_listed_and_described_with_its_package(plugin_dirs):
    code, out, err = run_qrtl("list", plugins=["good"], dirs=plugin_dirs)
    assert code == 0 and err == ""
    assert "sat_add: saturating signed adder" in out and "[from qrtl-example-plugin]" in out
    assert out.index("fp8_dot:") < out.index("sat_add:")  # after the built-in units
    code, out, err = run_qrtl("describe", "sat_add", "-p", "width=4", "--json",
                              plugins=["good"], dirs=plugin_dirs)
    d = json.loads(out)
    assert code == 0 and d["source"] == "qrtl-example-plugin"
    assert [(p["name"], p["direction"], p["width"], p["signed"]) for p in d["ports"]] == \
        [("a", "in", 4, True), ("b", "in", 4, True), ("s", "out", 4, True)]
    code, out, _ = run_qrtl("describe", "sat_add", plugins=["good"], dirs=plugin_dirs)
    assert "source   qrtl-example-plugin" in out


def test_plugin_unit_through_verilog_sim_bench_and_cost(plugin_dirs, tmp_path):
    args = dict(plugins=["good"], dirs=plugin_dirs)
    code, _, err = run_qrtl("verilog", "sat_add", "-p", "width=4", "-o", str(tmp_path / "s.v"), **args)
    assert code == 0 and "module sat_add_width4_pipeline0" in (tmp_path / "s.v").read_text()
    code, out, err = run_qrtl("sim", "sat_add", "-p", "width=4", "--json", **args)
    r = json.loads(out)
    assert code == 0 and r["vectors"] == 256 and r["mismatches"] == 0  # every (a, b) pair
    code, out, err = run_qrtl("bench", "sat_add", "-p", "width=4", "--vectors", "2000", **args)
    assert code == 0 and "(a) qrtl streaming harness, -j 2" in out and "(f) plain C++ loop" in out
    code, out, err = run_qrtl("cost", "sat_add", "-p", "width=4", "--vectors", "512", "--json", **args)
    c = json.loads(out)
    assert code == 0 and c["unit"] == "sat_add" and c["area_um2"] > 0
    assert c["gate_check"] == {"vectors": 512, "mismatches": 0}


def test_plugin_unit_in_the_api(plugin_dirs):
    script = """
import json, qrtl
u = qrtl.unit("sat_add", width=4)
r = qrtl.verify(u)
c = qrtl.cost(u, vectors=512)
print(json.dumps({"units": qrtl.units(), "source": u.describe()["source"], "mismatches": r.mismatches,
                  "vectors": r.vectors, "area": c.area_um2}))
"""
    code, out, err = run_qrtl(python=script, plugins=["good"], dirs=plugin_dirs)
    assert code == 0, err
    d = json.loads(out)
    assert d["units"][-1] == "sat_add" and d["source"] == "qrtl-example-plugin"
    assert d["mismatches"] == 0 and d["vectors"] == 256 and d["area"] > 0


def test_broken_plugins_warn_in_one_line_each_and_list_still_works(plugin_dirs):
    code, out, err = run_qrtl("list", plugins=["good", "broken"], dirs=plugin_dirs)
    assert code == 0
    lines = err.splitlines()
    assert len(lines) == 3 and all(ln.startswith("qrtl: warning: plug-in ") for ln in lines)
    assert all("of qrtl-broken-plugin" in ln for ln in lines)
    by_name = {ln.split("'")[1]: ln for ln in lines}
    assert "ModuleNotFoundError" in by_name["missing"]
    assert "not a UnitSpec" in by_name["wrong_type"]
    assert "'int_mac': the name is taken by a unit of qrtl" in by_name["clash"]
    # the built-in unit kept its name, the good plug-in still loads
    assert "int_mac: integer multiply-accumulate" in out and "an impostor" not in out
    assert "sat_add:" in out
    code, out, _ = run_qrtl("describe", "int_mac", "--json", plugins=["broken"], dirs=plugin_dirs)
    assert code == 0 and json.loads(out)["source"] == "qrtl"


# --- foreign Verilog -----------------------------------------------------------------------

@pytest.fixture
def in_data(monkeypatch):
    """Run in tests/data, where the golden models of the foreign modules live (the build
    folder stays where it was: it is relative to the current folder by default)."""
    monkeypatch.setenv("QRTL_BUILD", str(build_root()))
    monkeypatch.chdir(DATA)
    monkeypatch.syspath_prepend(str(DATA))


ADD8 = ["--verilog", "add8.v", "--top", "add8"]
MUL = ["--verilog", "mul_reg.v", "--top", "mul_reg", "--clock", "clock", "--reset", "reset"]


def test_foreign_ports_are_read_by_yosys(cli, in_data):
    code, out, _ = cli("describe", *ADD8, "--json")
    d = json.loads(out)
    assert code == 0 and d["unit"] == "verilog:add8" and d["source"] == "verilog"
    assert [(p["name"], p["direction"], p["width"], p["signed"]) for p in d["ports"]] == \
        [("a", "in", 8, False), ("b", "in", 8, False), ("s", "out", 9, False)]
    code, out, _ = cli("describe", *MUL, "--json")
    d = json.loads(out)
    assert d["clock"] == "clock" and d["reset"] == "reset" and d["latency"] == 1
    assert [(p["name"], p["width"], p["signed"]) for p in d["ports"]] == \
        [("a", 4, True), ("b", 4, True), ("p", 8, True)]


def test_foreign_sim_against_a_golden_in_the_current_folder(plugin_dirs):
    # a subprocess, so that the golden's module is found through the current folder only
    code, out, err = run_qrtl("sim", *ADD8, "--golden", "foreign_models:add8", dirs=plugin_dirs)
    assert code == 0, err
    assert "verilog:add8 (add8): 65,536 vectors checked on Verilator" in out  # exhaustive
    assert "0 mismatch(es)" in out


def test_foreign_sim_catches_a_wrong_golden(cli, in_data):
    code, out, _ = cli("sim", *ADD8, "--golden", "foreign_models:add8_no_carry")
    assert code == 1
    assert "32640 mismatch(es)" in out  # every pair whose sum carries out
    assert "first mismatch at vector 511:" in out
    assert "inputs   a=255 (0xff), b=1 (0x01)" in out
    assert "expected s=0 (0x000)" in out and "actual   s=256 (0x100)" in out


def test_foreign_sequential_module(cli, in_data):
    code, out, _ = cli("sim", *MUL, "--golden", "foreign_models:mul_signed", "--json")
    r = json.loads(out)
    assert code == 0 and r["module"] == "qrtl_wrap_mul_reg" and r["vectors"] == 256
    assert r["mismatches"] == 0
    code, out, _ = cli("sim", *MUL, "--latency", "2", "--golden", "foreign_models:mul_signed", "--json")
    assert code == 1 and json.loads(out)["mismatches"] > 0  # the wrong latency is caught
    code, out, _ = cli("cost", *MUL, "--golden", "foreign_models:mul_signed", "--vectors", "512",
                       "--clock-ns", "5", "--json")
    c = json.loads(out)
    assert code == 0 and c["clock_ns"] == 5 and c["latency"] == 1
    assert c["cells"].get("sky130_fd_sc_hd__dfxtp_1") == 8  # the product register
    assert c["gate_check"] == {"vectors": 511, "mismatches": 0}


def test_foreign_cost_of_our_own_verilog_equals_the_unit_cost(cli, in_data, tmp_path):
    """The Verilog qrtl generates for a unit, costed as a foreign module on the same
    operations (a stimulus file), costs what the unit costs. (Amaranth's Verilog lists
    the ports in its own order and unsigned, so the two random stimuli would differ.)"""
    params = ["-p", "a_width=4", "-p", "b_width=4", "-p", "acc_width=8"]
    u = qrtl.unit("int_mac", a_width=4, b_width=4, acc_width=8)
    np.savez(tmp_path / "ops.npz", **u.stimulus(512, seed=3))
    cli("verilog", "int_mac", *params, "-o", str(tmp_path / "mac.v"))
    ops = ["--stimulus", str(tmp_path / "ops.npz"), "--vectors", "512", "--json"]
    code, out, _ = cli("cost", "int_mac", *params, *ops)
    ours = json.loads(out)
    code, out, _ = cli("cost", "--verilog", str(tmp_path / "mac.v"), "--top", u.module, *ops)
    foreign = json.loads(out)
    assert code == 0 and foreign["unit"] == f"verilog:{u.module}" and foreign["gate_check"] is None
    assert ours["gate_check"] == {"vectors": 512, "mismatches": 0}
    for key in ("area_um2", "cells", "delay_ps", "energy_pj_per_op",
                "energy_zero_delay_pj_per_op", "glitch_fraction"):
        assert foreign[key] == ours[key], key


def test_foreign_unit_in_the_api(in_data, tmp_path):
    from foreign_models import add8
    u = qrtl.unit_from_verilog(DATA / "add8.v", "add8", golden=add8)
    assert isinstance(u, qrtl.Unit) and [p.name for p in u.inputs] == ["a", "b"]
    r = qrtl.verify(u)
    assert r.vectors == 65536 and r.mismatches == 0
    # a stimulus file: the CLI and the API cost the same vectors to the same figures
    rng = np.random.default_rng(1)
    x = {"a": rng.integers(0, 256, 300), "b": rng.integers(0, 256, 300)}
    np.savez(tmp_path / "ops.npz", **x)
    c = qrtl.cost(u, stimulus=x, vectors=300, stimulus_label="ops.npz")
    assert c.gate_check == {"vectors": 300, "mismatches": 0} and c.stimulus == "ops.npz"
    r = qrtl.verify(u, stimulus=x)
    assert r.vectors == 300 and r.mismatches == 0


def test_foreign_cost_with_a_stimulus_file(cli, in_data, tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "ops.npz", a=rng.integers(0, 256, 300), b=rng.integers(0, 256, 300))
    code, out, _ = cli("cost", *ADD8, "--golden", "foreign_models:add8", "--stimulus",
                       str(tmp_path / "ops.npz"), "--vectors", "300", "--json")
    c = json.loads(out)
    assert code == 0 and c["stimulus"] == "ops.npz" and c["gate_check"]["mismatches"] == 0
    u = qrtl.unit_from_verilog(DATA / "add8.v", "add8")
    with np.load(tmp_path / "ops.npz") as d:
        api = qrtl.cost(u, stimulus=dict(d), vectors=300, stimulus_label="ops.npz")
    assert api.energy_pj_per_op == c["energy_pj_per_op"] and api.area_um2 == c["area_um2"]


def test_foreign_bad_input_is_one_line(cli, in_data, tmp_path):
    np.savez(tmp_path / "no_b.npz", a=np.arange(4))
    np.savez(tmp_path / "wide.npz", a=np.arange(4), b=np.array([0, 1, 2, 256]))
    cases = [
        (["sim", "--verilog", "nothere.v", "--top", "add8"], "Verilog file 'nothere.v': no such file"),
        (["sim", "--verilog", "add8.v", "--top", "add9"], "no module 'add9' in the Verilog (modules: add8)"),
        (["sim", *ADD8, "--golden", "no_such_module:f"], "cannot import no_such_module"),
        (["sim", *ADD8, "--golden", "foreign_models:nope"], "foreign_models has no 'nope'"),
        (["sim", *ADD8, "--golden", "foreign_models"], "expected package.module:function"),
        (["sim", *ADD8], "verilog:add8 has no golden model"),
        (["sim", *ADD8, "--golden", "foreign_models:no_outputs"], "returned no array for output port(s) s"),
        (["sim", *ADD8, "--golden", "foreign_models:add8", "--stimulus", str(tmp_path / "no_b.npz")],
         "no array for input port(s) b"),
        (["cost", *ADD8, "--stimulus", str(tmp_path / "wide.npz")], "b: value 256 does not fit 8 bits (allowed -128..255)"),
        (["sim", *ADD8, "--clock", "clk"], "clock 'clk': module add8 has no 1-bit input of that name"),
        (["sim", "--top", "add8"], "--top goes with --verilog"),
        (["sim", "--verilog", "add8.v"], "--verilog needs --top MODULE"),
        (["sim", "int_mac", *ADD8], "--verilog takes no UNIT"),
    ]
    for argv, message in cases:
        code, out, err = cli(*argv)
        assert code == 2, argv
        assert err.count("\n") == 1 and err.startswith("qrtl: error: "), (argv, err)
        assert message in err, (argv, err)
