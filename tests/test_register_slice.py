"""RegisterSlice: every beat passes once, in order, at full rate, under random valid and ready.

The slice is small and has no arithmetic, so Amaranth's own simulator drives it directly
(the engine's cocotb tests exercise it again inside the engine).
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from attn_rtl.hdl.register_slice import RegisterSlice


def _run(seed: int, idle: float, stall: float, beats: int = 300):
    rng = np.random.default_rng(seed)
    dut = RegisterSlice(16)
    sent = [int(x) for x in rng.integers(0, 1 << 16, beats)]
    got, cycles = [], []

    async def bench(ctx):
        at, cycle = 0, 0
        while len(got) < beats and cycle < 20 * beats:
            offer = at < beats and rng.random() >= idle
            take = rng.random() >= stall
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.i.payload, sent[at] if offer else 0)
            ctx.set(dut.o.ready, take)
            # Sample the handshakes just before the edge (both sides are registered or driven here).
            i_ready, o_valid, o_payload = ctx.get(dut.i.ready), ctx.get(dut.o.valid), ctx.get(dut.o.payload)
            await ctx.tick()
            if offer and i_ready:
                at += 1
            if take and o_valid:
                got.append(o_payload)
                cycles.append(cycle)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return sent, got, cycles


@pytest.mark.parametrize("seed, idle, stall", [(1, 0.0, 0.0), (2, 0.3, 0.0), (3, 0.0, 0.5), (4, 0.4, 0.4)])
def test_every_beat_once_in_order(seed, idle, stall):
    sent, got, _ = _run(seed, idle, stall)
    print(f"seed {seed}")
    assert got == sent


def test_full_rate_and_one_cycle_of_latency():
    sent, got, cycles = _run(5, 0.0, 0.0)
    assert got == sent
    assert cycles[0] == 1 and cycles[-1] == len(sent)   # one beat per cycle after the first


def test_ready_is_a_flip_flop():
    """i.ready must not depend on o.ready in the same cycle (the point of the slice)."""
    dut = RegisterSlice(8)

    async def bench(ctx):
        for take in (0, 1, 0, 1):
            ctx.set(dut.o.ready, take)
            before = ctx.get(dut.i.ready)
            await ctx.delay(1e-9)      # no clock edge: a combinational path would show here
            assert ctx.get(dut.i.ready) == before

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_bad_shape_is_rejected():
    with pytest.raises(TypeError, match="shape must be a shape-castable object, not 'wide'"):
        RegisterSlice("wide")
