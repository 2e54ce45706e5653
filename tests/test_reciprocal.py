"""The pipelined reciprocal (Amaranth simulation) against the golden model's section 6 reciprocal."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from attn_rtl.hdl.reciprocal import Reciprocal
from attn_rtl.sim import golden
from attn_rtl.sim.golden import Numerics


@pytest.mark.parametrize("recip_bits", [2, 12, 16])
@pytest.mark.parametrize("width", [1, 3, 4, 5, 13, 24])
def test_every_row_sum_back_to_back_matches_the_golden_reciprocal(width, recip_bits):
    """One row sum per cycle: zero, one, the largest, every power of two and its neighbours, random values
    (seed printed); each (r, e) leaves ``latency`` cycles later."""
    seed = width * 100 + recip_bits
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    top = (1 << width) - 1
    edges = [0, 1, top] + [v for b in range(width) for v in ((1 << b) - 1, 1 << b, (1 << b) + 1) if v <= top]
    sums = np.array(edges + list(rng.integers(0, top + 1, 150)), dtype=np.int64)
    dut = Reciprocal(width=width, recip_bits=recip_bits)
    got = []

    async def bench(ctx):
        for cycle in range(len(sums) + dut.latency):
            ctx.set(dut.row_sum, int(sums[cycle]) if cycle < len(sums) else 0)
            await ctx.tick()
            if 0 <= cycle + 1 - dut.latency < len(sums):
                got.append((ctx.get(dut.recip), ctx.get(dut.exp)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    want_r, want_e = golden.reciprocal(sums, Numerics(recip_bits=recip_bits))
    assert np.array_equal(np.array(got), np.stack([want_r, want_e], axis=1)), f"seed {seed}"
