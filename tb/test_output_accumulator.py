"""cocotb testbench of :class:`attn_rtl.hdl.output_accumulator.OutputAccumulator` against
``attn_rtl.sim.accumulator_stream``, beat for beat.

The stimulus is a list of query blocks (``cfg["blocks"]``), each turned into the beats an engine
sends: key tiles, each cut into column chunks of ``lanes``, each chunk one beat per row of the
block, in the engine's order (tile, chunk, row) or row-major (tile, row, chunk: a word's beats
back to back, the read-after-write hazards at their densest).  Rescale factors, partial sums and
reciprocals are random (extremes on request); every lane of every output beat is compared.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock

from attn_rtl.sim.accumulator_stream import AccumulatorBeats, accumulator_stream
from attn_rtl.sim.golden import Numerics

from .harness import begin
from .packing import Fields, pack, unpack
from .streams import StreamBench, StreamSink, StreamSource


def block_beats(cfg, rng, block: dict, final: bool) -> AccumulatorBeats:
    """One block's beats: ``tiles`` key tiles of ``chunks`` chunks over all ``rows`` rows, of which the
    first ``rows_valid`` emit; partial sums bounded so that no accumulator can leave its range."""
    nm = Numerics.from_dict(cfg["numerics"])
    P, lanes, rows = nm.prob_frac_bits, cfg["lanes"], cfg["rows"]
    tiles, chunks = block["tiles"], block["chunks"]
    rows_valid, lanes_valid = block.get("rows_valid", rows), block.get("lanes_valid", lanes)
    if block.get("order", "engine") == "engine":
        t, c, r = np.meshgrid(np.arange(tiles), np.arange(chunks), np.arange(rows), indexing="ij")
    else:
        t, r, c = np.meshgrid(np.arange(tiles), np.arange(rows), np.arange(chunks), indexing="ij")
    t, c, r = t.ravel(), c.ravel(), r.ravel()
    n = len(t)
    # |A| stays below the bound: each tile adds at most `limit`, and a factor never exceeds 1.
    limit = min((1 << (cfg["partial_width"] - 1)) - 1, ((1 << (cfg["acc_width"] - 1)) - 1) // (tiles + 1))
    if block.get("partials") == "extreme":
        data = np.where(rng.random((n, lanes)) < 0.5, -limit, limit)
    else:
        data = rng.integers(-limit, limit, size=(n, lanes), endpoint=True)
    exp = np.where(rng.random(n) < 0.7, rng.integers(0, 4, size=n), rng.integers(0, 64, size=n))
    mant = rng.integers(1 << (P - 1), 1 << P, size=n, endpoint=True)
    identity = rng.random(n) < 0.2
    mant, exp = np.where(identity, 1 << P, mant), np.where(identity, 0, exp)
    chunk_last = c == chunks - 1
    block_end = chunk_last & (r == rows_valid - 1)
    return AccumulatorBeats(
        data=data, row=r, chunk=c, first=(t == 0).astype(int), last=(t == tiles - 1).astype(int),
        chunk_last=chunk_last.astype(int), scale_mant=mant, scale_exp=exp,
        lanes_valid=np.full(n, lanes_valid), emit=(r < rows_valid).astype(int), block_end=block_end.astype(int),
        run_end=(block_end & final).astype(int))


def build_stream(cfg, rng):
    """All blocks' beats in stream order, and their reciprocals (``rows`` per block)."""
    nm = Numerics.from_dict(cfg["numerics"])
    R = nm.recip_bits
    parts = [block_beats(cfg, rng, b, final=(i == len(cfg["blocks"]) - 1)) for i, b in enumerate(cfg["blocks"])]
    beats = AccumulatorBeats.concatenate(parts)
    rows, count = cfg["rows"], len(cfg["blocks"]) * cfg["rows"]
    # A row sum l gives r = floor(2^(R+e) / l) in (2^(R-1), 2^R], e = bit_length(l) - 1; an empty row (0, 0).
    # O is about A / 2^e: e near the bits of the block's largest |A| less the output's keeps most
    # outputs in range (as a real row sum does) and saturates some; a few e are anywhere.
    recip = rng.integers((1 << (R - 1)) + 1, 1 << R, size=count, endpoint=True)
    largest = [int(np.abs(p.data).max()) * b["tiles"] for p, b in zip(parts, cfg["blocks"]) for _ in range(rows)]
    near = np.array([v.bit_length() for v in largest]) - (nm.data_width - 1) + rng.integers(-1, 3, size=count)
    recip_exp = np.where(rng.random(count) < 0.15, rng.integers(0, cfg["sum_width"], size=count), near)
    recip_exp = np.clip(recip_exp, 0, cfg["sum_width"] - 1)
    empty = rng.random(count) < 0.05
    return beats, np.where(empty, 0, recip), np.where(empty, 0, recip_exp)


@cocotb.test()
async def accumulator_beats(dut):
    cfg, report, rng = begin(dut, "blocks")
    nm = Numerics.from_dict(cfg["numerics"])
    lanes = cfg["lanes"]
    partial_fields, recip_fields, out_fields = (Fields(cfg[name]) for name in
                                                ("partial_fields", "recip_fields", "out_fields"))

    Clock(dut.clk, 10, unit="ns").start()
    partials = StreamSource(dut, "partials", rng, idle=cfg["idle"])
    recips = StreamSource(dut, "recips", rng, idle=cfg["recip_idle"])
    out = StreamSink(dut, "out", rng, stall=cfg["stall"])
    bench = StreamBench(dut, dut.clk, dut.rst, [partials, recips, out])
    await bench.reset()

    def send(beats, recip, recip_exp):
        partials.send([partial_fields.pack(
            data=pack(beats.data[b], cfg["partial_width"]), row=beats.row[b], chunk=beats.chunk[b],
            first=beats.first[b], last=beats.last[b], chunk_last=beats.chunk_last[b],
            scale_mant=beats.scale_mant[b], scale_exp=beats.scale_exp[b], lanes_valid=beats.lanes_valid[b],
            emit=beats.emit[b], block_end=beats.block_end[b], run_end=beats.run_end[b]) for b in range(len(beats))])
        recips.send([recip_fields.pack(recip=r, recip_exp=e) for r, e in zip(recip, recip_exp)])

    slack = 1.0 / (1.0 - max(cfg["idle"], cfg["stall"]))
    if cfg["reset_mid"]:
        # Half a stream, then reset: nothing of it may come out; the stream after it starts clean.
        beats, recip, recip_exp = build_stream(cfg, rng)
        half = max(1, len(beats) // 2)
        send(beats.take(slice(0, half)), recip, recip_exp)
        await bench.run(lambda: partials.done, int(slack * half * cfg["recurrence"]) + 200)
        await bench.step(int(rng.integers(0, 20)))
        await bench.reset(3)
        out.beats.clear()
        out.first_accept_cycle = None
        partials.first_accept_cycle = recips.first_accept_cycle = None

    beats, recip, recip_exp = build_stream(cfg, rng)
    send(beats, recip, recip_exp)
    expected = accumulator_stream(beats, recip, recip_exp, rows=cfg["rows"], nm=nm, acc_width=cfg["acc_width"])
    n_out = len(expected.last)
    budget = int(4 * slack * len(beats) * cfg["recurrence"]) + 400
    await bench.run(lambda: len(out.beats) >= n_out and partials.done, budget)
    await bench.step(40)   # nothing more may come out
    report.check(len(out.beats) == n_out, f"{len(out.beats)} output beats, expected {n_out}")
    report.check(recips.done, f"{len(recips.queue)} reciprocals not taken")
    for i, word in enumerate(out.beats[:n_out]):
        got = out_fields.unpack(word)
        report.compare(f"out beat {i} data", unpack(got["data"], lanes, nm.data_width, signed=True),
                       expected.data[i])
        report.compare(f"out beat {i} (last, run_end)", np.array([got["last"], got["run_end"]]),
                       np.array([expected.last[i], expected.run_end[i]]))
    saturated = int((np.abs(expected.data) >= (1 << (nm.data_width - 1)) - 1).sum())
    # Outputs all saturated could hide a wrong accumulator: most must be in range.
    report.check(saturated <= expected.data.size // 2, f"{saturated} of {expected.data.size} outputs saturate")

    report.cycles = partials.last_accept_cycle - partials.first_accept_cycle + 1
    report.extra.update(beats=len(beats), outputs=n_out,
                        saturated=saturated,
                        first_out_delay=(out.first_accept_cycle - partials.first_accept_cycle) if out.beats else None)
    report.finish()
