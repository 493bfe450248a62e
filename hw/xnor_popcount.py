"""XNOR-popcount binary dot product (BNN / XNOR-Net / FINN hidden layers)."""

from __future__ import annotations

import operator

from amaranth import Cat, Const, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qrtl.golden.xnor import dot_width

from .errors import reject

__all__ = ["XnorPopcount", "dot_width", "compress_columns", "popcount_tree"]


def compress_columns(m: Module, bits, on_level=None, prefix: str = "", columns=None):
    """Reduce a list of 1-bit values to two binary rows with a Wallace tree.

    Column ``w`` holds bits of weight ``2**w``; ``bits`` all have weight 1, or ``columns``
    (a list of lists of bits, column ``w`` of weight ``2**w``) replaces them. Every level replaces each triple in a
    column by a full adder (sum stays, carry moves to column ``w+1``) and a leftover pair
    by a half adder, so the number of rows shrinks by ~3/2 per level: depth is
    O(log_{1.5} n) full adders instead of the n-1 adders of a ripple chain.
    ``on_level(columns)`` may replace the columns (used to insert pipeline registers).
    ``prefix`` starts the names of the adder signals (several trees in one module).
    Returns ``(row0, row1)``, two lists of bits (weights 2**i) to be added.
    """
    columns = [list(bits)] if columns is None else [list(c) for c in columns] or [[]]
    k = 0
    while max(len(c) for c in columns) > 2:
        new = [[] for _ in range(len(columns) + 1)]
        for w, col in enumerate(columns):
            i = 0
            while len(col) - i >= 3:
                a, b, c = col[i:i + 3]
                s, cy = Signal(name=f"{prefix}fa{k}_s"), Signal(name=f"{prefix}fa{k}_c")
                m.d.comb += [s.eq(a ^ b ^ c), cy.eq((a & b) | (a & c) | (b & c))]
                new[w].append(s)
                new[w + 1].append(cy)
                i += 3
                k += 1
            rest = col[i:]
            if len(rest) == 2 and len(col) > 2:
                a, b = rest
                s, cy = Signal(name=f"{prefix}ha{k}_s"), Signal(name=f"{prefix}ha{k}_c")
                m.d.comb += [s.eq(a ^ b), cy.eq(a & b)]
                new[w].append(s)
                new[w + 1].append(cy)
                k += 1
            else:
                new[w].extend(rest)
        while new and not new[-1]:
            new.pop()
        columns = new
        if on_level is not None:
            columns = on_level(columns)
    row0 = [c[0] if len(c) > 0 else Const(0, 1) for c in columns]
    row1 = [c[1] if len(c) > 1 else Const(0, 1) for c in columns]
    return row0, row1


def popcount_tree(m: Module, bits, on_level=None, *, prefix: str = "", out=None):
    """``popcount(bits)``: the Wallace tree of :func:`compress_columns` and one final adder.

    The population count of :class:`XnorPopcount`, as a building block for other units
    (``abc_dot``, ``ternary_dot``). Drives ``out`` (an unsigned signal of at least
    ``len(bits).bit_length()`` bits), or a new signal ``{prefix}pc``; returns it.
    ``on_level`` and ``prefix`` are passed to :func:`compress_columns`.
    """
    bits = list(bits)
    if out is None:
        out = Signal(range(len(bits) + 1), name=f"{prefix}pc")
    row0, row1 = compress_columns(m, bits, on_level, prefix)
    m.d.comb += out.eq(Cat(*row0) + Cat(*row1))
    return out


def _levels(n: int) -> int:
    """Number of Wallace levels :func:`compress_columns` uses for ``n`` input bits."""
    columns = [n]
    levels = 0
    while max(columns) > 2:
        new = [0] * (len(columns) + 1)
        for w, h in enumerate(columns):
            t, r = divmod(h, 3)
            new[w] += t
            new[w + 1] += t
            if r == 2 and h > 2:
                new[w] += 1
                new[w + 1] += 1
            else:
                new[w] += r
        while new and not new[-1]:
            new.pop()
        columns = new
        levels += 1
    return levels


class XnorPopcount(wiring.Component):
    """Binary dot product ``dot = 2 * popcount(~(a ^ w)) - n``.

    Bit 1 of ``a``/``w`` encodes +1 and bit 0 encodes -1, so ``dot`` equals the {-1,+1}
    dot product ``sum_i a_i * w_i``.

    Parameters
    ----------
    n : int
        Vector length, 1..4096.
    pipeline : int
        Register stages (0 = combinational). The last stage registers the outputs; the
        others are spread evenly between the levels of the compressor tree.
    threshold : bool
        Also compute the BNN activation ``y = dot >= thr`` (batch-norm folded into ``thr``).
    popcount : str
        ``"tree"`` (Wallace compressor tree and one final adder) or ``"naive"`` (a chain
        of n-1 incrementing adders, the baseline the tree is compared against).

    Members
    -------
    a : In(n)
        Activation bits.
    w : In(n)
        Weight bits.
    thr : In(signed(dot_width(n))), only if ``threshold``
        Threshold.
    dot : Out(signed(dot_width(n)))
        The dot product, ``latency`` cycles after its inputs.
    y : Out(1), only if ``threshold``
        ``dot >= thr``.
    """

    def __init__(self, n: int = 64, pipeline: int = 0, threshold: bool = False,
                 popcount: str = "tree"):
        n, pipeline = operator.index(n), operator.index(pipeline)
        if not 1 <= n <= 4096:
            reject(self, f"n={n} is out of range (allowed 1..4096)")
        if pipeline < 0:
            reject(self, f"pipeline={pipeline} is negative")
        if popcount not in ("tree", "naive"):
            reject(self, f"popcount={popcount!r} (allowed: tree, naive)")
        self.n, self.pipeline, self.threshold, self.popcount = n, pipeline, bool(threshold), popcount
        dw = dot_width(n)
        members = {"a": In(n), "w": In(n), "dot": Out(signed(dw))}
        if self.threshold:
            members["thr"] = In(signed(dw))
            members["y"] = Out(1)
        super().__init__(members)

    @property
    def latency(self) -> int:
        """Clock cycles from inputs to outputs (= ``pipeline``)."""
        return self.pipeline

    def elaborate(self, platform):
        m = Module()
        n, dw = self.n, dot_width(self.n)
        xn = Signal(n)
        m.d.comb += xn.eq(~(self.a ^ self.w))
        bits = [xn[i] for i in range(n)]
        thr = self.thr if self.threshold else None

        # Registers between tree levels: stages 1..pipeline-1 are spread over the levels.
        levels = _levels(n) if self.popcount == "tree" else 0
        inner = self.pipeline - 1 if self.pipeline > 0 else 0
        cut_after = {round(k * levels / (inner + 1)) for k in range(1, inner + 1)} if levels else set()
        cut_after.discard(0)
        pending_extra = inner - len(cut_after)  # stages that find no free level go to the end
        state = {"level": 0, "thr": thr}

        def on_level(columns):
            state["level"] += 1
            if state["level"] not in cut_after:
                return columns
            regd = []
            for w, col in enumerate(columns):
                out = []
                for j, b in enumerate(col):
                    r = Signal(name=f"p{state['level']}_c{w}_{j}")
                    m.d.sync += r.eq(b)
                    out.append(r)
                regd.append(out)
            if state["thr"] is not None:
                r = Signal(signed(dw), name=f"p{state['level']}_thr")
                m.d.sync += r.eq(state["thr"])
                state["thr"] = r
            return regd

        pc = Signal(range(n + 1))
        if self.popcount == "tree":
            popcount_tree(m, bits, on_level, out=pc)
        else:
            acc = Const(0, 1)
            for i, b in enumerate(bits):
                s = Signal(range(i + 2), name=f"chain{i}")
                m.d.comb += s.eq(acc + b)
                acc = s
            m.d.comb += pc.eq(acc)

        dot = Signal(signed(dw))
        m.d.comb += dot.eq((pc << 1) - n)
        outs = [(self.dot, dot)]
        if self.threshold:
            y = Signal()
            m.d.comb += y.eq(dot >= state["thr"])
            outs.append((self.y, y))

        # Output stage(s): the final register plus any stages that found no tree level.
        out_stages = (1 + pending_extra) if self.pipeline > 0 else 0
        for s in range(out_stages):
            nxt = []
            for port, val in outs:
                r = Signal.like(port, name=f"o{s}_{port.name}")
                m.d.sync += r.eq(val)
                nxt.append((port, r))
            outs = nxt
        for port, val in outs:
            m.d.comb += port.eq(val)
        return m
