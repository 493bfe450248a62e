"""Sweeps: the value syntax, one-line errors before any work, the CSV and plots, the fitted
exponents, the cache, and a real Dask LocalCluster giving the same rows as a local run."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

import qrtl
from qrtl.golden.errors import QrtlError
from qrtl.golden.params import parse_values
from qrtl.reports.liberty import default_library_path
from qrtl.reports.sweep import exponents, fit_exponent, pareto_front, points

pytestmark = pytest.mark.xdist_group("sweep")


# --- the grid, without running anything -------------------------------------------------

def test_value_syntax():
    assert parse_values("n", "16..4096") == [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    assert parse_values("n", "8..48:8") == [8, 16, 24, 32, 40, 48]
    assert parse_values("n", "1..10:4") == [1, 5, 9]
    assert parse_values("n", "3, 4..8, 0x10") == ["3", 4, 8, "0x10"]
    assert parse_values("n", [1, 2]) == [1, 2]
    for text, words in (("16..100", "power of two"), ("0..8", "starts at 1"),
                        ("8..4", "ends below"), ("8..16:0", "step"), ("a..b", "not an integer"),
                        ("8,,16", "empty value")):
        with pytest.raises(QrtlError, match=words):
            parse_values("n", text)


def test_points_product_zip_and_validation():
    grid = points("xnor_popcount", {"n": "16..64", "pipeline": "0,1"})
    assert [(p["n"], p["pipeline"]) for p in grid] == [(16, 0), (16, 1), (32, 0), (32, 1),
                                                       (64, 0), (64, 1)]
    assert all(p["popcount"] == "tree" for p in grid)  # the others keep their defaults
    z = points("int_mac", {"a_width": "4..16", "b_width": "4..16"}, zip=True)
    assert [(p["a_width"], p["b_width"]) for p in z] == [(4, 4), (8, 8), (16, 16)]
    with pytest.raises(QrtlError, match="--zip needs value lists of equal length"):
        points("int_mac", {"a_width": "4..16", "b_width": "4,8"}, zip=True)
    with pytest.raises(QrtlError, match=r"n=8192 is out of range"):
        points("xnor_popcount", {"n": "16..8192"})
    with pytest.raises(QrtlError, match="unknown parameter 'width'"):
        points("xnor_popcount", {"width": "8"})


@pytest.mark.parametrize("argv,message", [
    (["sweep", "xnor_popcount", "-p", "n=8,16", "-p", "pipeline=0,1,2", "--zip"],
     "--zip needs value lists of equal length (n has 2, pipeline has 3)"),
    (["sweep", "xnor_popcount", "-p", "n=16..100"], "must be 16 times a power of two"),
    (["sweep", "xnor_popcount", "-p", "n=0,8"], "parameter n=0 is out of range"),
    (["sweep", "xnor_popcount", "-p", "popcount=tree,wallace"], "'wallace' is not a valid choice"),
    (["sweep", "xnor_popcount"], "give the swept parameters"),
    (["sweep", "nope", "-p", "n=8"], "unknown unit 'nope'"),
    (["sweep", "xnor_popcount", "-p", "n=8", "--stimulus", "int8"], "unknown stimulus 'int8'"),
    (["sweep", "xnor_popcount", "-p", "n=8", "--liberty", "/no/such.lib"], "no such file"),
])
def test_bad_sweep_is_one_line_and_exit_2(cli, tmp_path, argv, message):
    t0 = time.perf_counter()
    code, out, err = cli(*argv, "-o", str(tmp_path / "out"), "--no-progress")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err, err
    assert time.perf_counter() - t0 < 30  # before any synthesis


def test_fit_exponent_and_pareto_front():
    x = np.array([16, 32, 64, 128])
    assert fit_exponent(x, 3.0 * x ** 1.5) == pytest.approx(1.5)
    assert fit_exponent(x, 7.0 + 0 * x) == pytest.approx(0.0)
    assert fit_exponent([8, 8], [1, 2]) is None
    #          0  1  2  3  4
    area = [1, 2, 2, 3, 4]
    energy = [5, 3, 4, 3, 1]
    assert pareto_front(area, energy) == [0, 1, 4]


# --- real sweeps --------------------------------------------------------------------------

def _png_svg(folder, stem):
    assert (folder / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (folder / f"{stem}.svg").read_text()[:1000]


def test_sweep_writes_csv_plots_and_fits_a_linear_area(cli, tmp_path):
    """xnor_popcount n = 8, 16, 32: costed and verified on Verilator; the tree's area
    grows about linearly in n; a rerun reads every point from the cache."""
    out = tmp_path / "sweep"
    code, stdout, err = cli("sweep", "xnor_popcount", "-p", "n=8..32", "--verify", "300",
                            "-j", "1", "-o", str(out), "--no-progress")
    assert code == 0, err
    import pandas as pd
    df = pd.read_csv(out / "sweep.csv")
    assert list(df["n"]) == [8, 16, 32]
    for col in ("unit", "n", "pipeline", "threshold", "popcount", "area_um2", "cell_count",
                "delay_ps", "energy_pj_per_op", "energy_zero_delay_pj_per_op", "glitch_pct",
                "power_mw", "verify_vectors", "verify_mismatches"):
        assert col in df.columns
    assert (df["verify_vectors"] >= 300).all() and (df["verify_mismatches"] == 0).all()
    assert (np.diff(df["area_um2"]) > 0).all()
    for stem in ("scaling", "pareto"):
        _png_svg(out, stem)
    fits = pd.read_csv(out / "exponents.csv")
    area = fits[fits["figure"] == "area_um2"]["exponent"].item()
    assert 0.85 < area < 1.3, area  # ~linear: one full adder per input bit
    assert "exponent" in stdout and "area_um2" in stdout
    again = qrtl.sweep("xnor_popcount", {"n": [8, 16, 32]}, verify=300, jobs=1, progress=False)
    assert again.attrs["computed"] == 0
    assert exponents(again)[0]["exponent"] == pytest.approx(area, abs=1e-4)


# --- Dask -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0") as c:
        yield c


def test_dask_rows_equal_local_and_fill_the_local_cache(cluster, tmp_path, monkeypatch):
    """The same sweep locally and on two Dask worker processes (each in its own scratch
    folder; the Liberty file travels as bytes): identical sweep.csv; afterwards a local
    rerun in the client's build folder computes nothing."""
    lib = tmp_path / "my_corner.lib"
    shutil.copyfile(default_library_path(), lib)
    params = {"n": "8,16", "pipeline": "0,1"}
    monkeypatch.setenv("QRTL_BUILD", str(tmp_path / "local-build"))
    local = qrtl.sweep("xnor_popcount", params, liberty=str(lib), jobs=1, progress=False,
                       output=tmp_path / "local")
    assert local.attrs["computed"] == 4
    monkeypatch.setenv("QRTL_BUILD", str(tmp_path / "client-build"))
    remote = qrtl.sweep("xnor_popcount", params, liberty=str(lib), progress=False,
                        dask=cluster.scheduler_address, output=tmp_path / "dask")
    assert remote.attrs["computed"] == 4 and remote.attrs["engine"].startswith("dask")
    assert (tmp_path / "dask" / "sweep.csv").read_text() == \
        (tmp_path / "local" / "sweep.csv").read_text()
    # the workers synthesised in their own folders: the client has no synthesis cache ...
    assert not (tmp_path / "client-build" / "cache" / "synth").exists()
    # ... yet its cost cache holds every point: a local rerun computes nothing
    t0 = time.perf_counter()
    warm = qrtl.sweep("xnor_popcount", params, liberty=str(lib), jobs=1, progress=False)
    assert warm.attrs["computed"] == 0 and time.perf_counter() - t0 < 20
    assert warm.equals(remote)
    # and the single cost of one point is warm too (the workers' cost entries came back)
    c = qrtl.cost(qrtl.unit("xnor_popcount", n=16, pipeline=1), liberty=str(lib))
    assert c.cached and c.area_um2 == remote["area_um2"].iloc[3]


def test_dask_environment_variable_is_the_default(cluster, tmp_path, monkeypatch, cli):
    monkeypatch.setenv("QRTL_BUILD", str(tmp_path / "build"))
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
    code, out, err = cli("sweep", "xnor_popcount", "-p", "n=8", "-o", str(tmp_path / "o"),
                         "--no-progress")
    assert code == 0, err
    assert f"on dask {cluster.scheduler_address}" in out


def test_bad_dask_address_is_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("QRTL_BUILD", str(tmp_path / "build"))
    code, out, err = cli("sweep", "xnor_popcount", "-p", "n=8", "--dask", "tcp://127.0.0.1:9",
                         "-o", str(tmp_path / "o"), "--no-progress")
    assert code == 2
    assert err.count("\n") == 1 and "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in err
