// Simulation model of the Lattice ECP5 TRELLIS_FF flip-flop, for Icarus and Verilator.
//
// Covers what hdl/pipeline.py (kept_register) instantiates: a D flip-flop on the rising edge
// of CLK, always enabled (CEMUX "1"), with LSR either a synchronous reset to 0 (SRMODE
// "LSR_OVER_CE", REGSET "RESET", LSRMODE "LSR") or tied low; GSR disabled.  Any other
// configuration stops the simulation, so the model cannot silently differ from the hardware.
// Yosys's ECP5 library models the cell only for its own flows (cells_sim.v with GSR).
`default_nettype none
/* verilator lint_off UNUSEDPARAM */
module TRELLIS_FF(CLK, LSR, CE, DI, M, Q);
  parameter GSR = "DISABLED";
  parameter CEMUX = "1";
  parameter CLKMUX = "CLK";
  parameter LSRMUX = "LSR";
  parameter LSR_ON_CE = "0";
  parameter SRMODE = "LSR_OVER_CE";
  parameter REGSET = "RESET";
  parameter REGDDR = "DISABLED";
  parameter LSRMODE = "LSR";
  /* verilator lint_on UNUSEDPARAM */
  /* verilator lint_off UNUSEDSIGNAL */
  input wire CLK, LSR, CE, DI, M;
  /* verilator lint_on UNUSEDSIGNAL */
  output reg Q;

  initial begin
    Q = 1'b0;
    if (GSR != "DISABLED" || CEMUX != "1" || CLKMUX != "CLK" || LSRMUX != "LSR" || SRMODE != "LSR_OVER_CE"
        || REGSET != "RESET" || LSRMODE != "LSR" || REGDDR != "DISABLED") begin
      $display("TRELLIS_FF model: unsupported configuration");
      $finish;
    end
  end

  always @(posedge CLK)
    Q <= LSR ? 1'b0 : DI;
endmodule
`default_nettype wire
