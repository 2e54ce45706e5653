# Out-of-context timing for any attn-rtl block (Vivado): one 200 MHz clock on the port `clk`.
create_clock -name clk -period 5.000 [get_ports clk]
