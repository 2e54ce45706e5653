"""cocotb testbench of :class:`attn_rtl.hdl.sparse_scheduler.SparseScheduler` against ``attn_rtl.sim.sparse.scheduled_tiles``.

``cfg["runs"]`` lists runs, each a pattern (``attn_rtl.sim.sparse.SparsePattern.to_dict``)
with ``seq_len`` and ``heads`` (and, for decoder runs, ``query_len`` and ``group``).  For each run the testbench sets the runtime
registers, pulses ``start``, takes the tile stream with random backpressure
and compares every field of every tile (block, key indices, count, first,
last, run_end and each mask bit) with the golden schedule.  A run with ``expect_error`` must
raise ``error`` and not start.  With ``reset_mid`` the first run is cut by a
reset and then run again in full.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock

from attn_rtl.hdl.sparse_scheduler import SparseScheduler
from attn_rtl.sim.sparse import SparsePattern, pattern_from_dict, register_values, scheduled_tiles, walk_range

from .harness import begin, start_run
from .streams import Control, StreamBench, StreamSink

SCHEDULER_PARAMS = ("rows", "cols", "max_seq_len", "max_heads", "max_dilation", "max_globals", "sparse")


def decode(beats, layout, rows: int, cols: int) -> dict:
    """Fields of the packed tile beats, vectorized over beats."""
    words = np.array(beats, dtype=object)
    out = {}
    for name, field in layout:
        width = field.width
        values = (words >> field.offset) & ((1 << width) - 1)
        if name == "keys":
            lane = width // cols
            out[name] = np.array([[(w >> (c * lane)) & ((1 << lane) - 1) for c in range(cols)] for w in values.tolist()],
                                 dtype=np.int64).reshape(-1, cols)
        elif name == "mask":
            bits = [[(values >> (r * cols + c)) & 1 for c in range(cols)] for r in range(rows)]
            out[name] = np.array(bits, dtype=np.int64).transpose(2, 0, 1).astype(bool) if len(beats) else \
                np.zeros((0, rows, cols), bool)
        else:
            out[name] = values.astype(np.int64)
    return out


def walk_cycles(pattern: SparsePattern, seq_len: int, rows: int, query_len: int | None = None,
                group: int = 1) -> int:
    """Cycles the scheduler's walk takes for one head: per block three set-up cycles, the walk range
    and the global tokens."""
    blocks = -(-(seq_len if query_len is None else query_len) * group // rows)
    ranges = [walk_range(pattern, seq_len, rows, b, query_len=query_len, group=group) for b in range(blocks)]
    return sum(hi - lo + 3 + len(pattern.global_tokens) for lo, hi in ranges)


def registers(run: dict, pattern: SparsePattern, global_width: int) -> dict:
    values = dict(seq_len=run["seq_len"], query_len=run.get("query_len", run["seq_len"]), heads=run["heads"],
                  group=run.get("group", 1),
                  **register_values(pattern, run["max_globals"], global_width))
    return {**values, **run.get("registers", {})}   # error runs set out-of-range values here


@cocotb.test()
async def scheduler_runs(dut):
    cfg, report, rng = begin(dut, "runs")
    rows, cols = cfg["rows"], cfg["cols"]
    component = SparseScheduler(**{k: cfg[k] for k in SCHEDULER_PARAMS})
    component._MustUse__silence = True   # built only for its layout and figures
    layout = component.tile_layout
    global_width = max(1, (cfg["max_seq_len"] - 1).bit_length())

    Clock(dut.clk, 10, unit="ns").start()
    control = Control(dut)
    control.set(start=0, importance=0)
    sink = StreamSink(dut, "tiles", rng, stall=cfg["stall"])
    bench = StreamBench(dut, dut.clk, dut.rst, [control, sink])
    await bench.reset()

    cycles = []
    for index, run in enumerate(cfg["runs"]):
        run = dict(run, max_globals=cfg["max_globals"])
        pattern = pattern_from_dict(run["pattern"])
        control.set(**registers(run, pattern, global_width))
        if not await start_run(bench, control, report, component.config_latency, f"run {index} {run}",
                               run.get("expect_error", False)):
            continue
        shape = dict(query_len=run.get("query_len"), group=run.get("group", 1))
        expected = scheduled_tiles(pattern, run["seq_len"], rows, cols, run["heads"], **shape)
        candidates = run["heads"] * walk_cycles(pattern, run["seq_len"], rows, **shape)
        budget = int((2 * candidates + 4 * len(expected)) / (1.0 - cfg["stall"])) + component.setup_cycles + 100
        if index == 0 and cfg["reset_mid"]:
            await bench.step(max(1, candidates // 2))
            await bench.reset()
            sink.beats.clear()
            report.check(control.read("busy") == 0, "busy after a reset")
            control.set(**registers(run, pattern, global_width))
            await start_run(bench, control, report, component.config_latency, f"run {index} after a reset")
        begin_cycle = bench.cycle
        where = f"run {index} ({pattern.to_dict()}, L={run['seq_len']}, heads={run['heads']}, {shape})"
        try:
            await bench.run(lambda: control.read("done") == 1 and len(sink.beats) >= len(expected), budget)
        except AssertionError as timeout:
            raise AssertionError(f"{where}: {timeout}; {len(sink.beats)} of {len(expected)} tiles") from None
        await bench.step(4)
        cycles.append(bench.cycle - begin_cycle)
        got = decode(sink.beats, layout, rows, cols)
        sink.beats.clear()
        if len(got["block"]) != len(expected):
            report.check(False, f"{where}: {len(got['block'])} tiles, expected {len(expected)}")
            continue
        for name in ("block", "keys", "count", "first", "last", "run_end", "mask"):
            report.compare(f"{where} {name}", got[name], getattr(expected, name).astype(got[name].dtype))
    report.cycles = cycles[-1] if cycles else 0
    report.extra.update(cycles_per_run=cycles)
    report.finish()
