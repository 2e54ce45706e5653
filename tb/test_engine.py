"""cocotb testbench of :class:`attn_rtl.hdl.engine.AttentionEngine` against ``attn_rtl.sim.engine_stream``, beat for beat.

``cfg["runs"]`` lists the runs, each with ``heads``, ``seq_len``, ``head_dim``
and an operand kind (decoder runs add ``kv_heads`` and ``query_len``: Q of
``heads × query_len``, K and V of ``kv_heads × seq_len``, the queries stacked
per K/V head as docs/engine.md says); the testbench starts each run, streams Q, K and V in the
documented order with random idle cycles, takes O with random backpressure,
and compares every output element and ``last`` flag with the golden model.
With ``reset_mid`` the first run is cut by a reset halfway and then run again.
Cycles are counted from the first input beat accepted to the last output beat.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock

from attn_rtl.sim.decoder import stack_queries, unstack_queries
from attn_rtl.sim.engine_stream import (
    engine_beats,
    engine_output,
    flag_beats,
    importance_beats,
    output_beats,
    output_from_beats,
    ranked_output,
    row_flags,
    useful_macs,
)
from attn_rtl.sim.golden import Numerics
from attn_rtl.sim.sliding import diagonal_tiles, sliding_beats, sliding_output
from attn_rtl.sim.sliding import output_from_beats as diagonal_output_from_beats
from attn_rtl.sim.sparse import allowed_mask, pattern_from_dict, register_values, scheduled_tiles

from .harness import begin, operand_matrix
from .packing import pack, unpack
from .streams import Control, StreamBench, StreamSink, StreamSource


def run_operands(rng, run: dict, width: int):
    """Q of ``heads × query_len`` rows (default ``seq_len``), K and V of ``kv_heads × seq_len`` (default
    ``heads``)."""
    shapes = [(run["heads"], run.get("query_len", run["seq_len"]), run["head_dim"])] + \
        [(run.get("kv_heads", run["heads"]), run["seq_len"], run["head_dim"])] * 2
    if "operands_file" in run:
        with np.load(run["operands_file"]) as f:
            return [f[name].reshape(shape) for name, shape in zip("qkv", shapes)]
    kind = run.get("operands", "random")
    return [operand_matrix(rng, shape, width, True, kind) for shape in shapes]


class TlastSink(StreamSink):
    """Takes ``m_axis_<name>`` with backpressure, recording ``tlast`` (and ``tkeep``, ``tuser`` when asked)
    per beat."""

    def __init__(self, dut, name, rng, stall, *, keep: bool = False, user: bool = False):
        super().__init__(dut, name, rng, stall=stall, axis=f"m_axis_{name}")
        self.last_handle = getattr(dut, f"m_axis_{name}_tlast")
        self.keep_handle = getattr(dut, f"m_axis_{name}_tkeep") if keep else None
        self.user_handle = getattr(dut, f"m_axis_{name}_tuser") if user else None
        self.flags, self.keep, self.user = [], [], []

    def sample(self, cycle: int) -> None:
        taken = len(self.beats)
        super().sample(cycle)
        if len(self.beats) > taken:
            self.flags.append(int(self.last_handle.value))
            if self.keep_handle is not None:
                self.keep.append(int(self.keep_handle.value))
            if self.user_handle is not None:
                self.user.append(int(self.user_handle.value))

    def clear(self) -> None:
        self.beats.clear()
        self.flags.clear()
        self.keep.clear()
        self.user.clear()


class TlastMonitor:
    """Records ``m_axis_o_tlast`` of every accepted output beat."""

    def __init__(self, dut):
        self.dut, self.flags = dut, []

    def drive(self, cycle: int) -> None:
        pass

    def sample(self, cycle: int) -> None:
        if int(self.dut.m_axis_o_tvalid.value) and int(self.dut.m_axis_o_tready.value):
            self.flags.append(int(self.dut.m_axis_o_tlast.value))


@cocotb.test()
async def engine_runs(dut):
    cfg, report, rng = begin(dut, "runs")
    nm = Numerics.from_dict(cfg["numerics"])
    rows, cols, w = cfg["rows"], cfg["cols"], nm.data_width

    Clock(dut.aclk, 10, unit="ns").start()
    control = Control(dut, prefix="ctrl_")
    control.set(start=0)
    sources = {name: StreamSource(dut, name, rng, idle=cfg["idle"], axis=f"s_axis_{name}") for name in "qkv"}
    sink = StreamSink(dut, "o", rng, stall=cfg["stall"], axis="m_axis_o")
    last_flags = TlastMonitor(dut)
    sparse = cfg["sparse"]
    sliding = cfg.get("sliding", False)
    kv_index = TlastSink(dut, "kv_index", rng, cfg["stall"], keep=True, user=sliding) if sparse else None
    ranking = cfg["importance"]
    ranks = {name: TlastSink(dut, name, rng, cfg["stall"]) for name in ("token_importance", "head_importance")} \
        if ranking else {}
    progressive = cfg["row_flags"]
    if progressive:
        ranks["row_flags"] = TlastSink(dut, "row_flags", rng, cfg["stall"])
    bench = StreamBench(dut, dut.aclk, dut.aresetn,
                        [control, *sources.values(), sink, last_flags, *([kv_index] if sparse else []),
                         *ranks.values()],
                        reset_active_low=True, quiet_in_reset=True)
    global_width = max(1, (cfg["max_seq_len"] - 1).bit_length())
    await bench.reset(latency=cfg["reset_latency"])

    async def start(run):
        # Runs without a decoder shape leave query_len and kv_heads at 0, which stand for seq_len and heads.
        control.set(seq_len=run["seq_len"], heads=run["heads"], head_dim=run["head_dim"],
                    kv_heads=run.get("kv_heads", 0), query_len=run.get("query_len", 0),
                    scale_mult=cfg["scale_mult"], scale_shift=cfg["scale_shift"])
        if sparse:
            pattern = pattern_from_dict(run.get("pattern", {"pattern": "dense"}))
            control.set(**register_values(pattern, cfg["max_globals"], global_width))
        if sliding:
            control.set(diagonal=int(run.get("diagonal", False)))
        if ranking:
            control.set(importance=int(run.get("importance", False)))
        if progressive:
            control.set(threshold=run.get("threshold", 0))
        control.pulse("start")
        await bench.step(2)
        report.check(control.read("busy") == 1 and control.read("error") == 0,
                     f"run {run} did not start (busy {control.read('busy')}, error {control.read('error')})")

    def send(beats):
        for name in ("q", "k", "v"):
            sources[name].send([pack(b, w) for b in getattr(beats, name)])

    slack = 1.0 / (1.0 - max(cfg["idle"], cfg["stall"]))
    results, captured = [], {}
    for index, run in enumerate(cfg["runs"]):
        q_heads, k, v = run_operands(rng, run, w)
        kv_heads, query_len = run.get("kv_heads", run["heads"]), run.get("query_len", run["seq_len"])
        q = stack_queries(q_heads, kv_heads)   # the group's heads share every K/V beat
        shape = dict(query_len=query_len, group=run["heads"] // kv_heads)
        pattern = pattern_from_dict(run.get("pattern", {"pattern": "dense"}))
        mask = None if pattern.is_dense else allowed_mask(pattern, run["seq_len"], **shape)
        schedule = scheduled_tiles(pattern, run["seq_len"], rows, cols, **shape)
        ranked = bool(run.get("importance", False))
        if ranked:
            schedule = None   # dense, and every block's K twice
        diagonal = bool(run.get("diagonal", False))
        if diagonal:   # the diagonal tiles' streams (attn_rtl.sim.sliding)
            tiling = diagonal_tiles(pattern, run["seq_len"], rows, cols,
                                    global_row=int(cfg.get("global_row", False)))
            o_diagonal = sliding_output(q, k, v, cfg["scale_mult"], cfg["scale_shift"], nm, tiling)
            beats = sliding_beats(q, k, v, o_diagonal, tiling)
        else:
            beats = engine_beats(q, k, v, rows, cols, schedule, importance=ranked)
        steps = len(beats.k) + len(beats.v)
        # A third of a step per cycle, and a softmax round trip per few tiles where tiles are short
        # (one-step tiles on a 1x1 array spend about 12 cycles each).
        tiles = len(beats.k) // run["head_dim"]
        budget = int(slack * (3 * (steps + len(beats.q)) + 32 * tiles)) + 2000
        if index == 0 and cfg["reset_mid"]:
            await start(run)
            send(beats)
            await bench.step(int(rng.integers(steps // 4, steps // 2 + 2)))
            # One cycle is the hard case: the reset copies hold the units in reset for a cycle
            # after it, while their state is still the run's; the sources keep offering beats
            # through it, and the ports must take none (StreamBench's quiet_in_reset check).
            await bench.reset(int(rng.integers(1, 4)), latency=cfg["reset_latency"], flush=False)
            bench.flush()
            sink.beats.clear()
            last_flags.flags.clear()
            if sparse:
                kv_index.clear()
            for rank_sink in ranks.values():
                rank_sink.clear()
            await bench.step(1)   # the reset's last edge has passed: the state shows it
            report.check(control.read("busy") == 0, "busy after reset")
        for s in (*sources.values(), sink):
            s.first_accept_cycle = s.last_accept_cycle = None
        sink.beats.clear()
        last_flags.flags.clear()
        await start(run)
        send(beats)
        if diagonal:
            expected, last = beats.o, beats.o_last
        else:
            if ranked:
                golden = ranked_output(q, k, v, cfg["scale_mult"], cfg["scale_shift"], nm, cols)
                o_expected = golden.o
            else:
                o_expected = engine_output(q, k, v, cfg["scale_mult"], cfg["scale_shift"], nm, cols, mask,
                                           schedule=schedule, rows=rows)
            expected, last = output_beats(o_expected, rows, cols)
        try:
            await bench.run(lambda: len(sink.beats) >= len(expected) and control.read("done") == 1, budget)
        except AssertionError as timeout:
            raise AssertionError(f"run {index} {run}: {timeout}; {len(sink.beats)} of {len(expected)} output "
                                 f"beats; mismatches so far: {report.mismatches[:3]}") from None
        await bench.step(20)   # nothing more may come out
        report.check(len(sink.beats) == len(expected), f"run {index}: {len(sink.beats)} output beats, "
                                                       f"expected {len(expected)}")
        got = np.array([unpack(b, cols, w, True) for b in sink.beats[:len(expected)]])
        got_last = np.array(last_flags.flags[:len(expected)])
        report.compare(f"run {index} o", got.reshape(expected.shape), expected)
        report.compare(f"run {index} last", got_last, last.astype(np.int64))
        if diagonal:   # the index stream of the diagonal tiles: lanes' keys and keep bits, the block's queries
            lane_bits = max(1, (cfg["max_seq_len"] - 1).bit_length())
            lanes = rows + cols
            got_keys = np.array([[(int(word) >> (u * lane_bits)) & ((1 << lane_bits) - 1) for u in range(lanes)]
                                 for word in kv_index.beats], np.int64).reshape(-1, lanes)
            report.compare(f"run {index} kv_index keys", got_keys, beats.kv_keys)
            report.compare(f"run {index} kv_index keep", np.array(kv_index.keep, np.int64),
                           np.array([pack(keep, 1) for keep in beats.kv_keep], np.int64))
            members = tiling.queries[tiling.block]
            opens = np.r_[True, tiling.block[1:] != tiling.block[:-1]]
            user = [pack(np.maximum(queries, 0), lane_bits) | (pack(queries >= 0, 1) << (rows * lane_bits))
                    | (int(first) << (rows * lane_bits + rows)) for queries, first in zip(members, opens)]
            report.compare(f"run {index} kv_index user", np.array(kv_index.user, dtype=object),
                           np.array(user * run["heads"], dtype=object))
            report.compare(f"run {index} kv_index last", np.array(kv_index.flags, np.int64),
                           np.tile(np.r_[opens[1:], True], run["heads"]).astype(np.int64))
            kv_index.clear()
        elif sparse:   # the index stream a DMA follows: every scheduled tile of every K/V head and block
            heads = kv_heads
            lane_bits = max(1, (cfg["max_seq_len"] - 1).bit_length())
            words = np.array(kv_index.beats, dtype=object)
            got_keys = np.array([[(int(word) >> (c * lane_bits)) & ((1 << lane_bits) - 1) for c in range(cols)]
                                 for word in words], np.int64).reshape(-1, cols)
            thermometer = (1 << np.tile(schedule.count, heads)) - 1
            report.compare(f"run {index} kv_index keys", got_keys, np.tile(schedule.keys, (heads, 1)))
            report.compare(f"run {index} kv_index keep", np.array(kv_index.keep, np.int64), thermometer)
            report.compare(f"run {index} kv_index last", np.array(kv_index.flags, np.int64),
                           np.tile(schedule.last, heads).astype(np.int64))
            kv_index.clear()
        if ranked:
            token_words = importance_beats(golden.tokens, cols)
            sinks = ranks["token_importance"], ranks["head_importance"]
            width = cfg["token_importance_width"]
            got_tokens = np.array([unpack(b, cols, width, False) for b in sinks[0].beats], np.int64)
            report.compare(f"run {index} token importance", got_tokens.reshape(-1, cols), token_words)
            report.compare(f"run {index} token importance last", np.array(sinks[0].flags, np.int64),
                           (np.arange(len(token_words)) == len(token_words) - 1).astype(np.int64))
            report.compare(f"run {index} head importance", np.array(sinks[1].beats, np.int64), golden.heads)
            report.compare(f"run {index} head importance last", np.array(sinks[1].flags, np.int64),
                           (np.arange(run["heads"]) == run["heads"] - 1).astype(np.int64))
            if cfg.get("capture"):
                captured[f"tokens{index}"], captured[f"heads{index}"] = got_tokens.reshape(-1)[:run["seq_len"]], \
                    np.array(sinks[1].beats, np.int64)
        if progressive:
            words, flags_last = flag_beats(row_flags(q, k, cfg["scale_mult"], cfg["scale_shift"], nm, cols,
                                                     run.get("threshold", 0)), rows)
            report.compare(f"run {index} row flags", np.array(ranks["row_flags"].beats, np.int64), words)
            report.compare(f"run {index} row flags last", np.array(ranks["row_flags"].flags, np.int64),
                           flags_last.astype(np.int64))
            if cfg.get("capture"):
                captured[f"flags{index}"] = np.array(ranks["row_flags"].beats, np.int64)
        for rank_sink in ranks.values():
            rank_sink.clear()
        if cfg.get("capture") and len(got) == len(expected):
            if diagonal:
                captured[f"o{index}"] = diagonal_output_from_beats(got, tiling, run["heads"], run["seq_len"],
                                                                   run["head_dim"])
            else:
                captured[f"o{index}"] = unstack_queries(output_from_beats(got, kv_heads, q.shape[1],
                                                                          run["head_dim"], rows, cols), run["heads"])
        first_in = min(s.first_accept_cycle for s in sources.values())
        cycles = sink.last_accept_cycle - first_in + 1
        pairs = q.shape[1] * run["seq_len"] if mask is None else int(mask.sum())
        macs = useful_macs(kv_heads, run["seq_len"], run["head_dim"], pairs)
        results.append(dict(run, cycles=cycles, useful_macs=macs, counter=control.read("cycles"),
                            ideal_cycles=-(-macs // (rows * cols)),
                            mac_utilization=macs / (rows * cols * cycles)))
        report.check(control.read("busy") == 0, f"run {index}: busy after the last output")

    # A start with an out-of-range runtime value must raise error and not start.
    control.set(seq_len=0, heads=1, head_dim=1)
    control.pulse("start")
    await bench.step(2)
    report.check(control.read("busy") == 1 and control.read("error") == 0, "busy did not rise while checking")
    await bench.step(cfg["start_latency"])
    report.check(control.read("error") == 1 and control.read("busy") == 0, "seq_len 0 was not rejected")
    for bad in (dict(seq_len=4, heads=3, kv_heads=2), dict(seq_len=4, heads=2, kv_heads=3),
                dict(seq_len=4, heads=1, kv_heads=1, query_len=5)):
        control.set(**bad)
        control.pulse("start")
        await bench.step(cfg["start_latency"] + 2)
        report.check(control.read("error") == 1 and control.read("busy") == 0, f"{bad} was not rejected")

    if sliding:
        # Diagonal runs take the window, dilated and grid patterns, one query head per K/V head and every
        # position a query: anything else is refused.
        window = register_values(pattern_from_dict({"pattern": "window", "window": 3}), cfg["max_globals"],
                                 global_width)
        dense = register_values(pattern_from_dict({"pattern": "dense"}), cfg["max_globals"], global_width)
        for registers, shape in ((dense, dict(heads=1, kv_heads=1, query_len=4)),
                                 (window, dict(heads=2, kv_heads=1, query_len=4)),
                                 (window, dict(heads=1, kv_heads=1, query_len=3))):
            control.set(**registers, **shape, seq_len=4, head_dim=1, diagonal=1)
            control.pulse("start")
            await bench.step(cfg["start_latency"] + 2)
            report.check(control.read("error") == 1 and control.read("busy") == 0,
                         f"a diagonal run of {registers['pattern']} {shape} was not rejected")
        control.set(diagonal=0)

    if cfg.get("capture"):
        np.savez(cfg["capture"], **captured)
    report.cycles = results[-1]["cycles"]
    report.extra.update(runs=results)
    report.finish()
