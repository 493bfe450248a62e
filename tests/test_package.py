"""Packaging: one import package, layers that point one way, the README's API example."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Each layer and what must not be loaded by importing every module of it.
HIGHER = ("qrtl.api", "qrtl.cli", "qrtl.nets")
LAYERS = {
    "qrtl.golden": ("qrtl.hw", "qrtl.sim", "qrtl.reports", *HIGHER, "amaranth", "cocotb"),
    "qrtl.hw": ("qrtl.sim", "qrtl.reports", *HIGHER),
    "qrtl.sim": ("qrtl.reports", *HIGHER),
    "qrtl.reports": ("qrtl.sim", *HIGHER),
}

_PROBE = """
import importlib, json, pkgutil, sys
layer = sys.argv[1]
pkg = importlib.import_module(layer)
names = [layer] + [m.name for m in pkgutil.walk_packages(pkg.__path__, layer + ".")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
"""


@pytest.mark.parametrize("layer", list(LAYERS))
def test_layer_imports_only_lower_layers(layer):
    """Import every module of a layer in a fresh interpreter: nothing of a higher layer
    (and, for the golden models, no Amaranth) may be loaded."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, layer], capture_output=True, text=True,
                          cwd=ROOT / "tests")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert len(res["imported"]) > 3
    bad = [m for m in res["loaded"]
           if any(m == f or m.startswith(f + ".") for f in LAYERS[layer])]
    assert not bad, f"importing {layer} loaded {bad[:5]}"


def test_import_qrtl_is_light():
    """``import qrtl`` loads no layer beneath the error type until a name is used."""
    code = ("import sys, qrtl; print(sorted(m for m in sys.modules if m.startswith(('qrtl', "
            "'amaranth'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT / "tests").stdout
    assert eval(out) == ["qrtl", "qrtl.golden", "qrtl.golden.errors"]


def test_no_module_outside_qrtl():
    """Nothing of ours is importable as a top-level ``hw``, ``sim``, ``golden`` or
    ``reports`` outside the source tree (only ``qrtl`` is installed)."""
    code = "import importlib.util as u; print([n for n in ('hw', 'sim', 'golden', 'reports') if u.find_spec(n)])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd="/").stdout
    assert out.strip() == "[]"


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """A real wheel of the source tree installed into a fresh virtual environment (without
    its dependencies, which it finds in this test environment through a ``.pth`` line)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\n")
    for f in filter(None, files):
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            (src / f).write_bytes((ROOT / f).read_bytes())
    dist = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(src)], check=True, capture_output=True)
    wheel, = dist.glob("qrtl-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "qrtl-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
                    str(wheel)], check=True, capture_output=True)
    return venv, site


def test_wheel_installs_one_package(wheel_env, tmp_path):
    venv, site = wheel_env
    ours = sorted(p.name for p in site.iterdir() if p.name != "qrtl-test-deps.pth")
    assert ours == ["qrtl", "qrtl-0.1.0.dist-info"], ours
    installed = site / "qrtl"
    assert {p.name for p in installed.iterdir()} >= {"golden", "hw", "sim", "reports", "api.py",
                                                     "cli.py"}
    assert (installed / "reports" / "data" / "qrtl_default.lib").is_file()
    assert sorted(p.name for p in (installed / "golden" / "nets" / "params").glob("*.npz")) == \
        sorted(p.name for p in (ROOT / "golden" / "nets" / "params").glob("*.npz"))
    assert len(list((installed / "golden" / "nets" / "params").glob("*.npz"))) >= 4
    # a folder called sim/ (or reports/) in the working directory shadows nothing
    for name in ("sim", "reports", "hw", "golden"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('shadowed')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["QRTL_BUILD"] = str(tmp_path / "build")
    code = ("import qrtl; u = qrtl.unit('quant_shift', bias=1); "
            "x = u.stimulus(100, seed=0); y = u.golden(x); "
            "from qrtl.golden.nets.mlp import load_float; load_float(); "
            "from qrtl.reports.liberty import default_library_path; "
            "print(qrtl.__file__, default_library_path().is_file(), len(y['q']), "
            "'module ' + u.module in u.verilog())")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    path, lib_ok, n, verilog_ok = out.stdout.split()
    assert path.startswith(str(site)) and lib_ok == "True" and n == "100" and verilog_ok == "True"
    out = subprocess.run([str(venv / "bin" / "qrtl"), "list"], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("xnor_popcount:") and "quant_shift:" in out.stdout
    assert not list(installed.rglob("*.pkl")) and not (installed / "build").exists()


def test_import_contracts_hold(wheel_env):
    """import-linter on the installed package (where the subpackages sit inside ``qrtl/``):
    layers point one way, golden needs no Amaranth, no import cycles between siblings."""
    venv, _ = wheel_env
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code, "--config",
                          str(ROOT / "pyproject.toml"), "--no-cache"],
                         capture_output=True, text=True, cwd=venv)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert re.search(r"Contracts: (\d+) kept, 0 broken", out.stdout).group(1) == "3"


def _readme_api_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_api_example_runs():
    """The README's Python API section, executed as written."""
    code = _readme_api_block()
    assert "qrtl.verify(" in code and "qrtl.cost(" in code and "qrtl.nets.replay(" in code
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["r"].mismatches == 0 and scope["r"].vectors >= 100_000
    assert scope["e"].mismatches == 0 and scope["e"].vectors == 1 << 16
    assert scope["c"].area_um2 > 0 and scope["c"].energy_pj_per_op > 0
    assert scope["n"].bit_exact
