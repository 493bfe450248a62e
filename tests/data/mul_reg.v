// A hand-written registered signed 4x4 multiplier: p = a * b one rising edge of `clock`
// later, cleared by the active-high `reset` (a sequential foreign module for the tests).
module mul_reg (
  input  wire              clock,
  input  wire              reset,
  input  wire signed [3:0] a,
  input  wire signed [3:0] b,
  output reg  signed [7:0] p
);
  always @(posedge clock) begin
    if (reset) p <= 8'sd0;
    else       p <= a * b;
  end
endmodule
