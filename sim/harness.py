"""The streaming harness: a Verilog wrapper that feeds a unit from a memory.

Python-side per-vector work, not the simulator, limits cocotb throughput. So the
testbench writes a whole batch of input words to a binary file, pulses ``start``, and the
harness ``$fread``s it into a memory, applies one word per clock cycle, captures each
result ``latency`` cycles later into an output memory, and dumps it with ``$writememh``
before raising ``done``. A word holds ``lanes`` vectors side by side, each driving its own
copy of the unit, so per-cycle simulator overhead is shared by several vectors. The clock
is generated inside the harness (Verilator ``--timing``), so neither Python nor a VPI
callback runs per cycle.

Ports: ``start`` (cocotb raises it to run one batch and drops it once ``done`` is high);
``count`` (words in the batch, 1..DEPTH); ``done``; ``clk`` is an internal signal.
File names come from the plusargs ``+qrtl_in=`` and ``+qrtl_out=``.
The unit's reset is held until the first batch starts and never again: between batches
its inputs are all zero for a few cycles, so a stateful unit keeps its state across batch
boundaries as long as an all-zero input (e.g. ``valid = 0``) leaves it unchanged.
"""

from __future__ import annotations

from .layout import Layout

__all__ = ["harness_verilog", "harness_shape", "TOPLEVEL"]

TOPLEVEL = "qrtl_harness"


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
