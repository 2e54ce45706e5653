"""cocotb testbenches of the units, the stream drivers they share, and the full-rate Verilog harness
(engine_bench.v, engine_bench_main.v) that attn_rtl.gen.simulate.measure_engine builds."""
