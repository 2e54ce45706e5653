"""ByteGearbox: packets at any offset, re-cut into words of another width, every byte and strobe checked.

Small and without arithmetic: Amaranth's simulator drives it directly (the memory-mapped
top's cocotb tests exercise it again at both ends of the DMA).
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import ResetInserter, Signal
from amaranth.sim import Simulator

from attn_rtl.hdl.byte_gearbox import ByteGearbox


def _packets(rng, in_bytes: int, out_bytes: int, count: int):
    """``(bytes, offset, skip)`` per packet: its data, where it starts in its first input word, and
    the empty byte lanes before it in the first output word."""
    return [(rng.integers(0, 256, int(rng.integers(1, 5 * max(in_bytes, out_bytes)))).tolist(),
             int(rng.integers(0, in_bytes)), int(rng.integers(0, out_bytes))) for _ in range(count)]


def _beats(packet, in_bytes: int):
    """Input beats ``(data, lo, hi, skip, last)`` of one packet."""
    payload, offset, skip = packet
    stream = [0] * offset + payload
    words = -(-len(stream) // in_bytes)
    stream += [0] * (words * in_bytes - len(stream))
    beats = []
    for w in range(words):
        lo = offset if w == 0 else 0
        hi = min(in_bytes, offset + len(payload) - w * in_bytes)
        data = sum(b << (8 * j) for j, b in enumerate(stream[w * in_bytes:(w + 1) * in_bytes]))
        beats.append(dict(data=data, lo=lo, hi=hi, skip=skip, last=int(w == words - 1)))
    return beats


def _expected(packet, out_bytes: int):
    """Output words ``(data, strobe, last)`` of one packet."""
    payload, _, skip = packet
    lanes = [None] * skip + payload
    words = -(-len(lanes) // out_bytes)
    lanes += [None] * (words * out_bytes - len(lanes))
    out = []
    for w in range(words):
        chunk = lanes[w * out_bytes:(w + 1) * out_bytes]
        out.append((sum((b or 0) << (8 * j) for j, b in enumerate(chunk)),
                    sum(1 << j for j, b in enumerate(chunk) if b is not None), int(w == words - 1)))
    return out


def _run(in_bytes, out_bytes, seed, idle, stall, packets=40, reset_at=None):
    """Packets through the gearbox under random idle and backpressure; with ``reset_at`` a first set
    of packets is cut by a reset at that cycle, and only the packets sent after it are returned."""
    rng = np.random.default_rng(seed)
    dut = ByteGearbox(in_bytes=in_bytes, out_bytes=out_bytes)
    reset = Signal()
    top = ResetInserter({"sync": reset})(dut)
    before = _packets(rng, in_bytes, out_bytes, packets) if reset_at is not None else []
    plan = _packets(rng, in_bytes, out_bytes, packets)
    got = []

    async def feed(ctx, packets, stop_at=None):
        beats = [b for p in packets for b in _beats(p, in_bytes)]
        at, cycle, quiet = 0, 0, 0
        # A beat may sit in the gearbox without a word to send yet: drain until it is quiet a while.
        while at < len(beats) or quiet < 4:
            quiet = 0 if ctx.get(dut.o.valid) or at < len(beats) else quiet + 1
            if cycle == stop_at:
                return
            offer = at < len(beats) and rng.random() >= idle
            take = rng.random() >= stall
            ctx.set(dut.i.valid, offer)
            if offer:
                for field, value in beats[at].items():
                    ctx.set(getattr(dut.i.payload, field), value)
            ctx.set(dut.o.ready, take)
            i_ready, o_valid = ctx.get(dut.i.ready), ctx.get(dut.o.valid)
            word = (ctx.get(dut.o.payload.data), ctx.get(dut.o.payload.strobe), ctx.get(dut.o.payload.last))
            await ctx.tick()
            at += offer and i_ready
            if take and o_valid:
                got.append(word)
            cycle += 1
            assert cycle < 50 * len(beats) + 100, "the gearbox stopped"

    async def bench(ctx):
        if before:
            await feed(ctx, before, stop_at=reset_at)
            ctx.set(dut.i.valid, 0)
            ctx.set(reset, 1)
            await ctx.tick()
            ctx.set(reset, 0)
            got.clear()
        await feed(ctx, plan)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return plan, got


@pytest.mark.parametrize("in_bytes, out_bytes", [(8, 8), (8, 3), (4, 8), (16, 5), (1, 1), (3, 7)])
@pytest.mark.parametrize("seed, idle, stall", [(1, 0.0, 0.0), (2, 0.3, 0.4)])
def test_every_byte_and_strobe(in_bytes, out_bytes, seed, idle, stall):
    print(f"seed {seed}")
    plan, got = _run(in_bytes, out_bytes, seed, idle, stall)
    assert got == [w for p in plan for w in _expected(p, out_bytes)]


def test_full_rate_when_output_is_wider():
    """Back-to-back packets of whole words: one output word per cycle plus a cycle per packet."""
    dut = ByteGearbox(in_bytes=8, out_bytes=8)
    beats = [dict(data=w, lo=0, hi=8, skip=0, last=int(w % 4 == 3)) for w in range(40)]
    sent_at = []

    async def bench(ctx):
        at, cycle = 0, 0
        ctx.set(dut.o.ready, 1)
        while len(sent_at) < 40:
            ctx.set(dut.i.valid, at < len(beats))
            if at < len(beats):
                for field, value in beats[at].items():
                    ctx.set(getattr(dut.i.payload, field), value)
            i_ready, o_valid = ctx.get(dut.i.ready), ctx.get(dut.o.valid)
            await ctx.tick()
            at += at < len(beats) and i_ready
            if o_valid:
                sent_at.append(cycle)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert sent_at[-1] - sent_at[0] <= 40 + 10


@pytest.mark.parametrize("reset_at", [3, 9, 20])
def test_reset_in_the_middle_then_clean_packets(reset_at):
    plan, got = _run(8, 3, 7, 0.2, 0.2, packets=10, reset_at=reset_at)
    assert got == [w for p in plan for w in _expected(p, 3)]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_bad_widths_are_rejected():
    with pytest.raises(ValueError, match="in_bytes must be a positive integer, not 0"):
        ByteGearbox(in_bytes=0, out_bytes=8)
