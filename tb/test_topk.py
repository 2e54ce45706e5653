"""cocotb testbench of :class:`attn_rtl.hdl.topk.TopK` against ``attn_rtl.sim.topk.topk``.

``cfg["problems"]`` lists problems, each ``n``, ``k``, a value ``kind`` and a
``keep`` kind; the testbench draws the values from the seed, sends the
problems back to back on ``i`` (random idle cycles, ``k`` changing with each
problem's first beat) and takes the answers on ``o`` with random
backpressure.  Every answer is checked pair by pair (index and value, in
order) against the golden model, and its beats for shape: kept lanes
contiguous from lane 0, only the last beat partial, ``last`` on it alone.
With ``reset_mid`` the stream is cut by a reset part-way and sent again in
full.  ``cycles_per_problem`` (first beat accepted to last beat taken) is
meaningful when there are no stalls.
"""

from __future__ import annotations

from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock

from attn_rtl.hdl.topk import TopK
from attn_rtl.sim.topk import topk

from .harness import begin
from .packing import Fields, pack, unpack
from .streams import StreamBench, StreamSink, StreamSource

TOPK_PARAMS = ("lanes", "value_width", "signed", "max_n", "max_k")


def problem_values(rng, kind: str, n: int, width: int, signed: bool) -> np.ndarray:
    """``random``, ``equal`` (one value throughout), ``few`` (four distinct values: many ties),
    ``extreme`` (each at an end of the range), ``ascending``, ``descending``, ``negative``."""
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if kind == "random":
        return rng.integers(lo, hi, size=n, endpoint=True)
    if kind == "equal":
        return np.full(n, rng.integers(lo, hi, endpoint=True))
    if kind == "few":
        return rng.choice(rng.integers(lo, hi, size=4, endpoint=True), size=n)
    if kind == "extreme":
        return np.where(rng.random(n) < 0.5, lo, hi)
    if kind in ("ascending", "descending"):
        ramp = lo + (np.arange(n) * max(1, (hi - lo) // max(n, 1))) % (hi - lo + 1)
        return ramp if kind == "ascending" else ramp[::-1].copy()
    if kind == "negative":
        return rng.integers(lo, min(hi, -1) if signed else lo, size=n, endpoint=True)
    raise ValueError(f"unknown value kind {kind!r}")


def problem_keep(rng, kind: str, n: int) -> np.ndarray:
    if kind == "all":
        return np.ones(n, bool)
    if kind == "random":
        return rng.random(n) >= 0.3
    if kind == "none":
        return np.zeros(n, bool)
    raise ValueError(f"unknown keep kind {kind!r}")


class KSource(StreamSource):
    """A source that also drives ``k`` with each beat (the engine samples it on a problem's first beat)."""

    def __init__(self, dut, rng, idle):
        super().__init__(dut, "i", rng, idle=idle)
        self.dut, self.k_queue = dut, deque()

    def send_problem(self, beats, k: int) -> None:
        self.send(beats)
        self.k_queue.extend([k] * len(beats))

    def drive(self, cycle: int) -> None:
        super().drive(cycle)
        if self.offering:
            self.dut.k.value = self.k_queue[0]

    def sample(self, cycle: int) -> None:
        before = self.accepted
        super().sample(cycle)
        if self.accepted != before:
            self.k_queue.popleft()

    def flush(self) -> None:
        super().flush()
        self.k_queue.clear()


@cocotb.test()
async def topk_problems(dut):
    cfg, report, rng = begin(dut, "problems")
    lanes, width, signed = cfg["lanes"], cfg["value_width"], cfg["signed"]
    component = TopK(**{name: cfg[name] for name in TOPK_PARAMS})
    component._MustUse__silence = True   # built only for its widths
    iw = component.index_width
    in_fields = Fields([("values", lanes * width), ("keep", lanes), ("last", 1)])
    out_fields = Fields([("indices", lanes * iw), ("values", lanes * width), ("keep", lanes), ("last", 1)])

    problems = []
    for p in cfg["problems"]:
        values = np.asarray(p["values"], np.int64) if "values" in p else problem_values(rng, p["kind"], p["n"], width,
                                                                                       signed)
        keep = problem_keep(rng, p.get("keep", "all"), p["n"])
        padded = -(-p["n"] // lanes) * lanes
        v = np.zeros(padded, np.int64)
        v[:p["n"]] = values
        kp = np.zeros(padded, bool)
        kp[:p["n"]] = keep
        beats = [in_fields.pack(values=pack(v[b:b + lanes], width), keep=pack(kp[b:b + lanes], 1),
                                last=int(b + lanes >= padded)) for b in range(0, padded, lanes)]
        # Out-of-range requests: the engine cuts a problem at max_n and clamps k into 1 … max_k.
        k_used = min(max(p["k"], 1), cfg["max_k"])
        expect = topk(values[:cfg["max_n"]], k_used, keep[:cfg["max_n"]])
        # Beats past the last one max_n reaches are cut whatever they hold; lanes past max_n in that
        # beat only when kept.
        over = len(beats) > -(-cfg["max_n"] // lanes) or bool(keep[cfg["max_n"]:].any())
        problems.append(dict(beats=beats, k=p["k"], expect=expect, overflow=over))

    Clock(dut.clk, 10, unit="ns").start()
    source = KSource(dut, rng, idle=cfg["idle"])
    sink = StreamSink(dut, "o", rng, stall=cfg["stall"])
    bench = StreamBench(dut, dut.clk, dut.rst, [source, sink])
    await bench.reset()
    if cfg["reset_mid"]:
        source.send_problem(problems[0]["beats"], problems[0]["k"])
        await bench.step(max(2, len(problems[0]["beats"]) // 2 + 3))
        await bench.reset()
        sink.beats.clear()
    first_accepts, last_takes = [], []
    for prob in problems:
        source.send_problem(prob["beats"], prob["k"])
    expected_beats = sum(max(1, -(-len(p["expect"][0]) // lanes)) for p in problems)
    budget = int((sum(len(p["beats"]) for p in problems) / (1 - cfg["idle"]) + expected_beats / (1 - cfg["stall"])
                  + 200 * len(problems)) * 2) + 1000
    if cfg["measure"]:
        # One problem at a time, so each one's cycles are its own.
        source.flush()
        for prob in problems:
            source.send_problem(prob["beats"], prob["k"])
            start = len(sink.beats)
            want = max(1, -(-len(prob["expect"][0]) // lanes))
            await bench.run(lambda: len(sink.beats) >= start + want, budget)
            first_accepts.append(source.first_accept_cycle)
            last_takes.append(sink.last_accept_cycle)
            source.first_accept_cycle = None
    else:
        await bench.run(lambda: len(sink.beats) >= expected_beats, budget)
    await bench.step(20)

    beats = [out_fields.unpack(b) for b in sink.beats]
    report.check(len(beats) == expected_beats, f"{len(beats)} output beats, expected {expected_beats}")
    cursor, answers = 0, []
    for number, prob in enumerate(problems):
        indices, values = prob["expect"]
        where = f"problem {number} (n={cfg['problems'][number]['n']}, k={prob['k']}, " \
                f"{cfg['problems'][number].get('kind', 'given values')})"
        got_i, got_v = [], []
        while cursor < len(beats):
            beat = beats[cursor]
            cursor += 1
            keep = unpack(beat["keep"], lanes, 1, False).astype(bool)
            count = int(keep.sum())
            report.elements += 1      # the beat's shape (an answer may hold no pair at all)
            report.check(keep[:count].all(), f"{where}: keep {keep.astype(int)} not contiguous from lane 0")
            got_i.extend(unpack(beat["indices"], lanes, iw, False)[:count])
            got_v.extend(unpack(beat["values"], lanes, width, signed)[:count])
            if beat["last"]:
                break
            report.check(count == lanes, f"{where}: a beat before the last holds {count} pairs")
        answers.append({"indices": [int(i) for i in got_i], "values": [int(x) for x in got_v]})
        report.compare(f"{where} indices", np.array(got_i, np.int64), indices)
        report.compare(f"{where} values", np.array(got_v, np.int64), values)
    overflow = any(p["overflow"] for p in problems)
    k_error = any(not 1 <= p["k"] <= cfg["max_k"] for p in cfg["problems"])
    report.compare("overflow, k_error", [int(dut.overflow.value), int(dut.k_error.value)],
                   [int(overflow), int(k_error)])
    report.cycles = (last_takes[-1] - first_accepts[-1] + 1) if first_accepts else None
    report.extra.update(cycles_per_problem=[b - a + 1 for a, b in zip(first_accepts, last_takes)], answers=answers)
    report.finish()
