// Simulation model of the Lattice ECP5 DP16KD block RAM, for Icarus and Verilator.
//
// Covers what hdl/credit_fifo.py instantiates: both ports 18 bits wide (1024 words),
// port A written (byte enables on ADA1/ADA0, address on ADA13..ADA4), port B read with
// WRITEMODE NORMAL, its output either straight from the read latch (REGMODE_B "NOREG",
// one cycle) or through the output register enabled by OCEB ("OUTREG", two cycles);
// chip selects decoded as CSDECODE "0b000".  Reads of port A and writes on port B are
// not modelled: any other configuration stops the simulation, so the model cannot
// silently differ from the hardware.  Yosys's ECP5 library has no model of this cell.
`default_nettype none
// The real primitive's parameters that this model accepts but does not implement.
/* verilator lint_off UNUSEDPARAM */
module DP16KD(DIA0, DIA1, DIA2, DIA3, DIA4, DIA5, DIA6, DIA7, DIA8, DIA9, DIA10, DIA11, DIA12, DIA13, DIA14, DIA15, DIA16, DIA17, ADA0, ADA1, ADA2, ADA3, ADA4, ADA5, ADA6, ADA7, ADA8, ADA9, ADA10, ADA11, ADA12, ADA13, CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0, DIB0, DIB1, DIB2, DIB3, DIB4, DIB5, DIB6, DIB7, DIB8, DIB9, DIB10, DIB11, DIB12, DIB13, DIB14, DIB15, DIB16, DIB17, ADB0, ADB1, ADB2, ADB3, ADB4, ADB5, ADB6, ADB7, ADB8, ADB9, ADB10, ADB11, ADB12, ADB13, CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0, DOA0, DOA1, DOA2, DOA3, DOA4, DOA5, DOA6, DOA7, DOA8, DOA9, DOA10, DOA11, DOA12, DOA13, DOA14, DOA15, DOA16, DOA17, DOB0, DOB1, DOB2, DOB3, DOB4, DOB5, DOB6, DOB7, DOB8, DOB9, DOB10, DOB11, DOB12, DOB13, DOB14, DOB15, DOB16, DOB17);
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter GSR = "ENABLED";
  input wire DIA0, DIA1, DIA2, DIA3, DIA4, DIA5, DIA6, DIA7, DIA8, DIA9, DIA10, DIA11, DIA12, DIA13, DIA14, DIA15, DIA16, DIA17, ADA0, ADA1, ADA2, ADA3, ADA4, ADA5, ADA6, ADA7, ADA8, ADA9, ADA10, ADA11, ADA12, ADA13, CEA, OCEA, CLKA, WEA, CSA2, CSA1, CSA0, DIB0, DIB1, DIB2, DIB3, DIB4, DIB5, DIB6, DIB7, DIB8, DIB9, DIB10, DIB11, DIB12, DIB13, DIB14, DIB15, DIB16, DIB17, ADB0, ADB1, ADB2, ADB3, ADB4, ADB5, ADB6, ADB7, ADB8, ADB9, ADB10, ADB11, ADB12, ADB13, CEB, OCEB, CLKB, WEB, CSB2, CSB1, CSB0;
  // Unconnected by hdl/block_ram.py: inactive, as in the silicon (an undriven input would be z, or random
  // under Verilator's --x-initial unique).
  input tri0 RSTA, RSTB;
  output wire DOA0, DOA1, DOA2, DOA3, DOA4, DOA5, DOA6, DOA7, DOA8, DOA9, DOA10, DOA11, DOA12, DOA13, DOA14, DOA15, DOA16, DOA17, DOB0, DOB1, DOB2, DOB3, DOB4, DOB5, DOB6, DOB7, DOB8, DOB9, DOB10, DOB11, DOB12, DOB13, DOB14, DOB15, DOB16, DOB17;

  wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  wire [9:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4};
  wire [9:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4};
  wire cs_a = {CSA2, CSA1, CSA0} === 3'b000;
  wire cs_b = {CSB2, CSB1, CSB0} === 3'b000;

  reg [17:0] mem [0:1023];
  always @(posedge CLKA) begin
    if (CEA === 1'b1 && WEA === 1'b1 && cs_a) begin
      if (ADA0 === 1'b1) mem[ada][8:0] <= dia[8:0];
      if (ADA1 === 1'b1) mem[ada][17:9] <= dia[17:9];
    end
  end

  reg [17:0] latch_b = 18'd0, out_b = 18'd0;
  always @(posedge CLKB) begin
    if (RSTB === 1'b1) latch_b <= 18'd0;
    else if (CEB === 1'b1 && cs_b) latch_b <= mem[adb];
    if (RSTB === 1'b1) out_b <= 18'd0;
    else if (OCEB === 1'b1) out_b <= latch_b;
  end
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = REGMODE_B == "OUTREG" ? out_b : latch_b;
  assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = 18'd0;

  initial begin
    if (DATA_WIDTH_A != 18 || DATA_WIDTH_B != 18 || (REGMODE_B != "NOREG" && REGMODE_B != "OUTREG") ||
        RESETMODE != "SYNC" || CSDECODE_A != "0b000" || CSDECODE_B != "0b000" || WRITEMODE_B != "NORMAL") begin
      $display("DP16KD model: unsupported configuration");
      $finish;
    end
  end
endmodule
`default_nettype wire
