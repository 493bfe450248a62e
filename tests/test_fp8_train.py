"""FP8 training emulation (Wang et al. 2018): GEMMs on the fp8_dot golden, stochastic
weight updates, reproducible training, and RTL replay of a training step's GEMMs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qrtl.golden.errors import QrtlError
from qrtl.golden.fp8 import decode, encode, fp8_dot, fp8_dot_stream
from qrtl.golden.nets.fp8train import (CONFIGS, NOCHUNK, Hyper, dot_params, gemm, step_trace,
                                       train, update_round)


def _codes(rng, shape, mean=0.0):
    return encode(rng.normal(mean, 1.0, shape), "e5m2", saturate=True)


@pytest.mark.parametrize("config", ["fp8-chunk64-sr", "fp8-nochunk-rne"])
@pytest.mark.parametrize("acc", ["e6m9", "fp16"])
def test_gemm_is_fp8_dot_per_element(config, acc):
    """Every element of the GEMM is the fp8_dot golden of its row and column (K = 130:
    two full chunks and a partial one), computed here one dot product at a time."""
    rng = np.random.default_rng(1)
    a, b = _codes(rng, (5, 130), 0.5), _codes(rng, (7, 130), 0.5)
    p = dot_params(CONFIGS[config], acc)
    got = gemm(a, b, p, block=9)          # several row blocks
    for i in range(5):
        for j in range(7):
            want = fp8_dot(a[i], b[j], fmt="e5m2", acc=acc, chunk=p["chunk"], outer=acc)
            assert got[i, j] == want, (i, j)


def test_chunking_changes_long_growing_sums():
    """The two accumulation schemes really differ: on N(1, 1) data of length 1024 the
    unchunked 16-bit sum is further from the exact sum than the chunked one."""
    rng = np.random.default_rng(2)
    a, b = _codes(rng, (4, 1024), 1.0), _codes(rng, (3, 1024), 1.0)
    exact = decode(a, "e5m2") @ decode(b, "e5m2").T
    err = {}
    for config in ("fp8-chunk64-sr", "fp8-nochunk-rne"):
        r = decode(gemm(a, b, dot_params(CONFIGS[config], "e6m9")), "e6m9")
        err[config] = np.abs(r - exact).mean() / np.abs(exact).mean()
    assert err["fp8-nochunk-rne"] > 3 * err["fp8-chunk64-sr"] > 0


def test_gemm_rejects_mismatched_shapes():
    p = dot_params(CONFIGS["fp8-chunk64-sr"], "e6m9")
    with pytest.raises(QrtlError, match="K"):
        gemm(np.zeros((2, 3), np.uint64), np.zeros((2, 4), np.uint64), p)
    assert p["chunk"] == 64 and dot_params(CONFIGS["fp8-nochunk-sr"], "e6m9")["chunk"] == NOCHUNK


def test_stochastic_update_rounding_is_unbiased_and_seeded():
    """A value 0.3 ulp above an e6m9 code: stochastic rounding goes up about 30% of the
    time (mean within 4 standard errors of the value), RNE never; the same seed gives the
    same codes, another seed other codes."""
    lo = decode(encode(np.array([0.1]), "e6m9"), "e6m9")[0]
    hi = decode(encode(np.array([0.1]), "e6m9") + 1, "e6m9")[0]
    x = np.full(20_000, lo + 0.3 * (hi - lo))
    c = update_round(x, "e6m9", "stochastic", np.random.default_rng(5))
    v = decode(c, "e6m9")
    assert set(np.unique(v)) == {lo, hi}
    se = (hi - lo) * np.sqrt(0.3 * 0.7 / len(x))
    assert abs(v.mean() - x[0]) < 4 * se
    assert np.array_equal(c, update_round(x, "e6m9", "stochastic", np.random.default_rng(5)))
    assert not np.array_equal(c, update_round(x, "e6m9", "stochastic", np.random.default_rng(6)))
    assert np.all(decode(update_round(x, "e6m9", "rne", None), "e6m9") == lo)
    with pytest.raises(QrtlError, match="rounding"):
        update_round(x, "e6m9", "truncate", None)


def test_fp32_training_reaches_sane_accuracy():
    r = train("fp32", Hyper(epochs=2))
    assert [e.epoch for e in r.epochs] == [1, 2]
    assert r.epochs[1].train_loss < r.epochs[0].train_loss
    assert r.final_accuracy > 0.9


def test_fp8_training_is_reproducible_and_learns():
    """Two runs of the paper's recipe with the same seed are identical to the last weight
    (same losses and accuracies), another seed differs, and it learns (one epoch, 8 steps
    on 256 images: 41% here, well above the 10% of chance)."""
    hp = Hyper(epochs=1, train_images=256)
    r1, r2 = train("fp8-chunk64-sr", hp), train("fp8-chunk64-sr", hp)
    assert [(e.train_loss, e.test_accuracy) for e in r1.epochs] == \
        [(e.train_loss, e.test_accuracy) for e in r2.epochs]
    assert r1.final_accuracy > 0.3
    e = r1.epochs[0]   # accumulation error about one e6m9 rounding (2^-10), not more
    assert 0 < e.fwd_err < 4e-3 and 0 < e.bwd_err < 4e-3 and 0 < e.wgrad_err < 4e-3
    assert 0 < e.lost_updates < 1
    r3 = train("fp8-chunk64-sr", Hyper(epochs=1, train_images=256, seed=1))
    assert r3.epochs[0].train_loss != r1.epochs[0].train_loss


def test_bad_settings_are_one_line_errors():
    for hp, word in ((Hyper(acc="bf16"), "acc"), (Hyper(loss_scale=1000.0), "power of two"),
                     (Hyper(momentum=1.0), "momentum"), (Hyper(train_images=0), "train_images")):
        with pytest.raises(QrtlError, match=word) as e:
            train("fp32", hp)
        assert "\n" not in str(e.value)
    with pytest.raises(QrtlError, match="unknown training configuration"):
        train("fp4", Hyper())
    with pytest.raises(QrtlError, match="no FP8 GEMM"):
        step_trace("fp32", Hyper())


def test_step_trace_records_every_gemm():
    hp = Hyper(train_images=64)
    trace = step_trace("fp8-chunk64-sr", hp, sample=3)
    layers = [op.layer for op in trace.ops]
    assert sorted(layers) == sorted(["fwd1", "fwd2", "fwd3", "wgrad3", "bwd3", "wgrad2", "bwd2",
                                     "wgrad1"])
    lengths = {op.layer: int(np.flatnonzero(op.inputs["last"])[0]) + 1 for op in trace.ops}
    assert lengths == {"fwd1": 65, "fwd2": 129, "fwd3": 65, "bwd3": 10, "bwd2": 64,
                       "wgrad1": hp.batch, "wgrad2": hp.batch, "wgrad3": hp.batch}
    for op in trace.ops:
        assert op.unit == "fp8_dot" and op.params == dot_params(CONFIGS["fp8-chunk64-sr"], "e6m9")
        assert int(op.outputs["result_valid"].sum()) == 3
        # the recorded outputs are what the unit's registry golden (cycle by cycle) says
        want = fp8_dot_stream(op.inputs, **{k: v for k, v in op.params.items()})
        for port in ("result", "result_valid"):
            assert np.array_equal(op.outputs[port], want[port]), (op.layer, port)


@pytest.mark.parametrize("config", ["fp8-chunk64-sr", "fp8-nochunk-rne"])
def test_rtl_replay_of_a_training_step(config):
    """Dot products of every GEMM of one training step on the RTL fp8_dot (Verilator)."""
    from qrtl.sim.fp8_train import replay_step
    r = replay_step(config, Hyper(train_images=64), sample=3)
    assert r.total_mismatches == 0, r.first_mismatch
    assert r.bit_exact and len(r.gemms) == 8 and r.calls == 1
    assert r.total_ops == sum(3 * g["length"] for g in r.gemms)


def test_rtl_replay_reports_a_wrong_golden_result():
    """The replay can fail: one flipped bit in one recorded golden result of fwd2 is one
    mismatch, counted against fwd2."""
    from qrtl.sim.fp8_train import replay_step
    hp = Hyper(train_images=64)
    trace = step_trace("fp8-chunk64-sr", hp, sample=2)
    op = next(op for op in trace.ops if op.layer == "fwd2")
    at = int(np.flatnonzero(op.outputs["result_valid"])[0])   # one cycle: the next ones are intact
    op.outputs["result"][at] ^= np.uint64(1)
    r = replay_step("fp8-chunk64-sr", hp, sample=2, trace=trace)
    assert r.total_mismatches == 1 and not r.bit_exact
    assert {g["layer"]: g["mismatches"] for g in r.gemms}["fwd2"] == 1


def test_fp8_train_cli(cli, tmp_path):
    out = tmp_path / "train.csv"
    code, stdout, err = cli("fp8-train", "--configs", "fp32,fp8-nochunk-sr", "--epochs", "1",
                            "--train-images", "64", "-o", str(out), "--no-progress")
    assert code == 0, err
    import pandas as pd
    df = pd.read_csv(out)
    assert list(df["config"]) == ["fp32", "fp8-nochunk-sr"] and set(df["epoch"]) == {1}
    assert "fp8-nochunk-sr" in stdout and "wrote" in stdout
    code, stdout, err = cli("fp8-train", "--configs", "fp32", "--epochs", "2", "-o", str(out),
                            "--no-progress", "--json")
    assert code == 0, err
    d = json.loads(stdout)
    assert [e["epoch"] for e in d["epochs"]] == [1, 2] and d["rtl"] == []
    assert d["summary"][0]["config"] == "fp32"
    for bad, word in ((["--configs", "fp4"], "fp4"), (["--acc", "bf16"], "--acc"),
                      (["--epochs", "0"], "--epochs"), (["--loss-scale", "3"], "power of two"),
                      (["--configs", "fp32", "--rtl", "2"], "--rtl")):
        code, _, err = cli("fp8-train", "-o", str(out), "--no-progress", *bad)
        assert code == 2 and word in err and err.count("\n") == 1, err
