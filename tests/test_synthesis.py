"""The generated Verilog synthesizes with Yosys for ECP5, iCE40 and Xilinx 7-series, multipliers in DSPs."""

import re
from pathlib import Path

import pytest

from attn_rtl.gen.flows.synth import synthesize
from attn_rtl.gen.generate import cached_verilog, elaborate


@pytest.mark.parametrize("target", ["ecp5", "ice40", "xilinx7"])
def test_array_maps_one_multiplier_per_pe_onto_dsp_blocks(target):
    path, component = cached_verilog("array", dict(rows=2, cols=3, max_reduction=16))
    area = synthesize(path, "systolic_array", target)
    assert area["dsp"] == 2 * 3, area
    assert area["lut"] > 0 and area["ff"] > 0
    # Per PE: 8 + 8 operand registers, the product (multiplier output) and the accumulator, at least.
    assert area["ff"] >= 6 * (8 + 8), area


@pytest.mark.slow
@pytest.mark.parametrize("target", ["ecp5", "ice40", "xilinx7"])
def test_default_array_synthesizes(target):
    path, _ = cached_verilog("array", dict(rows=8, cols=8, max_reduction=64))
    area = synthesize(path, "systolic_array", target)
    assert area["dsp"] == 64, area


def test_unknown_target_is_rejected():
    with pytest.raises(ValueError, match="target must be one of ecp5, ice40, xilinx7, not 'gowin'"):
        synthesize("x.v", "top", "gowin")


def test_ecp5_primitive_path_keeps_one_registered_mult18x18d_per_pe():
    path, _ = cached_verilog("array", dict(rows=2, cols=2, max_reduction=16, multiplier="ecp5"))
    area = synthesize(path, "systolic_array", "ecp5")
    assert area["cells"].get("MULT18X18D") == 4, area


@pytest.mark.parametrize("target", ["ecp5", pytest.param("ice40", marks=pytest.mark.slow),
                                    pytest.param("xilinx7", marks=pytest.mark.slow)])
def test_softmax_unit_synthesizes(target):
    """The tiny preset: logit multipliers in DSPs (two lanes), the interpolation in the fabric."""
    path, _ = cached_verilog("softmax", dict(lanes=2, slots=2, score_width=12, max_seq_len=64))
    area = synthesize(path, "softmax_unit", target)
    assert area["lut"] > 0 and area["ff"] > 0, area
    assert area["dsp"] >= 2, area


def test_block_ram_fifo_keeps_its_dp16kd_blocks():
    path, array = cached_verilog("array", dict(rows=2, cols=2, max_reduction=16, multiplier="ecp5",
                                               fifo_memory="ecp5"))
    area = synthesize(path, "systolic_array", "ecp5")
    # A row of 2 x 20-bit sums and the last flag: 41 bits, three 18-bit DP16KD.
    row_bits = 2 * array.acc_shape.width + 1
    assert row_bits == 41 and area["cells"].get("DP16KD") == -(-row_bits // 18), area
    assert area["cells"].get("MULT18X18D") == 4, area


@pytest.mark.slow
@pytest.mark.parametrize("target", ["ecp5", "ice40", "xilinx7"])
def test_engine_synthesizes(target):
    """The tiny engine (2x2 array, d <= 32, L <= 256): PE multipliers in DSPs, the on-chip buffers in RAM
    primitives, not flip-flops: its 3,396 bits go to LUT RAM on ECP5 and Xilinx (Yosys keeps block RAM for
    larger memories: the default engine takes 10 DP16KD), to block RAM on iCE40. About two minutes per target."""
    path, _ = cached_verilog("engine", dict(rows=2, cols=2, max_seq_len=256, max_head_dim=32, max_heads=4))
    area = synthesize(path, "attention_engine", target, dsp=True)
    assert area["lut"] > 0 and area["ff"] > 0, area
    assert area["dsp"] >= 4 and area["bram"] + area["lutram"] >= 1, area


@pytest.mark.parametrize("target", ["ecp5", "ice40", "xilinx7"])
def test_sparse_scheduler_synthesizes(target):
    """The scheduler alone (4x4 tiles, every pattern): comparators and counters in the fabric; the
    window x dilation and grid products at start may use a DSP."""
    path, _ = cached_verilog("scheduler", dict(rows=4, cols=4, max_seq_len=256, max_dilation=8, max_globals=2))
    area = synthesize(path, "sparse_scheduler", target)
    assert area["lut"] > 100 and area["ff"] > 50, area


@pytest.mark.slow
@pytest.mark.parametrize("target", ["ecp5", "ice40", "xilinx7"])
def test_sparse_engine_synthesizes(target):
    path, _ = cached_verilog("engine", dict(rows=2, cols=2, max_seq_len=256, max_head_dim=32, max_heads=4,
                                            sparse=True))
    area = synthesize(path, "attention_engine", target, dsp=True)
    assert area["dsp"] >= 4 and area["bram"] + area["lutram"] >= 1, area


@pytest.mark.parametrize("target", ["ecp5", pytest.param("ice40", marks=pytest.mark.slow),
                                    pytest.param("xilinx7", marks=pytest.mark.slow)])
def test_topk_engine_synthesizes(target):
    """A small top-k engine (4 lanes, n <= 64, k <= 8): compare-swaps in the fabric, no DSP; on ECP5
    and Xilinx the merge levels' banks become distributed RAM, not flip-flops."""
    path, component = cached_verilog("topk", dict(lanes=4, max_n=64, max_k=8, value_width=8))
    area = synthesize(path, "topk_engine", target)
    assert area["lut"] > 0 and area["dsp"] == 0, area
    if target != "ice40":
        assert area["lutram"] > 0, area
    # Banks in RAM: fewer flip-flops than the banks alone would take as registers.
    assert area["ff"] < component.bank_bits, (area, component.bank_bits)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["ecp5", "ice40", "xilinx7"])
def test_spatten_engine_synthesizes(target):
    """The tiny engine with importance and row flags: the importance multipliers join the PEs' in DSPs,
    the importance memory is one more block RAM."""
    plain, _ = cached_verilog("engine", dict(rows=2, cols=2, max_seq_len=256, max_head_dim=32, max_heads=4))
    path, _ = cached_verilog("engine", dict(rows=2, cols=2, max_seq_len=256, max_head_dim=32, max_heads=4,
                                            importance=True, row_flags=True))
    base = synthesize(plain, "attention_engine", target, dsp=True)
    area = synthesize(path, "attention_engine", target, dsp=True)
    assert area["dsp"] >= base["dsp"] + (2 if target != "ice40" else 0) and area["bram"] >= base["bram"], (area, base)
    assert area["lut"] > base["lut"] and area["ff"] > base["ff"], (area, base)


def test_fmax_run_keeps_its_log_and_the_critical_path():
    """One nextpnr-ecp5 place and route of the 2x2 array (about 10 s): the log is kept and the
    clock-to-clock critical path (the one that sets Fmax, not the pin paths) comes back."""
    from attn_rtl.gen.flows.pnr import critical_path, fmax_ecp5

    array = elaborate("array", dict(rows=2, cols=2, max_reduction=16))
    result = fmax_ecp5(array, seeds=(1,), timeout=600)
    assert result["fmax_mhz"] > 20 and len(result["logs"]) == 1
    log = Path(result["logs"][0]).read_text()
    assert result["critical_paths"][0] == critical_path(log)
    report = result["critical_paths"][0]
    assert "Critical path report for clock" in report[0] and report[-1].strip().endswith("routing")
    assert critical_path("Info: nothing here\n") == []
    # The JSON report: the same path split into logic and routing, the cells on it, the utilization.
    path = result["paths"][0]
    assert path["total_ns"] == pytest.approx(path["logic_ns"] + path["routing_ns"]) and path["routing_ns"] > 0
    assert 1000 / path["total_ns"] == pytest.approx(result["fmax_mhz"], rel=0.05)
    assert path["start"] == path["cells"][0] and path["end"] == path["cells"][-1] and len(path["cells"]) >= 2
    assert result["utilization"]["mult18x18d"] == 4 and result["utilization"]["ff"] > 100 and result["carry"] > 0
    assert Path(result["reports"][0]).exists()
    # The widest nets of the same netlist: the 2x2 array's broadest fan-out is a control, never the clock.
    widest = result["widest_nets"]
    assert widest and widest[0]["fanout"] >= widest[-1]["fanout"] and all(n["driver"] != "clk" for n in widest)


def test_widest_nets_ranks_fanout_and_names_the_signals():
    """On a hand-made netlist: fan-out counts cell inputs only, the clock is left out, and mapped cell
    names lead back to the signal (``..._TRELLIS_FF_Q_3`` -> the register)."""
    from attn_rtl.gen.flows.pnr import widest_nets

    def cell(kind, **ports):
        return {"type": kind, "port_directions": {p: ("output" if p in ("Q", "Z") else "input") for p in ports},
                "connections": ports}

    cells = {"inner.sel_TRELLIS_FF_Q": cell("TRELLIS_FF", CLK=[1], DI=[2], Q=[3])}
    cells.update({f"inner.st_b_TRELLIS_FF_Q_{n}_DI_LUT4_Z": cell("LUT4", A=[3], B=[4], Z=[10 + n]) for n in range(5)})
    cells.update({f"inner.other_TRELLIS_FF_Q_{n}": cell("TRELLIS_FF", CLK=[1], DI=[4], Q=[20 + n]) for n in range(3)})
    netlist = {"modules": {"pin_wrapper": {"cells": cells, "netnames": {
        "clk": {"bits": [1]}, "inner.sel": {"bits": [3]}, "inner.d": {"bits": [4]}, "inner.x": {"bits": [2]}}}}}
    found = widest_nets(netlist, count=2)
    # inner.d has no driver cell (an input): it is named by its net.
    assert found == [{"driver": "inner.d", "fanout": 8, "reaches": [("inner.st_b", 5), ("inner.other", 3)]},
                     {"driver": "inner.sel", "fanout": 5, "reaches": [("inner.st_b", 5)]}]


def test_deep_paths_times_each_cone_from_register_to_register():
    """On a hand-made netlist: three LUTs in a row between two flip-flops are three levels and their
    cell and routing delays; a carry chain adds one level where it is entered, not one per cell; a
    PFUMX's LUT inputs are dedicated wires; of two paths into an endpoint the slower is reported."""
    import math

    from attn_rtl.gen.flows.netlist_paths import DELAY_MODEL as D
    from attn_rtl.gen.flows.netlist_paths import deep_paths

    outputs = {"Q", "Z", "COUT", "S0", "S1"}

    def cell(kind, **ports):
        return {"type": kind, "parameters": {},
                "port_directions": {p: ("output" if p in outputs else "input") for p in ports}, "connections": ports}

    def route(fanout):
        return D["route_base"] + D["route_per_doubling"] * math.log2(fanout)

    cells = {
        "inner.a_ff": cell("TRELLIS_FF", CLK=[1], DI=[2], Q=[10]),
        "inner.l1": cell("LUT4", A=[10], Z=[11]), "inner.l2": cell("LUT4", A=[11], B=[10], Z=[12]),
        "inner.l3": cell("LUT4", A=[12], Z=[13]),
        "inner.end_ff": cell("TRELLIS_FF", CLK=[1], DI=[13], Q=[14]),
        # b enters a two-cell carry chain whose sum selects, in a PFUMX, between l1 (a) and b
        "inner.b_ff": cell("TRELLIS_FF", CLK=[1], DI=[2], Q=[30]),
        "inner.c0": cell("CCU2C", A0=[30], CIN=["0"], COUT=[20], S0=[21]),
        "inner.c1": cell("CCU2C", A0=["0"], CIN=[20], COUT=[22], S0=[23]),
        "inner.mux": cell("PFUMX", ALUT=[11], BLUT=[30], C0=[23], Z=[24]),
        "inner.mux_ff": cell("TRELLIS_FF", CLK=[1], DI=[24], Q=[25]),
    }
    netlist = {"modules": {"pin_wrapper": {"cells": cells, "netnames": {
        "clk": {"bits": [1]}, "inner.a": {"bits": [10]}, "inner.b": {"bits": [30]}, "inner.d": {"bits": [2]},
        "inner.y": {"bits": [13]}, "inner.carry": {"bits": [23]}}}}}
    three_luts = (D["clock_to_out"] + route(2) + D["lut"] + route(2) + D["lut"] + route(1) + D["lut"] + route(1)
                  + D["setup"])
    # b reaches c0 and the PFUMX (fan-out 2); c0 -> c1 and the PFUMX's LUT inputs are dedicated wires.
    through_carry = (D["clock_to_out"] + route(2) + D["carry_in"] + D["carry_in"] + route(1) + D["mux"]
                     + route(1) + D["setup"])
    assert through_carry > D["clock_to_out"] + route(2) + D["lut"] + D["mux"] + route(1) + D["setup"]
    budget = (three_luts + through_carry) / 2
    found = deep_paths(netlist, budget_ns=budget, count=5)
    by_end = {path["end"]: path for path in found["paths"]}
    assert by_end["inner.end_ff.DI"]["levels"] == 3
    assert by_end["inner.end_ff.DI"]["nets"] == ["inner.a", "$11", "$12", "inner.y"]
    assert abs(by_end["inner.end_ff.DI"]["ns"] - three_luts) < 0.006
    assert by_end["inner.mux_ff.DI"]["nets"] == ["inner.b", "$20", "inner.carry", "$24"]
    assert by_end["inner.mux_ff.DI"]["levels"] == 2
    assert abs(by_end["inner.mux_ff.DI"]["ns"] - through_carry) < 0.006
    assert found["endpoints"] == 4   # the DI of each flip-flop
    slower = max(three_luts, through_carry)
    assert found["over_budget"] == 1 and found["paths"][0]["ns"] == round(slower, 2)


def test_the_timed_wrapper_takes_its_reset_from_a_register():
    """In a system the reset comes from a register (a reset synchronizer), so its fan-out is timed:
    the wrapper's sync reset is the second of two flip-flops after the rst pin, never the pin."""
    from amaranth.sim import Simulator

    from attn_rtl.hdl import PinWrapper, RegisterSlice

    inner = RegisterSlice(8)
    top = PinWrapper(inner)
    seen = []

    async def bench(ctx):
        ctx.set(top.rst, 1)
        for _ in range(3):
            await ctx.posedge(top.clk)
        await ctx.delay(1e-9)
        ctx.set(top.rst, 0)
        for _ in range(3):
            await ctx.posedge(top.clk)
            await ctx.delay(1e-9)
            seen.append(ctx.get(top.sync_reset))

    async def clock(ctx):   # the clk pin
        while True:
            ctx.set(top.clk, 1)
            await ctx.delay(5e-9)
            ctx.set(top.clk, 0)
            await ctx.delay(5e-9)

    sim = Simulator(top)
    sim.add_process(clock)
    sim.add_testbench(bench)
    sim.run_until(1e-6)
    assert seen == [1, 0, 0]   # the second clock edge after the pin falls releases it
    with pytest.raises(ValueError, match="own_domain must be true or false, not 'yes'"):
        PinWrapper(inner, own_domain="yes")


def test_timing_page_on_a_fresh_cache_keeps_the_recorded_designs(tmp_path, monkeypatch):
    """A new machine has no timing cache: the page it writes still holds every design docs/timing.json
    records, not only those timed there."""
    import json

    from attn_rtl.gen.bench import timing

    recorded = json.loads((Path(__file__).parents[1] / "docs" / "timing.json").read_text())
    assert len(recorded) > 3
    monkeypatch.setenv("ATTN_RTL_CACHE", str(tmp_path / "cache"))
    json_out = tmp_path / "timing.json"
    json_out.write_text(json.dumps(recorded))
    page = timing.run([], json_out=json_out, out=tmp_path / "timing.md").read_text()
    for name, entry in recorded.items():   # a design whose LUTs ABC mapped has a note after its name
        fmax = ", ".join(f"{f:.1f}" for f in entry["fmax_mhz"])
        assert re.search(rf"^\| {re.escape(name)}( \([^|]*\))? \| {re.escape(fmax)} \|", page, re.M), name
    assert json.loads(json_out.read_text()) == recorded
