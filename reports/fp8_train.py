"""``qrtl fp8-train``: does FP8 training with chunked accumulation and stochastic rounding
match float32, while unchunked 16-bit accumulation does not?

The claim tested (Wang et al. 2018, "Training Deep Neural Networks with 8-bit Floating
Point Numbers"): with (1,5,2) FP8 operands in every GEMM, 16-bit chunk-based accumulation
and 16-bit weight updates with stochastic rounding, training reaches float32 accuracy;
without chunking (and with round-to-nearest updates) it falls behind.

Each configuration of :data:`golden.nets.fp8train.CONFIGS` trains the digits MLP
64-128-64-10 from the same initialization on the same data order
(:func:`golden.nets.fp8train.train`, every GEMM on the bit-exact ``fp8_dot`` golden model),
and the test accuracy (450 test images) is measured after every epoch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qrtl.golden.errors import QrtlError
from qrtl.golden.nets.fp8train import CONFIGS, DEFAULT_CONFIGS, Hyper, train

__all__ = ["fp8_train", "pivot", "summary"]


def fp8_train(configs=DEFAULT_CONFIGS, hyper: Hyper = Hyper(), progress=None) -> pd.DataFrame:
    """Train every configuration in ``configs`` with ``hyper``; one row per (config, epoch).

    Columns: ``config, epoch, train_loss, test_accuracy, seconds`` (wall time of the epoch,
    training plus evaluation), ``fwd_err, bwd_err, wgrad_err`` (relative accumulation error
    of the epoch's training GEMMs of each kind), ``lost_updates`` (share of nonzero weight
    updates that left the 16-bit weight unchanged; :class:`golden.nets.fp8train.EpochStats`)
    and the shared settings ``acc, batch, lr, momentum,
    loss_scale, train_images, seed``. ``progress(config, epoch, step)`` is called after every
    SGD step.
    """
    configs = list(configs)
    if not configs:
        raise QrtlError(f"no configuration given (allowed: {', '.join(CONFIGS)})")
    for c in configs:
        if c not in CONFIGS:
            raise QrtlError(f"configuration {c!r} is not one of {', '.join(CONFIGS)}")
    if len(set(configs)) != len(configs):
        raise QrtlError("a configuration is given twice")
    hp = hyper.checked()
    rows = []
    for c in configs:
        run = train(c, hp, progress)
        for e in run.epochs:
            rows.append({"config": c, "epoch": e.epoch, "train_loss": e.train_loss,
                         "test_accuracy": e.test_accuracy, "seconds": e.seconds,
                         "fwd_err": e.fwd_err, "bwd_err": e.bwd_err, "wgrad_err": e.wgrad_err,
                         "lost_updates": e.lost_updates,
                         "acc": hp.acc, "batch": hp.batch, "lr": hp.lr, "momentum": hp.momentum,
                         "loss_scale": hp.loss_scale,
                         "train_images": run.hyper["train_images"], "seed": hp.seed})
    return pd.DataFrame(rows)


def pivot(df: pd.DataFrame, value: str = "test_accuracy") -> pd.DataFrame:
    """Wide table: one row per configuration (in the order trained), one column per epoch."""
    order = list(dict.fromkeys(df["config"]))
    t = df.pivot_table(index="config", columns="epoch", values=value, sort=False)
    return t.loc[order]


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: final and best test accuracy, the gap to ``fp32`` (final, in
    percentage points; NaN without an ``fp32`` row), seconds per epoch (mean) and the
    relative accumulation error of each GEMM kind over all epochs (RMS of the epochs'), and
    the share of lost weight updates (mean of the epochs')."""
    rows = []
    last = df.sort_values("epoch").groupby("config", sort=False).tail(1).set_index("config")
    ref = float(last.loc["fp32", "test_accuracy"]) if "fp32" in last.index else float("nan")
    for c in dict.fromkeys(df["config"]):
        d = df[df["config"] == c]
        fin = float(last.loc[c, "test_accuracy"])
        rows.append({"config": c, "final_accuracy": fin,
                     "best_accuracy": float(d["test_accuracy"].max()),
                     "gap_to_fp32_pp": 100 * (fin - ref),
                     "seconds_per_epoch": float(d["seconds"].mean()),
                     **{k: float(np.sqrt(np.mean(d[k] ** 2)))
                        for k in ("fwd_err", "bwd_err", "wgrad_err")},
                     "lost_updates": float(d["lost_updates"].mean())})
    return pd.DataFrame(rows)
