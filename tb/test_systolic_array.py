"""cocotb testbench of :class:`attn_rtl.hdl.systolic_array.SystolicArray` against numpy matmul.

Configuration arrives as JSON in ``ATTN_TB_CONFIG`` (see :func:`attn_rtl.sim.runner.run_cocotb`);
the outcome (pass, mismatches, cycles) is written as JSON to ``ATTN_TB_REPORT``.
"""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock

from attn_rtl.sim.matmul import matmul

from .harness import begin, operand_matrix
from .packing import pack, unpack
from .streams import StreamBench, StreamSink, StreamSource


def _lanes(cfg) -> int:
    return cfg["cols"] + cfg["rows"] - 1 if cfg.get("sliding", False) else cfg["cols"]


def _tiles(cfg, rng):
    """One (A, B) pair per entry of ``cfg["tiles"]`` (reduction lengths); B has every lane of ``b``
    (a sliding build's extra lanes are random in dense tiles too: they must be ignored)."""
    rows = cfg["rows"]
    out = []
    for depth in cfg["tiles"]:
        a = operand_matrix(rng, (rows, depth), cfg["a_width"], cfg["a_signed"], cfg["operands"])
        b = operand_matrix(rng, (depth, _lanes(cfg)), cfg["b_width"], cfg["b_signed"], cfg["operands"])
        out.append((a, b))
    return out


def _beats(cfg, a, b):
    depth, flags_at = a.shape[1], cfg["rows"] * cfg["a_width"]
    diagonal = int(cfg.get("diagonal", False)) << (flags_at + 1)
    a_beats = [pack(a[:, k], cfg["a_width"]) | (int(k == depth - 1) << flags_at) | diagonal for k in range(depth)]
    b_beats = [pack(b[k, :], cfg["b_width"]) for k in range(depth)]
    return a_beats, b_beats


def _expected(cfg, a, b, acc_width, acc_signed):
    """``A·B`` over the first ``cols`` lanes; diagonal tiles: row ``i`` against lanes ``i … i + cols - 1``."""
    cols = cfg["cols"]
    if not cfg.get("diagonal", False):
        return matmul(a, b[:, :cols], acc_width, acc_signed)
    return [matmul(a[i:i + 1], b[:, i:i + cols], acc_width, acc_signed)[0] for i in range(cfg["rows"])]


@cocotb.test()
async def matmul_tiles(dut):
    cfg, report, rng = begin(dut, "tiles")
    Clock(dut.clk, 10, unit="ns").start()

    src_a = StreamSource(dut, "a", rng, idle=cfg["idle"])
    src_b = StreamSource(dut, "b", rng, idle=cfg["idle"])
    sink = StreamSink(dut, "c", rng, stall=cfg["stall"])
    bench = StreamBench(dut, dut.clk, dut.rst, [src_a, src_b, sink])
    if cfg.get("sliding", False):
        dut.sliding.value = int(cfg.get("diagonal", False))
    await bench.reset()

    rows, cols, acc_width = cfg["rows"], cfg["cols"], cfg["acc_width"]
    acc_signed = cfg["a_signed"] or cfg["b_signed"]
    slack = 1.0 / (1.0 - max(cfg["idle"], cfg["stall"]))
    budget = lambda beats: int(20 * slack * (beats + (rows + cols + 8) * (len(cfg["tiles"]) + 1))) + 200

    if cfg["reset_mid"]:
        # Half a tile, then reset: nothing of it may come out, the next tiles must be clean.
        a, b = _tiles({**cfg, "tiles": [max(2, cfg["tiles"][0])]}, rng)[0]
        a_beats, b_beats = _beats(cfg, a, b)
        half = len(a_beats) // 2
        src_a.send(a_beats[:half])
        src_b.send(b_beats[:half])
        await bench.run(lambda: src_a.done and src_b.done, budget(half))
        await bench.step(rows + cols)
        await bench.reset(3)
        sink.beats.clear()

    tiles = _tiles(cfg, rng)
    for a, b in tiles:
        a_beats, b_beats = _beats(cfg, a, b)
        src_a.send(a_beats)
        src_b.send(b_beats)
    total_beats = sum(t[0].shape[1] for t in tiles)
    await bench.run(lambda: len(sink.beats) >= rows * len(tiles), budget(total_beats))

    for t, (a, b) in enumerate(tiles):
        expected = _expected(cfg, a, b, acc_width, acc_signed)
        for i in range(rows):
            word = sink.beats[t * rows + i]
            got = unpack(word, cols, acc_width, acc_signed)
            last = (word >> (cols * acc_width)) & 1
            report.compare(f"tile {t} row {i}", got, expected[i])
            report.check(last == int(i == rows - 1), f"tile {t} row {i}: last={last}, expected {int(i == rows - 1)}")

    report.cycles = sink.last_accept_cycle - src_a.first_accept_cycle + 1
    report.extra["macs"] = int(sum(rows * cols * a.shape[1] for a, _ in tiles))
    report.finish()
