"""The streaming harness: a Verilog wrapper that feeds a unit one word per clock.

Python-side per-vector work, not the simulator, limits cocotb throughput. So the
harness does all per-vector I/O itself, in binary: each clock it takes one input word,
either the next word of an input file (file mode) or the next indexes of a counter over the
input space (counter mode, no file at all: an exhaustive run), applies it, and appends the
result word ``latency`` cycles later to an output file. Both files go through two DPI-C
functions (:data:`DPI_SOURCE`: buffered ``fread``/``fwrite`` of whole little-endian words,
which NumPy maps as they are). A word holds ``lanes`` vectors side by side, each driving
its own copy of the unit, so the per-cycle simulator overhead is shared by several vectors.
The clock is generated inside the harness (Verilator ``--timing``), so neither Python nor
a VPI callback runs per cycle; Python only starts a batch of ``count`` words and, when
``done`` rises, checks that batch's outputs against the golden model in one NumPy pass.

Ports: ``start`` (raised to run one batch, dropped once ``done`` is high); ``count``
(words in the batch, >= 1); ``counter`` (1: counter mode); ``base`` (counter mode: the
index of the batch's first vector); ``done``; ``clk`` is an internal signal. The settings
are latched when a batch starts, so no logic depends on a top-level input directly (else
Verilator re-evaluates every unit copy whenever cocotb touches one). Files come from the
plusargs ``+qrtl_in=`` (read sequentially across batches; none in counter mode) and
``+qrtl_out=``. Words are :func:`in_word_bytes` / :func:`out_word_bytes` long, lane ``k``
at byte ``k * in_bytes`` (``k * out_bytes``), each port a byte-aligned field
(:class:`qrtl.sim.layout.Layout`).

Counter mode: lane ``k`` of word ``i`` carries vector ``index = base + i * lanes + k``,
whose input ports are bit fields of ``index``: the first input port in the least
significant bits, each next port above it (:func:`counter_inputs` is the NumPy twin).

The unit's reset is held until the first batch starts and never again: between batches
its inputs are all zero for a few cycles, so a stateful unit keeps its state across batch
boundaries as long as an all-zero input (e.g. ``valid = 0``) leaves it unchanged.
"""

from __future__ import annotations

import numpy as np

from .layout import Layout

__all__ = ["harness_verilog", "harness_sources", "harness_shape", "counter_inputs",
           "in_word_bytes", "out_word_bytes", "TOPLEVEL", "MAX_LANE_BITS", "BIG_RUN"]

TOPLEVEL = "qrtl_harness"

#: Lanes are added while a word's input stays within this many bits: small units get many
#: copies (the per-clock cost is mostly the simulator's, not the unit's).
MAX_LANE_BITS = 4096
#: Runs of at least this many vectors get up to 32 lanes; shorter ones up to 8, whose
#: simulator builds several times faster (a test suite runs many short runs, each of its
#: own configuration).
BIG_RUN = 1 << 24


def harness_shape(inst, layout: Layout, vectors: int = 0) -> int:
    """Vectors per word (lanes) for a run of ``vectors``: a power of two, up to 32 (runs
    of at least :data:`BIG_RUN` vectors) or 8, while the input word stays within
    :data:`MAX_LANE_BITS` bits; 1 for stateful stream units, whose vectors depend on each
    other."""
    lanes, most = 1, 32 if vectors >= BIG_RUN else 8
    if not inst.spec.stream:
        while lanes < most and 2 * lanes * 8 * layout.in_bytes <= MAX_LANE_BITS:
            lanes *= 2
    return lanes


def in_word_bytes(layout: Layout, lanes: int) -> int:
    """Bytes per input word in the input file: the lanes' inputs, rounded up to whole
    32-bit words (the unit of a DPI bit vector)."""
    return -(-lanes * layout.in_bytes // 4) * 4


def out_word_bytes(layout: Layout, lanes: int) -> int:
    """Bytes per output word in the output file (as :func:`in_word_bytes`)."""
    return -(-lanes * layout.out_bytes // 4) * 4


#: The harness's file I/O, as DPI-C functions: whole words through buffered stdio, where
#: ``$fread`` would take one ``fgetc`` per byte and ``$fwrite`` would format a string per word.
DPI_SOURCE = r"""// qrtl streaming harness I/O (generated; do not edit)
#include <cstdio>
#include <cstdlib>
#include "svdpi.h"

static FILE* qrtl_in = nullptr;
static FILE* qrtl_out = nullptr;

static void qrtl_fail(const char* what, const char* name) {
    std::fprintf(stderr, "qrtl harness: cannot %s %s\n", what, name);
    std::exit(1);
}

extern "C" void qrtl_open(const char* infile, const char* outfile) {
    if (infile && *infile) {
        qrtl_in = std::fopen(infile, "rb");
        if (!qrtl_in) qrtl_fail("open", infile);
        std::setvbuf(qrtl_in, nullptr, _IOFBF, 1 << 20);
    }
    qrtl_out = std::fopen(outfile, "wb");
    if (!qrtl_out) qrtl_fail("create", outfile);
    std::setvbuf(qrtl_out, nullptr, _IOFBF, 1 << 20);
}

// the next input word: nbytes little-endian bytes (32-bit DPI words, least significant first)
extern "C" void qrtl_read(int nbytes, svBitVecVal* w) {
    if (!qrtl_in || std::fread(w, 1, nbytes, qrtl_in) != static_cast<size_t>(nbytes))
        qrtl_fail("read a whole word from", "the input file");
}

extern "C" void qrtl_write(int nbytes, const svBitVecVal* w) {
    if (std::fwrite(w, 1, nbytes, qrtl_out) != static_cast<size_t>(nbytes))
        qrtl_fail("write", "the output file");
}

extern "C" void qrtl_flush() { std::fflush(qrtl_out); }
"""


def harness_sources(inst, layout: Layout, lanes: int) -> dict[str, str]:
    """File name -> text of the harness (SystemVerilog and its DPI-C I/O)."""
    return {"qrtl_harness.sv": harness_verilog(inst, layout, lanes), "qrtl_dpi.cpp": DPI_SOURCE}


def counter_inputs(inst, lo: int, hi: int) -> dict:
    """Input port values of vectors ``lo .. hi - 1`` of counter mode (see module docstring):
    port ``p`` is bits ``[off_p, off_p + width_p)`` of the vector index."""
    idx = np.arange(lo, hi, dtype=np.uint64)
    out, off = {}, 0
    for p in inst.inputs:
        v = (idx >> np.uint64(off)) & np.uint64((1 << p.width) - 1)
        if p.signed:
            v = (v << np.uint64(64 - p.width)).view(np.int64) >> np.int64(64 - p.width)
        out[p.name] = v
        off += p.width
    return out


def harness_verilog(inst, layout: Layout, lanes: int) -> str:
    """SystemVerilog text of the harness around ``lanes`` copies of ``inst``."""
    ib = 8 * layout.in_bytes
    owb = out_word_bytes(layout, lanes)
    body, parts, cfields = [], [], []  # parts: output word fields, least significant first
    in_bits = sum(p.width for p in inst.inputs)
    for k in range(lanes):
        conns = [".clk(clk)", ".rst(rst)"] if inst.clocked else []
        boff = 0
        for f in layout.inputs:
            lo = k * ib + 8 * f.offset
            conns.append(f".{f.name}(vin[{lo + f.width - 1}:{lo}])")
            if in_bits <= 64:  # counter mode: this port's bits of the lane's index
                cfields.append(f"    cword[{lo + f.width - 1}:{lo}] = lane{k}_idx[{boff + f.width - 1}:{boff}];")
            boff += f.width
        if in_bits <= 64:
            body.append(f"  wire [63:0] lane{k}_idx = idx0 + 64'd{k};")
        for f in layout.outputs:
            body.append(f"  wire [{f.width - 1}:0] o{k}_{f.name};")
            conns.append(f".{f.name}(o{k}_{f.name})")
            pad = 8 * f.nbytes - f.width
            parts.append(f"{{{pad}'d0, o{k}_{f.name}}}" if pad else f"o{k}_{f.name}")
        body.append(f"  {inst.module} u{k} ({', '.join(conns)});")
    pad = 8 * owb - lanes * 8 * layout.out_bytes
    if pad:
        parts.append(f"{pad}'d0")
    return f"""// qrtl streaming harness around {inst.module} (generated; do not edit)
`timescale 1ns/1ps
module {TOPLEVEL} (
  input wire start /*verilator public_flat_rw*/,
  input wire [31:0] count /*verilator public_flat_rw*/,
  input wire counter /*verilator public_flat_rw*/,
  input wire [63:0] base /*verilator public_flat_rw*/,
  output reg done /*verilator public_flat_rw*/
);
  localparam int IW = {8 * in_word_bytes(layout, lanes)};
  localparam int LAT = {inst.latency};
  reg clk /*verilator public_flat_rd*/ = 0;
  always #5 clk = ~clk;
  reg [31:0] cnt = 0;
  reg [1:0] state = 0;  // 0 idle, 1 running, 2 done
  localparam int OW = {8 * owb};
  import "DPI-C" function void qrtl_open(input string infile, input string outfile);
  import "DPI-C" function void qrtl_read(input int nbytes, output bit [IW-1:0] w);
  import "DPI-C" function void qrtl_write(input int nbytes, input bit [OW-1:0] w);
  import "DPI-C" function void qrtl_flush();
  reg [IW-1:0] word = 0;
  bit [IW-1:0] next_word;
  string infile, outfile;
  initial begin
    done = 0;
    if (!$value$plusargs("qrtl_in=%s", infile)) infile = "";
    if (!$value$plusargs("qrtl_out=%s", outfile)) outfile = "qrtl_out.bin";
    qrtl_open(infile, outfile);
  end
  // the batch's settings, latched at start: nothing below depends on a top-level input
  // directly, so Verilator evaluates the units once per clock edge, not on every input poke
  reg [31:0] count_r = 1;
  reg counter_r = 0;
  reg [63:0] base_r = 0;
  wire [63:0] idx0 = base_r + {{32'd0, cnt}} * 64'd{lanes};
  reg [IW-1:0] cword;
  wire [IW-1:0] vin = (state == 1 && cnt < count_r) ? (counter_r ? cword : word) : '0;
  reg started = 0;
  wire rst = !started;
{chr(10).join(body)}
  always_comb begin
    cword = '0;
{chr(10).join(cfields)}
  end
  wire [OW-1:0] vout = {{{", ".join(reversed(parts))}}};
  // the next input word of the file, taken at the clock edge that ends the current one
  task automatic fetch;
    if (!counter_r) begin
      qrtl_read(IW / 8, next_word);
      word <= next_word;
    end
  endtask
  always @(posedge clk) begin
    case (state)
      0: if (start) begin
           count_r = count;       // blocking: fetch() below reads them at this edge, and
           counter_r = counter;   // the unit sees vin = 0 at this edge either way
           base_r <= base;
           fetch();
           cnt <= 0;
           state <= 1;
           started <= 1;
         end
      1: begin
           if (cnt >= LAT) qrtl_write(OW / 8, vout);
           if (cnt + 1 < count_r) fetch();
           cnt <= cnt + 1;
           if (cnt == count_r - 1 + LAT) begin
             qrtl_flush();
             done <= 1;
             state <= 2;
           end
         end
      2: if (!start) begin
           done <= 0;
           state <= 0;
         end
      default: state <= 0;
    endcase
  end
endmodule
"""
