"""FP8 training emulation (Wang et al. 2018) of the digits MLP 64-128-64-10, every GEMM on
the bit-exact ``fp8_dot`` golden model.

The recipe of "Training Deep Neural Networks with 8-bit Floating Point Numbers" (Wang,
Choi, Brand, Chen, Gopalakrishnan, NeurIPS 2018), on our units:

* **Every GEMM of training** - forward ``z = [1, h] W^T`` (the bias is the first column of
  ``W``, its activation ``1.0``, as in :func:`golden.nets.mlp.fp8_forward`), backward
  ``dh = dz W`` (bias column left out) and weight gradient ``dW = dz^T [1, h]`` (``K`` =
  the batch) - is :func:`gemm`: both operands rounded to FP8 ``(1,5,2)`` = ``e5m2`` (RNE,
  saturating), each output element one :func:`golden.fp8.fp8_dot` with the products
  accumulated in the 16-bit format ``acc`` (the paper's ``(1,6,9)`` = ``e6m9`` by default, or
  IEEE ``fp16``), one rounding (RNE) per addition, ``chunk`` products per chunk, and the
  chunk sums added (RNE) into an outer sum **in the same 16-bit format** (``outer = acc``:
  the paper keeps both levels 16-bit; the ``fp8_dot`` unit's own default outer is fp32).
  ``chunk=None`` means one chunk as long as the dot product: plain 16-bit accumulation
  (the paper's "chunk size 1", i.e. no chunking).
* **Weight update** in the 16-bit format: SGD with momentum (as the paper), master weights
  ``w`` and velocity ``v`` stored as 16-bit codes, ``v <- round(mu v + g)``,
  ``w <- round(w - lr v)``, each computed in float64 from the decoded codes and rounded
  once by :func:`golden.fp8.encode` (the ``round_pack`` code of the units) with
  ``rounding`` = ``stochastic`` (``rbits`` = 16 bits from a seeded stream, its own generator
  so the data order is the same in every configuration) or ``rne``.
* **Loss scaling** (as the paper): the output error is ``(softmax - onehot) S / B`` with
  ``S = loss_scale`` (2^10 by default), so that the errors entering the backward and
  weight-gradient GEMMs lie in ``e5m2``'s normal range (its smallest normal is 2^-14,
  where an unscaled ``1/B`` error mostly underflows); the weight gradient is divided by ``S``
  (exactly, a power of two) before the update.
* Softmax, cross-entropy, ReLU and its mask are float64 on the decoded 16-bit GEMM outputs
  (the paper keeps these in higher precision too).

``fp32`` is the same network, initialization, data order and optimizer in plain float32
NumPy (single-threaded BLAS), without loss scaling. Test accuracy after each epoch is
measured with the configuration's own forward pass (FP8 GEMMs for the FP8 configurations).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

from qrtl.golden.errors import QrtlError
from qrtl.golden.params import check_float, check_int

from .program import Trace, run_map

__all__ = ["TrainConfig", "CONFIGS", "DEFAULT_CONFIGS", "ACCS", "SIZES", "Hyper", "gemm",
           "dot_params", "update_round", "EpochStats", "TrainRun", "train", "step_trace", "NOCHUNK"]

#: Layer sizes of the MLP (input, hidden, hidden, classes).
SIZES = (64, 128, 64, 10)
#: 16-bit formats of accumulation, master weights and velocity.
ACCS = ("e6m9", "fp16")
#: ``chunk`` given to the ``fp8_dot`` unit for "no chunking" (its largest value; every dot
#: product of the study is shorter, so the only flush is the final one, which is exact).
NOCHUNK = 65536
FMT = "e5m2"


@dataclass(frozen=True)
class TrainConfig:
    """One training configuration.

    Attributes
    ----------
    name : str
    fp8 : bool
        GEMMs on the FP8 golden model (False: float32 NumPy).
    chunk : int or None
        Products per 16-bit chunk (None: no chunking).
    update : str
        Rounding of the 16-bit weight update: ``stochastic`` or ``rne``.
    """

    name: str
    fp8: bool
    chunk: Optional[int] = None
    update: str = "rne"


CONFIGS: dict[str, TrainConfig] = {c.name: c for c in (
    TrainConfig("fp32", False),
    TrainConfig("fp8-chunk64-sr", True, 64, "stochastic"),   # the paper's recipe
    TrainConfig("fp8-nochunk-rne", True, None, "rne"),       # plain 16-bit accumulation + RNE
    TrainConfig("fp8-chunk64-rne", True, 64, "rne"),         # ablation: chunking only
    TrainConfig("fp8-nochunk-sr", True, None, "stochastic"),  # ablation: SR only
)}
DEFAULT_CONFIGS = tuple(CONFIGS)


@dataclass(frozen=True)
class Hyper:
    """Hyper-parameters shared by every configuration of a study.

    Attributes
    ----------
    epochs, batch : int
        Passes over the training images, images per SGD step (``K`` of the weight-gradient
        GEMM).
    lr, momentum : float
        SGD with momentum, constant learning rate.
    loss_scale : float
        ``S`` (a power of two), FP8 configurations only.
    acc : str
        16-bit format (:data:`ACCS`) of accumulation, weights and velocity.
    train_images : int or None
        The first N images of the train split (None: all 1,347).
    seed : int
        Initialization, data order and the stochastic-rounding stream.
    rbits : int
        Random bits per stochastic rounding.
    """

    epochs: int = 6
    batch: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    loss_scale: float = 1024.0
    acc: str = "e6m9"
    train_images: Optional[int] = None
    seed: int = 0
    rbits: int = 16

    def checked(self) -> "Hyper":
        """The same values, validated (one-line :class:`QrtlError` naming the bad one)."""
        from .data import load_split
        ntrain = len(load_split().y_train)
        check_int("epochs", self.epochs, 1, 1000)
        check_int("batch", self.batch, 1, ntrain)
        check_float("lr", self.lr, 0.0, 10.0)
        if not 0.0 <= float(self.momentum) < 1.0:
            raise QrtlError(f"momentum={self.momentum!r} is out of range (allowed 0 <= m < 1)")
        s = check_float("loss_scale", self.loss_scale, 0.0, 2.0 ** 24)
        if np.frexp(s)[0] != 0.5:
            raise QrtlError(f"loss_scale={self.loss_scale!r} must be a power of two")
        if self.acc not in ACCS:
            raise QrtlError(f"acc={self.acc!r} is not valid (allowed: {', '.join(ACCS)})")
        if self.train_images is not None:
            check_int("train_images", self.train_images, 1, ntrain)
        check_int("seed", self.seed, 0, 2**63 - 1)
        check_int("rbits", self.rbits, 1, 32)
        return self


def dot_params(config: TrainConfig, acc: str) -> dict:
    """Parameters of the ``fp8_dot`` unit that computes every GEMM element of ``config``."""
    return {"fmt": FMT, "acc": acc, "chunk": config.chunk or NOCHUNK, "outer": acc,
            "lanes": 1, "rounding": "rne"}


def _dot_op_golden(res: np.ndarray, k: int):
    """Golden outputs of an ``fp8_dot`` stream of ``len(res)`` dot products of ``k``
    products each, one product per cycle (the result register shows the latest result)."""
    def golden(_x):
        prev = np.concatenate([[np.uint64(0)], res[:-1]]).astype(np.uint64)
        r = np.repeat(prev, k)
        r[k - 1::k] = res
        v = np.zeros(k, np.uint64)
        v[-1] = 1
        return {"result": r, "result_valid": np.tile(v, len(res))}
    return golden


@dataclass
class _Recorder:
    """Where :func:`gemm` records a sample of its dot products as ``fp8_dot`` operations."""

    trace: Trace
    sample: int


def gemm(a: np.ndarray, b: np.ndarray, params: dict, *, layer: str = "gemm",
         record: Optional[_Recorder] = None, block: int = 1 << 16) -> np.ndarray:
    """``C[i, j] = sum_k A[i, k] B[j, k]`` with every element one :func:`golden.fp8.fp8_dot`.

    ``a`` (M, K) and ``b`` (N, K): FP8 codes of ``params["fmt"]``; ``params``: the
    ``fp8_dot`` unit's parameters (:func:`dot_params`). Products are added in ``k`` order.
    Returns (M, N) codes of ``params["outer"]``. Rows are processed ``block`` dot products
    at a time (bounded memory). With ``record``, ``record.sample`` dot products (evenly
    spaced over the flattened output) are appended to ``record.trace`` as one ``fp8_dot``
    operation stream (one product per cycle, ``last`` on each final product).
    """
    from qrtl.golden.fp8 import fp8_dot
    a, b = np.asarray(a, np.uint64), np.asarray(b, np.uint64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise QrtlError(f"gemm: operand shapes {a.shape} and {b.shape} do not share K")
    m, k = a.shape
    n = b.shape[0]
    if k > params["chunk"] and params["chunk"] == NOCHUNK:
        raise QrtlError(f"gemm: K={k} is longer than the unchunked dot product ({NOCHUNK})")
    kw = {key: params[key] for key in ("fmt", "acc", "chunk", "outer", "lanes", "rounding")}
    out = np.empty(m * n, np.uint64)
    rows_per = max(1, block // max(n, 1))
    for lo in range(0, m, rows_per):
        hi = min(m, lo + rows_per)
        aa = np.broadcast_to(a[lo:hi, None, :], (hi - lo, n, k)).reshape(-1, k)
        bb = np.broadcast_to(b[None, :, :], (hi - lo, n, k)).reshape(-1, k)
        out[lo * n:hi * n] = fp8_dot(aa, bb, **kw)
    if record is not None and record.sample > 0:
        idx = np.unique(np.linspace(0, m * n - 1, min(record.sample, m * n)).astype(np.int64))
        sa, sb = a[idx // n], b[idx % n]
        last = np.zeros((len(idx), k), np.uint64)
        last[:, -1] = 1
        inputs = {"valid": np.ones(len(idx) * k, np.uint64), "last": last.reshape(-1),
                  "a": sa.reshape(-1), "b": sb.reshape(-1)}
        run_map(record.trace, None, layer, "fp8_dot", params, inputs,
                _dot_op_golden(out[idx], k), 1)
    return out.reshape(m, n)


# --- the network, both arithmetics ------------------------------------------------------

def _init(seed: int) -> list:
    """He-normal weights, zero biases, as (out, in + 1) float64 arrays (bias column first)."""
    rng = np.random.default_rng([seed, 0])
    out = []
    for i, o in zip(SIZES[:-1], SIZES[1:]):
        w = rng.normal(0.0, np.sqrt(2.0 / i), (o, i))
        out.append(np.concatenate([np.zeros((o, 1)), w], axis=1))
    return out


def _with_one(h: np.ndarray) -> np.ndarray:
    return np.concatenate([np.ones((len(h), 1), h.dtype), h], axis=1)


class _Float32Net:
    """The float32 reference: weights (out, in + 1) float32, velocity float32."""

    def __init__(self, hp: Hyper):
        self.hp = hp
        self.w = [w.astype(np.float32) for w in _init(hp.seed)]
        self.v = [np.zeros_like(w) for w in self.w]

    def forward(self, x):
        hs, h = [], x.astype(np.float32)
        for i, w in enumerate(self.w):
            ha = _with_one(h)
            hs.append(ha)
            z = ha @ w.T
            h = np.maximum(z, np.float32(0)) if i < len(self.w) - 1 else z
        return hs, h

    def step(self, x, y):
        hs, logits = self.forward(x)
        p, loss = _softmax_xent(logits.astype(np.float64), y)
        d = ((p - np.eye(10)[y]) / len(y)).astype(np.float32)
        mu, lr = np.float32(self.hp.momentum), np.float32(self.hp.lr)
        for i in reversed(range(len(self.w))):
            g = d.T @ hs[i]
            if i:
                d = (d @ self.w[i][:, 1:]) * (hs[i][:, 1:] > 0)
            self.v[i] = mu * self.v[i] + g
            self.w[i] = self.w[i] - lr * self.v[i]
        return loss

    def predict(self, x):
        return np.argmax(self.forward(x)[1], axis=1)


class _Fp8Net:
    """The FP8 recipe (module docstring): master weights and velocity as 16-bit codes."""

    def __init__(self, hp: Hyper, config: TrainConfig):
        from qrtl.golden.fp8 import encode
        self.hp, self.cfg = hp, config
        self.p = dot_params(config, hp.acc)
        self.w = [encode(w, hp.acc) for w in _init(hp.seed)]
        self.v = [np.zeros_like(w) for w in self.w]
        self.rng = np.random.default_rng([hp.seed, 2])   # the stochastic-rounding stream
        self.err = {}
        self.lost = [0, 0]   # nonzero weight updates that left the weight's code unchanged, all

    def _gemm(self, a, b, layer, record):
        """:func:`gemm`, decoded, plus its error against the exact sum of the same FP8
        products (float64: products are exact, the sum's own error is ~K 2^-53) summed
        per GEMM kind (``fwd``, ``bwd``, ``wgrad``) for :meth:`epoch_stats`."""
        from qrtl.golden.fp8 import decode
        r = decode(gemm(a, b, self.p, layer=layer, record=record), self.hp.acc)
        exact = decode(a, FMT) @ decode(b, FMT).T
        kind = layer.rstrip("0123456789")
        num, den = self.err.get(kind, (0.0, 0.0))
        self.err[kind] = (num + float(np.sum((r - exact) ** 2)), den + float(np.sum(exact ** 2)))
        return r

    def epoch_stats(self, reset: bool = True) -> dict:
        """``{kind: sqrt(sum (C - C_exact)^2 / sum C_exact^2)}`` over the GEMMs since the
        last reset, and ``lost``: the share of nonzero weight updates since then that left
        the weight's code unchanged."""
        out = {k: float(np.sqrt(n / d)) if d > 0 else float("nan")
               for k, (n, d) in self.err.items()}
        if self.lost[1]:
            out["lost"] = self.lost[0] / self.lost[1]
        if reset:
            self.err, self.lost = {}, [0, 0]
        return out

    def forward(self, x, record=None):
        from qrtl.golden.fp8 import decode, encode
        hs, h = [], encode(np.asarray(x, np.float64), FMT, saturate=True)
        one = encode(np.array([1.0]), FMT)[0]
        zs = []
        for i, w in enumerate(self.w):
            ha = np.concatenate([np.full((len(h), 1), one, np.uint64), h], axis=1)
            hs.append(ha)
            wq = encode(decode(w, self.hp.acc), FMT, saturate=True)
            z = self._gemm(ha, wq, f"fwd{i + 1}", record)
            zs.append(z)
            if i < len(self.w) - 1:
                h = encode(np.maximum(z, 0.0), FMT, saturate=True)
        return hs, zs

    def _round(self, values):
        return update_round(values, self.hp.acc, self.cfg.update, self.rng, self.hp.rbits)

    def step(self, x, y, record=None):
        from qrtl.golden.fp8 import decode, encode
        acc, s = self.hp.acc, float(self.hp.loss_scale)
        hs, zs = self.forward(x, record)
        p, loss = _softmax_xent(zs[-1], y)
        d = encode((p - np.eye(10)[y]) * (s / len(y)), FMT, saturate=True)
        grads = [None] * len(self.w)
        for i in reversed(range(len(self.w))):
            # weight gradient: K = batch
            grads[i] = self._gemm(d.T, hs[i].T, f"wgrad{i + 1}", record) / s
            if i:
                wq = encode(decode(self.w[i][:, 1:], acc), FMT, saturate=True)
                dh = self._gemm(d, np.ascontiguousarray(wq.T), f"bwd{i + 1}", record)
                d = encode(dh * (zs[i - 1] > 0), FMT, saturate=True)
        mu, lr = self.hp.momentum, self.hp.lr
        for i, g in enumerate(grads):
            if not np.all(np.isfinite(g)):
                raise QrtlError(f"{self.cfg.name}: the weight gradient of layer {i + 1} "
                                f"overflowed {acc} (lower loss_scale)")
            self.v[i] = self._round(mu * decode(self.v[i], acc) + g)
            step = lr * decode(self.v[i], acc)
            new = self._round(decode(self.w[i], acc) - step)
            moved = step != 0
            self.lost[0] += int(np.count_nonzero(moved & (new == self.w[i])))
            self.lost[1] += int(np.count_nonzero(moved))
            self.w[i] = new
        return loss

    def predict(self, x):
        return np.argmax(self.forward(x)[1][-1], axis=1)


def update_round(values, fmt: str, rounding: str, rng: np.random.Generator,
                 rbits: int = 16) -> np.ndarray:
    """Codes of ``fmt`` for float64 ``values``, rounded once as the weight update rounds.

    ``rounding="stochastic"``: :func:`golden.fp8.encode` with ``rbits`` uniform random bits
    per value drawn from ``rng`` (so ``E[decode(code)] = value`` up to ``2^-rbits`` of an
    ulp); ``"rne"``: round to nearest, ties to even (``rng`` unused).
    """
    from qrtl.golden.fp8 import encode
    if rounding == "stochastic":
        rnd = rng.integers(0, 1 << rbits, np.shape(values), dtype=np.int64)
        return encode(values, fmt, rounding="stochastic", rnd=rnd, rbits=rbits)
    if rounding != "rne":
        raise QrtlError(f"update rounding={rounding!r} is not valid (allowed: stochastic, rne)")
    return encode(values, fmt)


def _softmax_xent(logits: np.ndarray, y: np.ndarray):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    loss = float(np.mean(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-300))))
    return p, loss


# --- training -------------------------------------------------------------------------------

@dataclass
class EpochStats:
    """After epoch ``epoch`` (1-based): mean training loss over its steps, test accuracy,
    wall seconds of the epoch (training and evaluation), and the relative error of the
    epoch's training GEMMs of each kind (``fwd_err``, ``bwd_err``, ``wgrad_err``:
    ``sqrt(sum (C - C_exact)^2 / sum C_exact^2)`` against the exact sum of the same FP8
    products; NaN for ``fp32``) - the accumulation error alone, operand rounding excluded -
    and ``lost_updates``, the share of nonzero weight updates ``lr v`` after which the
    16-bit weight is unchanged (an update below half an ulp under RNE; under stochastic
    rounding the same update moves the weight by one ulp with probability
    ``|lr v| / ulp``)."""

    epoch: int
    train_loss: float
    test_accuracy: float
    seconds: float
    fwd_err: float = float("nan")
    bwd_err: float = float("nan")
    wgrad_err: float = float("nan")
    lost_updates: float = float("nan")


@dataclass
class TrainRun:
    """One configuration trained: its settings, per-epoch history, final test accuracy."""

    config: str
    hyper: dict
    epochs: list = field(default_factory=list)

    @property
    def final_accuracy(self) -> float:
        return self.epochs[-1].test_accuracy if self.epochs else float("nan")

    def as_dict(self) -> dict:
        return {"config": self.config, "hyper": self.hyper,
                "epochs": [asdict(e) for e in self.epochs],
                "final_accuracy": self.final_accuracy}


def _net(config: TrainConfig, hp: Hyper):
    return _Fp8Net(hp, config) if config.fp8 else _Float32Net(hp)


def _config(name) -> TrainConfig:
    if isinstance(name, TrainConfig):
        return name
    try:
        return CONFIGS[name]
    except KeyError:
        raise QrtlError(f"unknown training configuration {name!r} "
                        f"(allowed: {', '.join(CONFIGS)})") from None


def _data(hp: Hyper):
    from .data import load_split
    s = load_split()
    n = hp.train_images or len(s.y_train)
    return (s.x_train[:n] / 16.0, s.y_train[:n], s.x_test / 16.0, s.y_test)


def train(config, hyper: Hyper = Hyper(),
          progress: Optional[Callable[[str, int, int], None]] = None) -> TrainRun:
    """Train the MLP in configuration ``config`` (a :data:`CONFIGS` name) with ``hyper``.

    The data order (a permutation per epoch from ``seed``) and the initialization are the
    same for every configuration. ``progress(config, epoch, steps_done_in_epoch)`` is called
    after every SGD step. Returns a :class:`TrainRun` with test accuracy after every epoch.
    """
    from threadpoolctl import threadpool_limits
    cfg, hp = _config(config), hyper.checked()
    x, y, xt, yt = _data(hp)
    run = TrainRun(cfg.name, asdict(hp))
    order_rng = np.random.default_rng([hp.seed, 1])
    with threadpool_limits(1):
        net = _net(cfg, hp)
        for ep in range(1, hp.epochs + 1):
            t0 = time.perf_counter()
            order = order_rng.permutation(len(y))
            losses = []
            for j, lo in enumerate(range(0, len(y), hp.batch)):
                idx = order[lo:lo + hp.batch]
                losses.append(net.step(x[idx], y[idx]))
                if progress is not None:
                    progress(cfg.name, ep, j + 1)
            errors = net.epoch_stats() if cfg.fp8 else {}   # training GEMMs only
            pred = np.concatenate([net.predict(xt[lo:lo + 150]) for lo in range(0, len(yt), 150)])
            if cfg.fp8:
                net.epoch_stats()                            # the evaluation's: dropped
            run.epochs.append(EpochStats(ep, float(np.mean(losses)), float(np.mean(pred == yt)),
                                         time.perf_counter() - t0,
                                         **{("lost_updates" if k == "lost" else f"{k}_err"): v
                                            for k, v in errors.items()}))
    return run


def step_trace(config, hyper: Hyper = Hyper(), sample: int = 8) -> Trace:
    """The first SGD step of ``config`` (an FP8 configuration) with ``sample`` dot products
    of each of its GEMMs (forward ``fwd1..3``, backward ``bwd2..3``, weight gradient
    ``wgrad1..3``) recorded as ``fp8_dot`` operations, for replay on the RTL."""
    from threadpoolctl import threadpool_limits
    cfg, hp = _config(config), hyper.checked()
    if not cfg.fp8:
        raise QrtlError(f"configuration {cfg.name} has no FP8 GEMM to replay")
    check_int("sample", sample, 1, 1 << 16)
    x, y, _, _ = _data(hp)
    idx = np.random.default_rng([hp.seed, 1]).permutation(len(y))[:hp.batch]
    trace = Trace()
    with threadpool_limits(1):
        _Fp8Net(hp, cfg).step(x[idx], y[idx], record=_Recorder(trace, sample))
    return trace
