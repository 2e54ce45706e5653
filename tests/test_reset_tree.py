"""ResetTree: every unit, and the core, leaves and enters reset on the same edge, ``latency`` cycles
after the reset it copies; each unit's flip-flops reset from a copy of their own.

Amaranth's own simulator drives a small design of counters (the engine's cocotb tests reset the
engine, whose units sit in such a tree, in the middle of runs on both simulators).
"""

from __future__ import annotations

import pytest
from amaranth.hdl import Elaboratable, Module, ResetSignal, Signal
from amaranth.sim import Simulator

from attn_rtl.hdl.reset_tree import ResetTree


class _Counter(Elaboratable):
    def __init__(self):
        self.count = Signal(8)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.count.eq(self.count + 1)
        return m


class _Design(Elaboratable):
    """Two counter units and a counter of the core's own, in a reset tree."""

    def __init__(self):
        self.units = [_Counter(), _Counter()]
        self.core_count = Signal(8)

    def elaborate(self, platform):
        tree = ResetTree(target="generic")
        core = Module()
        for k, unit in enumerate(self.units):
            core.submodules[f"unit{k}"] = tree.unit(f"unit{k}", unit)
        core.d.sync += self.core_count.eq(self.core_count + 1)
        return tree.root(core)


@pytest.mark.parametrize("reset_cycles", [1, 2, 5])
def test_every_unit_resets_on_the_same_edge_one_cycle_late(reset_cycles):
    design, design_reset = _Design(), Signal()
    top = Module()
    top.submodules.design = design
    top.d.comb += ResetSignal("sync").eq(design_reset)   # as a reset register would give it
    counts = []

    async def bench(ctx):
        for _ in range(6):
            await ctx.tick()
        ctx.set(design_reset, 1)
        for _ in range(reset_cycles):
            await ctx.tick()
        ctx.set(design_reset, 0)
        for _ in range(4):
            counts.append((ctx.get(design.core_count), *[ctx.get(u.count) for u in design.units]))
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for cycle, row in enumerate(counts):
        assert len(set(row)) == 1, f"units apart at cycle {cycle} after the reset: {row}"
    # The copies hold the reset ResetTree.latency (1) cycle after it falls: the counters restart a
    # cycle late.  After a one-cycle reset they still hold the old count in the cycle it falls.
    assert ResetTree.latency == 1
    assert [row[0] for row in counts[1:]] == [0, 1, 2]
    assert (counts[0][0] == 0) == (reset_cycles > 1), counts


def _unused(elaboratable):
    elaboratable._MustUse__silence = True   # built only to be refused, never elaborated
    return elaboratable


def test_bad_unit_names_are_rejected():
    tree = ResetTree(target="generic")
    _unused(tree.unit("array", _unused(_Counter())))
    with pytest.raises(ValueError, match="unit 'array' has a reset copy already"):
        tree.unit("array", _unused(_Counter()))
    with pytest.raises(ValueError, match="unit name must be an identifier, not 'a b'"):
        tree.unit("a b", _unused(_Counter()))
    with pytest.raises(ValueError, match="target must be one of generic, ecp5, not 'xilinx'"):
        ResetTree(target="xilinx")
