"""The previous streaming path (before issue 18), kept only as ``qrtl bench``'s baseline.

Its harness ``$fread``s a batch of input words (packed in Python, most significant byte
first) into a memory, applies one word per clock with up to 8 lanes, and dumps the
outputs as hex text with ``$writememh``, which Python decodes; one simulator process. The
product path (:mod:`qrtl.sim.harness`) replaced it: binary DPI-C I/O, a counter mode,
up to 32 lanes, several processes.
"""

from __future__ import annotations

import numpy as np

from .layout import Layout

__all__ = ["harness_shape", "harness_verilog", "decode_hex", "TOPLEVEL"]

TOPLEVEL = "qrtl_harness"

_NIB = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIB[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _NIB[_c] = 10 + _i



def decode_hex(text: bytes, n: int, b: int) -> np.ndarray:
    """Little-endian byte matrix of ``n`` words of ``b`` bytes from ``$writememh`` hex text.

    Verilator writes exactly ``2*b`` hex digits per line (the memory width rounded up to
    a nibble, which the harness makes a whole number of bytes), no comments.
    """
    arr = np.frombuffer(text, dtype=np.uint8)
    arr = arr[arr != ord("\r")]
    lines = arr.reshape(n, 2 * b + 1)
    if np.any(lines[:, -1] != ord("\n")):
        raise ValueError("unexpected $writememh layout")
    nib = _NIB[lines[:, :-1]]
    if np.any(nib == 255):
        raise ValueError("X or Z in simulator output")
    be = (nib[:, 0::2] << 4) | nib[:, 1::2]
    return be[:, ::-1].copy()


def harness_shape(inst, layout: Layout) -> tuple[int, int]:
    """``(lanes, depth)``: vectors per word and words per batch.

    Lanes: up to 8 copies while the input word stays within 512 bits (one for stateful
    stream units, whose vectors depend on each other). Depth: a power of two, at most
    2**16 words and about 32 Mbit of memory.
    """
    lanes = 1
    if not inst.spec.stream:
        while lanes < 8 and 2 * lanes * 8 * layout.in_bytes <= 512:
            lanes *= 2
    bits = 8 * lanes * (layout.in_bytes + layout.out_bytes)
    depth = 1 << 16
    while depth > 256 and depth * bits > (1 << 25):
        depth >>= 1
    return lanes, depth


def harness_verilog(inst, layout: Layout, lanes: int, depth: int) -> str:
    """SystemVerilog text of the harness around ``lanes`` copies of ``inst``."""
    ib, ob = 8 * layout.in_bytes, 8 * layout.out_bytes
    body, parts = [], []  # parts: fields of the output word, least significant first
    for k in range(lanes):
        conns = [".clk(clk)", ".rst(rst)"] if inst.clocked else []
        for f in layout.inputs:
            lo = k * ib + 8 * f.offset
            conns.append(f".{f.name}(vin[{lo + f.width - 1}:{lo}])")
        for f in layout.outputs:
            body.append(f"  wire [{f.width - 1}:0] o{k}_{f.name};")
            conns.append(f".{f.name}(o{k}_{f.name})")
            pad = 8 * f.nbytes - f.width
            parts.append(f"{{{pad}'d0, o{k}_{f.name}}}" if pad else f"o{k}_{f.name}")
        body.append(f"  {inst.module} u{k} ({', '.join(conns)});")
    addr_bits = max(1, (depth - 1).bit_length())
    return f"""// qrtl streaming harness around {inst.module} (generated; do not edit)
`timescale 1ns/1ps
module {TOPLEVEL} (
  input wire start /*verilator public_flat_rw*/,
  input wire [31:0] count /*verilator public_flat_rw*/,
  output reg done /*verilator public_flat_rw*/
);
  localparam int IW = {lanes * ib};
  localparam int OW = {lanes * ob};
  localparam int LAT = {inst.latency};
  localparam int DEPTH = {depth};
  reg [IW-1:0] in_mem [0:DEPTH-1];
  reg [OW-1:0] out_mem [0:DEPTH-1];
  reg clk /*verilator public_flat_rd*/ = 0;
  always #5 clk = ~clk;
  reg [31:0] cnt = 0;
  reg [1:0] state = 0;  // 0 idle, 1 running, 2 dumping, 3 done
  string infile, outfile;
  integer fd, nread;
  initial begin
    done = 0;
    if (!$value$plusargs("qrtl_in=%s", infile)) infile = "qrtl_in.bin";
    if (!$value$plusargs("qrtl_out=%s", outfile)) outfile = "qrtl_out.hex";
  end
  wire [{addr_bits - 1}:0] addr = cnt[{addr_bits - 1}:0];
  wire [IW-1:0] vin = (state == 1 && cnt < count) ? in_mem[addr] : {lanes * ib}'d0;
  reg started = 0;
  wire rst = !started;
{chr(10).join(body)}
  wire [OW-1:0] vout = {{{", ".join(reversed(parts))}}};
  always @(posedge clk) begin
    case (state)
      0: if (start) begin
           fd = $fopen(infile, "rb");
           nread = $fread(in_mem, fd, 0, count);
           $fclose(fd);
           cnt <= 0;
           state <= 1;
           started <= 1;
         end
      1: begin
           if (cnt >= LAT) out_mem[cnt - LAT] <= vout;
           cnt <= cnt + 1;
           if (cnt == count - 1 + LAT) state <= 2;
         end
      2: begin
           $writememh(outfile, out_mem, 0, count - 1);
           done <= 1;
           state <= 3;
         end
      3: if (!start) begin
           done <= 0;
           state <= 0;
         end
    endcase
  end
endmodule
"""
