"""cocotb testbench of :class:`attn_rtl.hdl.systolic_array.SystolicArray` against numpy matmul.

Configuration arrives as JSON in ``ATTN_TB_CONFIG`` (see :func:`attn_rtl.sim.runner.run_cocotb`);
the outcome (pass, mismatches, cycles) is written as JSON to ``ATTN_TB_REPORT``.
"""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from attn_rtl.sim.matmul import matmul

from .harness import begin, operand_matrix
from .packing import pack, unpack
from .streams import StreamBench, StreamSink, StreamSource


def _lanes(cfg) -> int:
    """Lanes of ``b``: a sliding build's tile lanes and its global lane (the last)."""
    return cfg["cols"] + cfg["rows"] if cfg.get("sliding", False) else cfg["cols"]


def _kinds(cfg) -> list[str]:
    """Each tile's kind: ``dense``, ``diagonal`` or ``stationary`` (default: the run's mode)."""
    default = "diagonal" if cfg.get("diagonal", False) else "dense"
    return list(cfg.get("kinds") or [default] * len(cfg["tiles"]))


def _tiles(cfg, rng):
    """One (A, B, kind, W) per entry of ``cfg["tiles"]`` (reduction lengths); B has every lane of ``b``
    (a sliding build's extra lanes are random in dense tiles too: they must be ignored).  A stationary
    tile holds the weights W (``rows``×``cols``) loaded on ``p`` for it (``cfg["loads"]``: whether it
    loads new ones) or for the last one that did; its A is random and must be ignored."""
    rows, cols = cfg["rows"], cfg["cols"]
    loads = cfg.get("loads") or [True] * len(cfg["tiles"])
    out, weights = [], None
    for depth, kind, load, global_column in zip(cfg["tiles"], _kinds(cfg), loads, _global_columns(cfg)):
        a = operand_matrix(rng, (rows, depth), cfg["a_width"], cfg["a_signed"], cfg["operands"])
        b = operand_matrix(rng, (depth, _lanes(cfg)), cfg["b_width"], cfg["b_signed"], cfg["operands"])
        new = kind == "stationary" and (load or weights is None)
        if new:
            weights = operand_matrix(rng, (rows, cols), cfg["a_width"], cfg["a_signed"], cfg["operands"])
        out.append((a, b, kind, weights if kind == "stationary" else None, new, global_column))
    return out


def _global_columns(cfg) -> list[bool]:
    return list(cfg.get("global_columns") or [False] * len(cfg["tiles"]))


def _beats(cfg, a, b, kind="dense", new_weights=False, global_column=False):
    depth, flags_at = a.shape[1], cfg["rows"] * cfg["a_width"]
    flags = ((int(kind == "diagonal") << 1) | (int(kind == "stationary") << 2)
             | (int(global_column) << 4)) << flags_at
    a_beats = [pack(a[:, k], cfg["a_width"]) | (int(k == depth - 1) << flags_at) | flags
               | (int(new_weights and k == 0) << (flags_at + 3)) for k in range(depth)]
    b_beats = [pack(b[k, :], cfg["b_width"]) for k in range(depth)]
    return a_beats, b_beats


def _expected(cfg, a, b, acc_width, acc_signed, kind="dense", weights=None, global_column=False):
    """``A·B`` over the first ``cols`` lanes; diagonal tiles: row ``i`` against lanes ``i … i + cols - 1``;
    stationary tiles of ``n`` steps: row ``i``, lane ``cols - n + k`` = ``Σ_j W[i, j]·B[k, i + j]``; with the
    global column, the last column's lane is the global lane (the last of ``b``) in every row."""
    rows, cols = cfg["rows"], cfg["cols"]
    if kind == "dense":
        return matmul(a, b[:, :cols], acc_width, acc_signed)

    def row_lanes(i):
        lanes = b[:, i:i + cols].copy()
        if global_column:
            lanes[:, cols - 1] = b[:, rows + cols - 1]
        return lanes
    if kind == "diagonal":
        return [matmul(a[i:i + 1], row_lanes(i), acc_width, acc_signed)[0] for i in range(rows)]
    return [matmul(weights[i:i + 1], row_lanes(i).T, acc_width, acc_signed)[0] for i in range(rows)]


@cocotb.test()
async def matmul_tiles(dut):
    cfg, report, rng = begin(dut, "tiles")
    Clock(dut.clk, 10, unit="ns").start()

    src_a = StreamSource(dut, "a", rng, idle=cfg["idle"])
    src_b = StreamSource(dut, "b", rng, idle=cfg["idle"])
    sink = StreamSink(dut, "c", rng, stall=cfg["stall"])
    streams = [src_a, src_b, sink]
    src_p = None
    if cfg.get("sliding", False):
        src_p = StreamSource(dut, "p", rng, idle=cfg["idle"])
        streams.append(src_p)
        dut.sliding.value = int(any(kind != "dense" for kind in _kinds(cfg)))
    bench = StreamBench(dut, dut.clk, dut.rst, streams)
    await bench.reset()

    rows, cols, acc_width = cfg["rows"], cfg["cols"], cfg["acc_width"]
    acc_signed = cfg["a_signed"] or cfg["b_signed"]
    slack = 1.0 / (1.0 - max(cfg["idle"], cfg["stall"]))
    budget = lambda beats: int(20 * slack * (beats + (rows + cols + 8) * (len(cfg["tiles"]) + 1))) + 200

    if cfg["reset_mid"]:
        # Half a tile, then reset: nothing of it may come out, the next tiles must be clean.
        # A stationary first tile: its weights whole (the reset comes mid-tile) or in part (the tile
        # waits for them; the reset must drop those received).
        first = {**cfg, "tiles": [max(2, cfg["tiles"][0])], "kinds": _kinds(cfg)[:1], "loads": [True],
                 "global_columns": _global_columns(cfg)[:1]}
        a, b, kind, weights, new, global_column = _tiles(first, rng)[0]
        a_beats, b_beats = _beats(cfg, a, b, kind, new, global_column)
        half = len(a_beats) // 2
        whole = not new or rng.random() < 0.5
        if new:
            src_p.send([pack(weights[:, j], cfg["a_width"]) for j in range(cols if whole else cols // 2)])
        src_a.send(a_beats[:half])
        src_b.send(b_beats[:half])
        await bench.run(lambda: src_a.done and src_b.done if whole else src_p.done, budget(half))
        await bench.step(rows + cols)
        await bench.reset(3)
        sink.beats.clear()

    if cfg.get("reset_from_sliding"):
        # A diagonal tile cut by a one-cycle reset at every cycle from its last step to its rows' drain, the
        # mode turned off with the reset (as the engine's is): the drain's loads of the dense mode must not
        # carry the cut tile's rows out afterwards.
        first = {**cfg, "tiles": [rows + 1], "kinds": ["diagonal"], "loads": [False], "global_columns": [False]}
        for offset in range(2 * rows + cols + 8):
            await FallingEdge(dut.clk)   # out of the bench's read-only phase
            dut.sliding.value = 1
            a, b, kind, weights, new, global_column = _tiles(first, rng)[0]
            a_beats, b_beats = _beats(cfg, a, b, kind, new, global_column)
            src_a.send(a_beats)
            src_b.send(b_beats)
            await bench.run(lambda: src_a.done and src_b.done, budget(len(a_beats)))
            await bench.step(offset)
            await bench.reset(1)
            await FallingEdge(dut.clk)
            dut.sliding.value = 0
            sink.beats.clear()
            await bench.step(2 * rows + cols + 8)
            report.check(not sink.beats, f"a reset {offset} cycles after a diagonal tile's last step: "
                                         f"{len(sink.beats)} rows of it came out")
            sink.beats.clear()

    tiles = _tiles(cfg, rng)
    for a, b, kind, weights, new, global_column in tiles:
        a_beats, b_beats = _beats(cfg, a, b, kind, new, global_column)
        if new:
            src_p.send([pack(weights[:, j], cfg["a_width"]) for j in range(cols)])
        src_a.send(a_beats)
        src_b.send(b_beats)
    total_beats = sum(t[0].shape[1] for t in tiles)
    await bench.run(lambda: len(sink.beats) >= rows * len(tiles), budget(total_beats))

    for t, (a, b, kind, weights, _, global_column) in enumerate(tiles):
        expected = _expected(cfg, a, b, acc_width, acc_signed, kind, weights, global_column)
        lanes = range(cols - a.shape[1], cols) if kind == "stationary" else range(cols)
        for i in range(rows):
            word = sink.beats[t * rows + i]
            got = unpack(word, cols, acc_width, acc_signed)
            last = (word >> (cols * acc_width)) & 1
            report.compare(f"tile {t} ({kind}) row {i}", [got[j] for j in lanes], expected[i])
            report.check(last == int(i == rows - 1), f"tile {t} row {i}: last={last}, expected {int(i == rows - 1)}")

    report.cycles = sink.last_accept_cycle - src_a.first_accept_cycle + 1
    report.extra["macs"] = int(sum(rows * cols * t[0].shape[1] for t in tiles))
    report.finish()
