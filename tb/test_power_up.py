"""The power-up control: what a register without a reset holds before its first write.

The design (built by ``tests/test_power_up.py``) has one register ``held`` with no
reset and no initial value use: the testbench resets it, reads ``held`` before any
write (reported as its bit string: ``x`` bits on Icarus, a value drawn from the run's
seed on Verilator under :func:`attn_rtl.sim.runner.unknown_power_up`), then writes a
random value and checks it comes back, so the run compares at least one element.
"""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from .harness import begin


@cocotb.test()
async def power_up_value(dut):
    cfg, report, rng = begin(dut, "width")
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.en.value = 0
    dut.d.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    report.extra["before_write"] = str(dut.held.value)
    value = int(rng.integers(0, 1 << cfg["width"]))
    dut.d.value, dut.en.value = value, 1
    await RisingEdge(dut.clk)
    dut.en.value = 0
    await ClockCycles(dut.clk, 2)
    report.compare("held after a write", [int(dut.held.value)], [value])
    report.finish()
