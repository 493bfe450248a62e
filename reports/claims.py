"""The cited papers' claims, each measured and judged by a stated rule (``claims.csv``).

Every function takes tables the report has already measured and returns one row:
``paper``, ``claim`` (the paper's statement, paraphrased), ``measured`` (the figures, with
where they come from) and ``verdict`` (``holds``, ``not significant``, ``does not hold``,
or for a claim of several parts ``partly``), decided
by the rule in its docstring, never by hand.

Accuracy differences between networks are judged on the seed study
(:func:`qrtl.golden.nets.seed_study`: every network retrained with seeds 0..4, the deployed
network's test accuracy): an improvement "holds" when the mean paired difference over seeds
is positive and at least twice its standard error (a paired t of 2), is "not significant"
when it is positive but smaller than that (within the training noise of that many seeds),
and "does not hold" when the mean difference is zero or negative. The
committed networks (seed 0 for ABC-Net and BinaryDuo; the BNN's committed parameters were
trained by an earlier version of the trainer) are one draw each and are quoted beside.
"""

from __future__ import annotations

import math
from typing import Optional

__all__ = ["paired", "abc_claim", "binaryduo_claim", "norm_claim", "fp8_train_claim",
           "fp_int_claim", "FP_INT_PAIRS",
           "CLAIM_COLUMNS"]

CLAIM_COLUMNS = ["paper", "claim", "measured", "verdict"]


def paired(seeds, a: str, b: str) -> dict:
    """Mean and standard error of ``accuracy(a) - accuracy(b)`` over the seeds both have
    (percentage points), the paired t and the number of seeds."""
    pa = seeds[seeds["network"] == a].set_index("seed")["accuracy"]
    pb = seeds[seeds["network"] == b].set_index("seed")["accuracy"]
    d = (pa - pb).dropna() * 100.0
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    t = mean / se if se and se > 0 else (math.inf if mean > 0 else -math.inf if mean < 0 else 0.0)
    return {"mean": mean, "se": se, "t": t, "n": n}


def _verdict(p: dict) -> str:
    if p["mean"] > 0 and p["t"] >= 2:
        return "holds"
    return "not significant" if p["mean"] > 0 else "does not hold"


def _mean_acc(seeds, name: str) -> str:
    v = seeds[seeds["network"] == name]["accuracy"] * 100.0
    return f"{v.mean():.2f}% (min {v.min():.2f}, max {v.max():.2f})"


def _row(rows: list[dict], label: str) -> Optional[dict]:
    return next((r for r in rows if r["network"] == label), None)


def _energy(rows: list[dict], label: str) -> float:
    r = _row(rows, label)
    return float(r["energy_nj_per_inference"]) if r and r.get("energy_nj_per_inference") else math.nan


def abc_claim(networks: list[dict], seeds) -> dict:
    """ABC-Net narrows the gap to full precision at M = N = 3. Verdict: the paired
    difference ``abc - bnn`` over seeds (rule in the module docstring)."""
    acc = {r["network"]: r["accuracy_pct"] for r in networks}
    p = paired(seeds, "abc", "bnn")
    gap = paired(seeds, "float", "abc")
    e_abc, e_bnn = _energy(networks, "abc"), _energy(networks, "bnn")
    e_int8 = _energy(networks, "int8 scheme=fixedpoint")
    return {
        "paper": "ABC-Net (Lin, Zhao, Pan, NeurIPS 2017)",
        "claim": "M = N = 3 binary bases narrow the accuracy gap to full precision, at M*N "
                 "times the binary cost",
        "measured": (
            f"committed networks: abc {acc.get('abc', math.nan):.2f}%, bnn "
            f"{acc.get('bnn', math.nan):.2f}%, float32 {acc.get('float', math.nan):.2f}%; over "
            f"{p['n']} seeds: abc {_mean_acc(seeds, 'abc')}, bnn {_mean_acc(seeds, 'bnn')}, "
            f"float32 {_mean_acc(seeds, 'float')}; abc - bnn = {p['mean']:+.2f} +- "
            f"{p['se']:.2f} points (t = {p['t']:.1f}), remaining gap float32 - abc = "
            f"{gap['mean']:.2f} points; energy per inference abc {e_abc:.3g} nJ = "
            f"{e_abc / e_bnn:.3g}x bnn ({e_bnn:.3g} nJ), {e_abc / e_int8:.3g}x int8 fixedpoint "
            f"({e_int8:.3g} nJ)"),
        "verdict": _verdict(p),
    }


def binaryduo_claim(networks: list[dict], seeds, equal_ops: bool) -> dict:
    """BinaryDuo beats the BNN at equal binary compute. ``equal_ops``: the decoupled
    network performs exactly the bnn's unit operations (checked by the caller from the
    operation counts). Verdict: the paired difference ``binaryduo - bnn`` over seeds."""
    acc = {r["network"]: r["accuracy_pct"] for r in networks}
    p = paired(seeds, "binaryduo", "bnn")
    e_t = _energy(networks, "binaryduo mode=ternary")
    e_d = _energy(networks, "binaryduo mode=decoupled")
    e_b = _energy(networks, "bnn")
    verdict = _verdict(p) if equal_ops else "does not hold (compute not equal)"
    return {
        "paper": "BinaryDuo (Kim, Kim, Kim, ICLR 2020)",
        "claim": "ternary activations in training, decoupled into two binary ones at "
                 "inference, beat the BNN at the same binary compute",
        "measured": (
            f"decoupled network = the bnn's operations ({'equal' if equal_ops else 'NOT equal'}: "
            f"256-256-256-10 xnor_popcount); committed networks: binaryduo "
            f"{acc.get('binaryduo mode=ternary', math.nan):.2f}% (ternary and decoupled "
            f"identical), bnn {acc.get('bnn', math.nan):.2f}%; over {p['n']} seeds: binaryduo "
            f"{_mean_acc(seeds, 'binaryduo')}, bnn {_mean_acc(seeds, 'bnn')}, binaryduo - bnn "
            f"= {p['mean']:+.2f} +- {p['se']:.2f} points (t = {p['t']:.1f}); energy per "
            f"inference decoupled {e_d:.3g} nJ ({e_d / e_b:.3g}x bnn {e_b:.3g} nJ), ternary on "
            f"ternary_dot {e_t:.3g} nJ ({e_t / e_b:.3g}x bnn)"),
        "verdict": verdict,
    }


def _working_scales(acc, fmt: str, norm: str, good: float) -> set:
    """Scales (``log2_std``) where ``norm`` in ``fmt`` has a relative RMS error of ``y``
    below ``good`` (input rounding included) and no overflow."""
    h = acc[(acc["fmt"] == fmt) & (acc["norm"] == norm)]
    return set(h[(h["y_rel_rms_e2e"] < good) & (h["overflow"] == 0)]["log2_std"].astype(int))


def _span(scales: set) -> str:
    return f"std 2^{min(scales)}..2^{max(scales)}" if scales else "no scale"


def norm_claim(costs: list[dict], acc, good: float = 1e-2) -> dict:
    """L1 / L-inf normalization is cheaper than L2 in area and energy per element, and more
    accurate (numerically stable) in half precision.

    ``costs``: rows of the normalization table (``fmt``, ``norm``, ``area_um2``,
    ``pj_per_element``); ``acc``: :func:`qrtl.reports.norm_accuracy.norm_accuracy`'s table.
    Rule: part 1 (cost) holds when L1 and L-inf each have a smaller area and a smaller
    energy per element than L2 in every costed format; part 2 (fp16 accuracy) holds when
    L1 and L-inf each work (relative RMS error of ``y`` below ``good``, no overflow) on every
    input scale where L2 works and on at least one more. Both: ``holds``; one: ``partly``;
    none: ``does not hold``. The mean errors where all three work are quoted beside.
    """
    by = {(r["fmt"], r["norm"]): r for r in costs}
    fmts = list(dict.fromkeys(r["fmt"] for r in costs))
    cheaper = all(by[(f, n)]["area_um2"] < by[(f, "l2")]["area_um2"]
                  and by[(f, n)]["pj_per_element"] < by[(f, "l2")]["pj_per_element"]
                  for f in fmts for n in ("l1", "linf"))
    cost_text = "; ".join(
        f"{f}: " + ", ".join(f"{n} {by[(f, n)]['area_um2'] / by[(f, 'l2')]['area_um2']:.2f}x "
                             f"the area and {by[(f, n)]['pj_per_element'] / by[(f, 'l2')]['pj_per_element']:.2f}x "
                             f"the energy per element of l2" for n in ("l1", "linf"))
        for f in fmts)
    ok = {n: _working_scales(acc, "fp16", n, good) for n in ("l2", "l1", "linf")}
    stable = all(ok[n] > ok["l2"] for n in ("l1", "linf"))    # a strict superset
    common = ok["l2"] & ok["l1"] & ok["linf"]
    h = acc[(acc["fmt"] == "fp16") & acc["log2_std"].isin(common)]
    mean = h.groupby("norm")["y_rel_rms_e2e"].mean() if len(h) else {}
    over = {n: sorted(set(acc[(acc["fmt"] == "fp16") & (acc["norm"] == n) & (acc["overflow"] > 0)]
                          ["log2_std"].astype(int))) for n in ("l2", "l1", "linf")}
    m = int(acc["m"].iloc[0])
    verdict = "holds" if cheaper and stable else "partly" if cheaper or stable else "does not hold"
    return {
        "paper": "Norm matters (Hoffer, Banner, Golan, Soudry, NeurIPS 2018)",
        "claim": "L1 and L-infinity batch normalization are cheaper than L2 in hardware and "
                 "numerically stable in half precision, where L2's sum of squares overflows",
        "measured": (
            f"bn_norm m={costs[0]['m']} on the gaussian stream: {cost_text}; fp16 over "
            f"channels of m={m} values N(s, s^2): error of y below {good:g} for "
            + ", ".join(f"{n} {_span(ok[n])}" for n in ("l2", "l1", "linf"))
            + "; first overflow at "
            + ", ".join(f"{n} std 2^{over[n][0]}" if over[n] else f"{n} none" for n in ("l2", "l1", "linf"))
            + ("; where all three work, mean relative RMS error of y "
               + ", ".join(f"{n} {mean[n]:.2e}" for n in ("l2", "l1", "linf")) if len(h) else "")),
        "verdict": verdict,
    }


def fp8_train_claim(summary_rows: list[dict], fp32_seeds: list[float], hyper: dict) -> dict:
    """FP8 training (chunk-based accumulation, stochastic rounding) matches float32, while
    unchunked 16-bit accumulation does not.

    ``summary_rows``: :func:`qrtl.reports.fp8_train.summary` rows (``config``,
    ``final_accuracy`` as a fraction); ``fp32_seeds``: final accuracies of the ``fp32``
    configuration retrained with other seeds (the training noise). Rule: a configuration
    *matches* float32 when its final accuracy is within two standard deviations of the
    ``fp32`` seeds of the seed-0 ``fp32`` run; part 1 holds when the paper's recipe
    (``fp8-chunk64-sr``) matches, part 2 when the unchunked round-to-nearest configuration
    (``fp8-nochunk-rne``) does not. Both: ``holds``; one: ``partly``; none: ``does not
    hold``.
    """
    acc = {r["config"]: 100.0 * r["final_accuracy"] for r in summary_rows}
    n = len(fp32_seeds)
    mean = sum(fp32_seeds) / n * 100.0
    sd = math.sqrt(sum((100.0 * a - mean) ** 2 for a in fp32_seeds) / (n - 1)) if n > 1 else math.nan
    ref = acc["fp32"]
    within = {c: abs(a - ref) <= 2 * sd for c, a in acc.items()}
    part1 = within.get("fp8-chunk64-sr", False)
    part2 = not within.get("fp8-nochunk-rne", True)
    verdict = "holds" if part1 and part2 else "partly" if part1 or part2 else "does not hold"
    others = ", ".join(f"{c} {a:.2f}%" for c, a in acc.items() if c != "fp32")
    return {
        "paper": "FP8 training (Wang, Choi, Brand, Chen, Gopalakrishnan, NeurIPS 2018)",
        "claim": "every GEMM with (1,5,2) operands and chunk-based 16-bit accumulation, weight "
                 "updates in 16 bits with stochastic rounding, matches float32 accuracy; "
                 "unchunked accumulation does not",
        "measured": (
            f"digits MLP, {hyper['epochs']} epochs, batch {hyper['batch']}, "
            f"{hyper['acc']} accumulation: final test accuracy fp32 {ref:.2f}% (over {n} seeds "
            f"{mean:.2f} +- {sd:.2f}%), {others}; the recipe "
            f"{'matches' if part1 else 'does not match'} float32 and unchunked RNE "
            f"{'matches it too' if not part2 else 'does not'} (within 2 sd of the seed spread); "
            f"the longest dot product has {max(129, int(hyper['batch']))} products (the MLP's "
            f"widest layer plus its bias, or the batch in the weight gradient), so chunks of 64 "
            f"split few of them"),
        "verdict": verdict,
    }


#: (FP format, INT format of the same element width and scaling) pairs of the MX table.
FP_INT_PAIRS = [
    ("FP8 E4M3", "INT8"), ("FP8 E5M2", "INT8"), ("FP8 E4M3 (fp16 acc)", "INT8"),
    ("FP8 E5M2 (fp16 acc)", "INT8"), ("FP4 E2M1", "INT4"), ("FP4 E2M1 (fp16 acc)", "INT4"),
    ("MXFP8 E4M3", "MXINT8"), ("MXFP8 E5M2", "MXINT8"),
]
#: "50-180% less efficient": an FP MAC costs 1.5x to 2.8x the INT MAC.
FP_INT_RANGE = (1.5, 2.8)


def fp_int_claim(rows: list[dict]) -> dict:
    """FP formats are 50-180% less efficient in compute than INT in dedicated hardware.

    ``rows``: the MX table (``format``, ``pj_per_mac``, ``area_um2_per_mac``; every format on
    the same N(0, 1) data at one clock). Rule: for each pair of :data:`FP_INT_PAIRS` that
    was costed, the energy per MAC of the FP format over the INT one's is the factor; the
    claim holds for the pair when the factor lies in :data:`FP_INT_RANGE` (1.5 to 2.8).
    Verdict: ``holds`` when it holds for every pair, ``partly`` for some, ``does not hold``
    for none. The area factors are quoted beside.
    """
    by = {r["format"]: r for r in rows if r.get("pj_per_mac")}
    lo, hi = FP_INT_RANGE
    parts, held = [], []
    for fp, it in FP_INT_PAIRS:
        if fp not in by or it not in by:
            continue
        e = by[fp]["pj_per_mac"] / by[it]["pj_per_mac"]
        a = by[fp]["area_um2_per_mac"] / by[it]["area_um2_per_mac"]
        ok = lo <= e <= hi
        held.append(ok)
        parts.append(f"{fp} vs {it}: {e:.2f}x the energy, {a:.2f}x the area per MAC "
                     f"({'within' if ok else 'below' if e < lo else 'above'} the range)")
    if not held:
        verdict, text = "not measured", "no FP/INT pair of the MX table was costed"
    else:
        verdict = "holds" if all(held) else "partly" if any(held) else "does not hold"
        clock = rows[0].get("clock_ns")
        text = (f"MAC datapaths (accumulator register excluded) at {clock:g} ns on N(0, 1) "
                f"operands in each format: " + "; ".join(parts))
    return {
        "paper": "FP8 versus INT8 for efficient deep learning inference (van Baalen et al., 2023)",
        "claim": "FP formats are somewhere between 50-180% less efficient in terms of compute in "
                 "dedicated hardware than the INT format (an FP MAC costs 1.5x to 2.8x the INT "
                 "MAC of the same width)",
        "measured": text,
        "verdict": verdict,
    }
