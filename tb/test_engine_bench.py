"""Full-rate cycle measurement of the engine in ``tb/engine_bench.v`` (no Python per cycle).

For each run of ``cfg["runs"]`` the testbench writes the beats (random
operands, seeded) and the golden output to hex files, loads them into the
harness's memories, starts the engine and waits in large steps until every
output beat arrived.  The harness compares each O beat with the golden one;
the report holds per run the mismatches and the cycles from the first input
beat accepted to the last output beat.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, Timer

from sim.engine_stream import engine_beats, engine_output, output_beats, useful_macs
from sim.golden import Numerics
from tb.harness import begin, operand_matrix

STEP = 4096


def hex_words(lanes: np.ndarray, width: int, top=None) -> str:
    """One hex word per row: lane 0 in the low bits, ``top`` (bits) above the lanes."""
    lanes = np.asarray(lanes, np.int64) & ((1 << width) - 1)
    digits = -(-width // 4)
    if width % 4:
        raise ValueError("the harness packs lanes of a multiple of 4 bits")
    rows = ["".join(f"{x:0{digits}x}" for x in row[::-1]) for row in lanes.tolist()]
    if top is not None:
        rows = [f"{int(t):x}{r}" for t, r in zip(top, rows)]
    return "\n".join(rows) + "\n"


@cocotb.test()
async def engine_full_rate(dut):
    cfg, report, rng = begin(dut, "runs")
    nm = Numerics.from_dict(cfg["numerics"])
    rows, cols, w = cfg["rows"], cfg["cols"], nm.data_width
    Clock(dut.aclk, 10, unit="ns").start()
    dut.aresetn.value = 0
    dut.go.value = 0
    dut.load.value = 0
    await ClockCycles(dut.aclk, 3)
    dut.aresetn.value = 1
    results = []
    for index, run in enumerate(cfg["runs"]):
        heads, seq_len, d = run["heads"], run["seq_len"], run["head_dim"]
        q, k, v = (operand_matrix(rng, (heads, seq_len, d), w, True, "random") for _ in range(3))
        beats = engine_beats(q, k, v, rows, cols)
        blocks = -(-seq_len // rows)
        k_per = len(beats.k) // (heads * blocks)
        v_per = len(beats.v) // (heads * blocks)
        data, last = output_beats(engine_output(q, k, v, cfg["scale_mult"], cfg["scale_shift"], nm, cols), rows, cols)
        files = {"q.hex": hex_words(beats.q, w),
                 "k.hex": hex_words(beats.k.reshape(heads, blocks, k_per, cols)[:, 0].reshape(-1, cols), w),
                 "v.hex": hex_words(beats.v.reshape(heads, blocks, v_per, cols)[:, 0].reshape(-1, cols), w),
                 "o.hex": hex_words(data, w, top=last)}
        for name, text in files.items():
            with open(name, "w") as f:
                f.write(text)
        await RisingEdge(dut.aclk)
        dut.load.value = 1
        await RisingEdge(dut.aclk)
        dut.load.value = 0
        dut.seq_len.value, dut.heads.value, dut.head_dim.value = seq_len, heads, d
        dut.scale_mult.value, dut.scale_shift.value = cfg["scale_mult"], cfg["scale_shift"]
        dut.blocks.value, dut.k_per_head.value, dut.v_per_head.value = blocks, k_per, v_per
        dut.q_total.value, dut.o_total.value = len(beats.q), len(data)
        dut.go.value = 1
        await RisingEdge(dut.aclk)
        dut.go.value = 0
        await ClockCycles(dut.aclk, 2)   # done of the previous run falls
        macs = useful_macs(heads, seq_len, d)
        budget = 4 * macs // (rows * cols) + 20 * STEP
        waited = 0
        while int(dut.done.value) == 0 and waited < budget:
            await Timer(10 * STEP, unit="ns")   # one callback per STEP cycles, not one per edge
            waited += STEP
        await ClockCycles(dut.aclk, 16)
        seen, bad = int(dut.o_seen.value), int(dut.mismatches.value)
        report.elements += len(data) * cols
        report.check(int(dut.done.value) == 1, f"run {index}: not done after {waited} cycles")
        report.check(seen == len(data), f"run {index}: {seen} output beats, expected {len(data)}")
        report.check(bad == 0, f"run {index}: {bad} output beats differ from the golden model")
        cycles = int(dut.last_out.value) - int(dut.first_in.value) + 1
        results.append(dict(run, cycles=cycles, useful_macs=macs, ideal_cycles=-(-macs // (rows * cols)),
                            mac_utilization=macs / (rows * cols * cycles), mismatched_beats=bad,
                            counter=int(dut.cycles.value)))
    report.cycles = results[-1]["cycles"]
    report.extra.update(runs=results)
    report.finish()
