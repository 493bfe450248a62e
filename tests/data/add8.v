// A hand-written 8-bit adder with carry out (a foreign module for tests/test_plugins.py).
module add8 (
  input  wire [7:0] a,
  input  wire [7:0] b,
  output wire [8:0] s
);
  assign s = a + b;
endmodule
