"""The simulator build cache: one build per distinct Verilog, safe under concurrency."""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ProcessPoolExecutor

from qrtl.sim.runner import build_simulator

TEMPLATE = """// cache test {token}
module cache_probe(input wire [7:0] a, output wire [7:0] y);
  assign y = a + 8'd{k};
endmodule
"""


def _build(token):
    t0 = time.perf_counter()
    bdir = build_simulator({"probe.v": TEMPLATE.format(token=token, k=3)}, "cache_probe")
    return str(bdir), time.perf_counter() - t0, (bdir / "build.log").stat().st_mtime_ns


def test_same_verilog_builds_once_even_concurrently():
    token = secrets.token_hex(8)  # a Verilog text no earlier run has built
    with ProcessPoolExecutor(2) as pool:
        a, b = pool.map(_build, [token, token])
    assert a[0] == b[0]          # one build directory
    assert a[2] == b[2]          # built once: the second run waited and reused it
    again = _build(token)
    assert again[0] == a[0] and again[2] == a[2]
    assert again[1] < 1.0        # a cache hit does not rebuild


def test_different_verilog_builds_separately():
    token = secrets.token_hex(8)
    one = build_simulator({"probe.v": TEMPLATE.format(token=token, k=1)}, "cache_probe")
    two = build_simulator({"probe.v": TEMPLATE.format(token=token, k=2)}, "cache_probe")
    assert one != two and (one / "cache_probe").exists() and (two / "cache_probe").exists()
