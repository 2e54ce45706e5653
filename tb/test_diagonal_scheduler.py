"""cocotb testbench of :class:`attn_rtl.hdl.diagonal_scheduler.DiagonalScheduler` against
``attn_rtl.sim.sliding.diagonal_tiles``.

``cfg["runs"]`` lists runs, each a pattern (``attn_rtl.sim.sparse.SparsePattern.to_dict``) with
``seq_len`` and ``heads``.  For each run the testbench sets the runtime registers, pulses ``start``,
takes the tile stream with random backpressure and compares every field of every tile (block, first
query, real rows, base, mask, keep, global column and key, global block, first, last, run_end) with the
model's tiling, head after head.  A run with ``expect_error`` must raise ``error`` and not start
(``registers`` overrides the pattern's register values).  With ``reset_mid`` the first run is cut by a
reset and then run again in full.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock

from attn_rtl.hdl.diagonal_scheduler import DiagonalScheduler
from attn_rtl.sim.sliding import computed_rows, diagonal_tiles
from attn_rtl.sim.sparse import pattern_from_dict, register_values

from .harness import begin, start_run
from .streams import Control, StreamBench, StreamSink

PARAMS = ("rows", "cols", "max_seq_len", "max_heads", "max_dilation", "max_globals", "global_row")
REGISTERS = ("pattern", "window", "dilation", "grid_h", "grid_w", "window_h", "window_w", "global_count",
             "global_tokens")
FIELDS = ("block", "q0", "real", "queries", "emit", "base", "mask", "keep", "global_column", "global_key",
          "global_block", "first", "last", "run_end", "self_rows", "self_column", "global_new", "head_first",
          "head_last")


def decode(beats, layout) -> dict:
    """Each field of the packed tile beats as integers (``base`` signed)."""
    out = {}
    for name, field in layout:
        width = field.width
        values = [(w >> field.offset) & ((1 << width) - 1) for w in beats]
        if name == "base":
            values = [v - (1 << width) if v >> (width - 1) else v for v in values]
        out[name] = values
    return out


def expected_tiles(pattern, seq_len: int, heads: int, rows: int, cols: int, global_row: int = 0) -> dict:
    """The model's tiles of ``heads`` heads, as the scheduler sends them (``self_column`` -1 where the tile has
    no self row: any value is right there)."""
    tiles = diagonal_tiles(pattern, seq_len, rows, cols, global_row=global_row)
    n = len(tiles)
    block = tiles.block
    first = np.ones(n, bool)
    first[1:] = block[1:] != block[:-1]
    last = np.ones(n, bool)
    last[:-1] = block[:-1] != block[1:]
    emit = np.array([computed_rows(tiles, b) for b in range(len(tiles.queries))]).reshape(-1, rows)
    one = dict(block=block, q0=tiles.queries[block, 0], real=tiles.queries[block] >= 0,
               queries=np.maximum(tiles.queries[block], 0), emit=emit[block], base=tiles.base,
               mask=tiles.mask, keep=tiles.keep, global_column=tiles.global_key >= 0,
               global_key=np.maximum(tiles.global_key, 0), global_block=tiles.global_block[block], first=first,
               last=last, self_rows=tiles.self_rows, global_new=tiles.global_owner,
               self_column=np.where(tiles.self_rows.any(axis=1), tiles.self_column, -1),
               head_first=np.arange(n) == 0, head_last=np.arange(n) == n - 1)
    out = {name: np.concatenate([value] * heads) for name, value in one.items()}
    out["run_end"] = np.zeros(n * heads, bool)
    out["run_end"][-1] = True
    return out


@cocotb.test()
async def scheduler_runs(dut):
    cfg, report, rng = begin(dut, "runs")
    rows, cols = cfg["rows"], cfg["cols"]
    component = DiagonalScheduler(**{k: cfg[k] for k in PARAMS})
    component._MustUse__silence = True   # built only for its layout and figures
    layout = component.tile_layout
    lanes = component.lanes

    Clock(dut.clk, 10, unit="ns").start()
    control = Control(dut)
    control.set(start=0)
    sink = StreamSink(dut, "tiles", rng, stall=cfg["stall"])
    bench = StreamBench(dut, dut.clk, dut.rst, [control, sink])
    await bench.reset()

    token_bits = max(1, (cfg["max_seq_len"] - 1).bit_length())   # the list's entries, range(max_seq_len)

    def set_registers(run, pattern):
        values = register_values(pattern, cfg["max_globals"], token_bits)
        values = {name: values.get(name, 0) for name in REGISTERS}
        row = {"global_row": run.get("global_row", 0)} if cfg["global_row"] else {}
        control.set(**{"seq_len": run["seq_len"], "heads": run["heads"], **row, **values, **run.get("registers", {})})

    cycles = []
    for index, run in enumerate(cfg["runs"]):
        pattern = pattern_from_dict(run["pattern"])
        set_registers(run, pattern)
        if not await start_run(bench, control, report, component.config_latency, f"run {index} {run}",
                               run.get("expect_error", False)):
            continue
        expected = expected_tiles(pattern, run["seq_len"], run["heads"], rows, cols, run.get("global_row", 0))
        count = len(expected["block"])
        candidates = count * 5 + run["heads"] * run["seq_len"] * 64
        budget = int(5 * candidates / (1.0 - cfg["stall"])) + component.setup_cycles + 100
        if index == 0 and cfg["reset_mid"]:
            await bench.step(max(1, count))
            await bench.reset()
            sink.beats.clear()
            report.check(control.read("busy") == 0, "busy after a reset")
            set_registers(run, pattern)
            await start_run(bench, control, report, component.config_latency, f"run {index} after a reset")
        begin_cycle = bench.cycle
        where = f"run {index} ({pattern.to_dict()}, L={run['seq_len']}, heads={run['heads']})"
        try:
            await bench.run(lambda: control.read("done") == 1 and len(sink.beats) >= count, budget)
        except AssertionError as timeout:
            raise AssertionError(f"{where}: {timeout}; {len(sink.beats)} of {count} tiles") from None
        await bench.step(4)
        cycles.append(bench.cycle - begin_cycle)
        got = decode(sink.beats, layout)
        sink.beats.clear()
        if len(got["block"]) != count:
            report.check(False, f"{where}: {len(got['block'])} tiles, expected {count}")
            continue
        got["mask"] = [[[(w >> (r * cols + c)) & 1 for c in range(cols)] for r in range(rows)] for w in got["mask"]]
        for name in ("real", "emit", "self_rows")[:3 if "self_rows" in got else 2]:
            got[name] = [[(w >> r) & 1 for r in range(rows)] for w in got[name]]
        query_bits = layout["queries"].width // rows
        got["queries"] = [[(w >> (r * query_bits)) & ((1 << query_bits) - 1) for r in range(rows)]
                          for w in got["queries"]]
        got["keep"] = [[(w >> u) & 1 for u in range(lanes)] for w in got["keep"]]
        if "self_column" in got:   # (a build with the global row)
            got["self_column"] = np.where(np.asarray(expected["self_column"]) < 0, -1, got["self_column"])
        for name in (f for f in FIELDS if f in got):
            report.compare(f"{where} {name}", np.array(got[name], np.int64), expected[name].astype(np.int64))
    report.cycles = cycles[-1] if cycles else 0
    report.extra.update(cycles_per_run=cycles)
    report.finish()
