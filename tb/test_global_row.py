"""cocotb testbench of :class:`attn_rtl.hdl.global_row.GlobalRow` against the global row of
``attn_rtl.sim.sliding`` (``sliding_output`` with ``global_row``), every O lane of every head.

The bench plays the engine: per run it tiles a pattern (``diagonal_tiles(..., global_row=1)``), sends
the global query's Q per head, and issues the tiles' steps as the engine may order them (score tiles
ahead of their value tiles by up to ``tiles``, the choice random where both may go, idle cycles
between steps), each step's lanes the K or V beat of the tile (lanes the row must not take hold random
values, as a DMA may send), value tiles padded to whole chunks with random lanes.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock

from attn_rtl.sim.golden import Numerics
from attn_rtl.sim.sliding import diagonal_tiles, sliding_output
from attn_rtl.sim.sparse import pattern_from_dict

from .harness import begin, operand_matrix
from .packing import Fields, pack, unpack
from .streams import Control, StreamBench, StreamSink, StreamSource


class StepIssuer:
    """The engine's side of ``step``: issues queued tiles' steps when ``loaded`` and ``value_room``
    allow, ``idle`` the probability of a cycle without a step between tiles."""

    def __init__(self, dut, cfg, rng, fields: Fields, idle: float, report):
        self.dut, self.cfg, self.rng, self.fields, self.idle, self.report = dut, cfg, rng, fields, idle, report
        self.scores: list = []       # per score tile: its steps' packed words
        self.values: list = []       # per value tile, in the same order
        self.current: list = []      # the steps of the tile being issued
        self.in_flight = 0           # score tiles started whose value tile has not ended
        self.scores_ended = self.values_started = 0
        self.is_value = False
        self.loaded = self.value_room = 0
        self.blocked = False         # the previous step changed what loaded / value_room will say
        self.head_ended = None       # the cycle a head's last score step was driven
        dut.step_valid.value = 0

    def queue(self, score_steps, value_steps) -> None:
        self.scores.append(score_steps)
        self.values.append(value_steps)

    @property
    def done(self) -> bool:
        return not self.current and not self.scores and not self.values

    def flush(self) -> None:
        self.scores, self.values, self.current = [], [], []
        self.in_flight = self.scores_ended = self.values_started = 0
        self.blocked, self.head_ended = False, None

    def drive(self, cycle: int) -> None:
        self.dut.step_valid.value = 0
        if not self.current and not self.blocked and not (self.idle and self.rng.random() < self.idle):
            # A value tile may go once its score tile ended and the row has its probabilities; a score tile
            # while fewer than `tiles` are in flight and the head's Q is in.
            can_value = self.values and self.values_started < self.scores_ended and self.value_room
            can_score = self.scores and self.in_flight < self.cfg["tiles"] and self.loaded
            if can_value and (not can_score or self.rng.random() < 0.5):
                self.current, self.is_value = list(self.values.pop(0)), True
                self.values_started += 1
            elif can_score:
                self.current, self.is_value = list(self.scores.pop(0)), False
                self.in_flight += 1
        self.blocked = False
        if self.current:
            word, changes = self.current.pop(0)
            self.dut.step.value = word
            self.dut.step_valid.value = 1
            if not self.current:
                if self.is_value:
                    self.in_flight -= 1
                else:
                    self.scores_ended += 1
            # A value tile's start empties value_room, a head's last score step the Q bank: this bench
            # decides on what it sampled a cycle before, so it waits a cycle after either (the engine's
            # value decision is a flip-flop and masks that cycle too; its score decision reads loaded in
            # the cycle: sample checks that loaded is low then).
            self.blocked = changes is not None
            if changes == "head":
                self.head_ended = cycle

    def sample(self, cycle: int) -> None:
        self.loaded = int(self.dut.loaded.value)
        if self.head_ended == cycle - 1:
            self.report.check(self.loaded == 0, f"cycle {cycle}: loaded high in the cycle after a head's last "
                                                f"score step (the row frees its bank only then)")
        self.value_room = int(self.dut.value_room.value)


class HeadFeeder:
    """Sends the global query's Q head by head, some heads late: a late head's Q waits until every score
    tile of the heads before it has issued, so that the row frees the previous head's bank with the next
    one still empty (``loaded`` must then hold the head's first tile back)."""

    def __init__(self, source: StreamSource, issuer: StepIssuer):
        self.source, self.issuer = source, issuer
        self.heads: list = []   # (words, score tiles of the heads before it, late)
        self.base = 0

    def start(self, heads: list) -> None:
        self.heads, self.base = list(heads), self.issuer.scores_ended

    @property
    def done(self) -> bool:
        return not self.heads and self.source.done

    def drive(self, cycle: int) -> None:
        while self.heads and (not self.heads[0][2] or self.issuer.scores_ended - self.base >= self.heads[0][1]):
            self.source.send(self.heads.pop(0)[0])

    def sample(self, cycle: int) -> None:
        pass


def run_steps(cfg, rng, tiles, k, v, head_dim, fields: Fields, final: bool):
    """Per head, per tile: (score steps, value steps), each a list of (packed word, what it changes for the
    next decision: ``"head"`` a head's last score step, ``"value"`` a value tile's first, else None)."""
    R, C, w = cfg["rows"], cfg["cols"], Numerics.from_dict(cfg["numerics"]).data_width
    lanes = R + C - 1
    keys = np.clip(tiles.lanes, 0, None)
    row_keys, ok = tiles.row_keys()
    column = np.where(tiles.self_column >= 0, tiles.self_column, rng.integers(0, C, len(tiles)))
    chunks = -(-head_dim // C)
    heads = k.shape[0]
    out = []
    for h in range(heads):
        for n in range(len(tiles)):
            # Lanes the row takes hold their keys; every other lane random (a DMA sends any value there).
            noise_k = rng.integers(-(1 << (w - 1)), 1 << (w - 1), (head_dim, R + C))
            noise_v = rng.integers(-(1 << (w - 1)), 1 << (w - 1), (chunks * C, R + C))
            beat_k, beat_v = noise_k.copy(), noise_v.copy()
            keyed = tiles.keep[n]
            beat_k[:, :lanes][:, keyed] = k[h, keys[n, keyed]].T
            beat_v[:head_dim, :lanes][:, keyed] = v[h, keys[n, keyed]].T
            if ok[n, R]:
                beat_k[:, lanes] = k[h, row_keys[n, R]]
                beat_v[:head_dim, lanes] = v[h, row_keys[n, R]]
            figures = dict(self_column=int(column[n]), self_rows=pack(ok[n, :R].astype(int), 1),
                           global_new=int(ok[n, R]), head_first=int(n == 0), head_last=int(n == len(tiles) - 1),
                           run_end=int(final and h == heads - 1 and n == len(tiles) - 1))
            score = [(fields.pack(value=0, first=int(s == 0), last=int(s == head_dim - 1), pad=0,
                                  lanes=pack(beat_k[s], w), **figures),
                      "head" if n == len(tiles) - 1 and s == head_dim - 1 else None) for s in range(head_dim)]
            value = [(fields.pack(value=1, first=int(s == 0), last=int(s == chunks * C - 1), pad=int(s >= head_dim),
                                  lanes=pack(beat_v[s], w), **{**figures, "self_column": int(rng.integers(0, C))}),
                      "value" if s == 0 else None) for s in range(chunks * C)]
            out.append((score, value))
    return out


@cocotb.test()
async def global_row_runs(dut):
    cfg, report, rng = begin(dut, "runs")
    nm = Numerics.from_dict(cfg["numerics"])
    C, w = cfg["cols"], nm.data_width
    step_fields, o_fields = Fields(cfg["step_fields"]), Fields(cfg["o_fields"])

    Clock(dut.clk, 10, unit="ns").start()
    control = Control(dut)
    q_source = StreamSource(dut, "q", rng, idle=cfg["idle"])
    issuer = StepIssuer(dut, cfg, rng, step_fields, cfg["idle"], report)
    feeder = HeadFeeder(q_source, issuer)
    o_sink = StreamSink(dut, "o", rng, stall=cfg["stall"])
    bench = StreamBench(dut, dut.clk, dut.rst, [control, feeder, q_source, issuer, o_sink])
    await bench.reset()

    async def play(index, run, check):
        pattern = pattern_from_dict(run["pattern"])
        seq_len, heads, head_dim = run["seq_len"], run["heads"], run["head_dim"]
        tiles = diagonal_tiles(pattern, seq_len, cfg["rows"], C, global_row=1)
        assert tiles.global_row, f"run {index}: the pattern does not use the global row"
        q, k, v = (operand_matrix(rng, (heads, seq_len, head_dim), w, True, run.get("operands", "random"))
                   for _ in range(3))
        mult, shift = run["scale_mult"], run["scale_shift"]
        control.set(head_dim=head_dim, scale_mult=mult, scale_shift=shift)
        await bench.step(2)
        control.pulse("start")
        await bench.step(1)
        g = tiles.global_tokens[0]
        feeder.start([([int(x) & ((1 << w) - 1) for x in q[h, g]], h * len(tiles), h > 0 and rng.random() < 0.5)
                      for h in range(heads)])
        for score, value in run_steps(cfg, rng, tiles, k, v, head_dim, step_fields, final=True):
            issuer.queue(score, value)
        chunks = -(-head_dim // C)
        if not check:
            await bench.step(int(rng.integers(1, 12 * head_dim * len(tiles) + 2)))
            return
        o_sink.beats.clear()
        slack = 1.0 / (1.0 - max(cfg["idle"], cfg["stall"]))
        budget = int(slack * heads * len(tiles) * (4 * chunks * C + 4 * head_dim + 40)) + 600
        await bench.run(lambda: len(o_sink.beats) >= heads * chunks and issuer.done and feeder.done, budget)
        await bench.step(30)   # nothing more may come out
        report.check(len(o_sink.beats) == heads * chunks,
                     f"run {index}: {len(o_sink.beats)} O beats, expected {heads * chunks}")
        o = sliding_output(q, k, v, mult, shift, nm, tiles)[:, g]            # (heads, head_dim)
        padded = np.zeros((heads, chunks * C), np.int64)
        padded[:, :head_dim] = o
        for i, word in enumerate(o_sink.beats[:heads * chunks]):
            got = o_fields.unpack(word)
            h, cc = divmod(i, chunks)
            report.compare(f"run {index} head {h} chunk {cc}", unpack(got["data"], C, w, signed=True),
                           padded[h, cc * C:(cc + 1) * C])
            report.compare(f"run {index} head {h} chunk {cc} (last, run_end)",
                           np.array([got["last"], got["run_end"]]),
                           np.array([int(cc == chunks - 1), int(cc == chunks - 1 and h == heads - 1)]))
        report.extra.setdefault("tiles", []).append(len(tiles) * heads)

    for index, run in enumerate(cfg["runs"]):
        if cfg["reset_mid"] and index == 0:
            await play(index, run, check=False)
            issuer.flush()
            feeder.start([])
            await bench.reset(3)
            o_sink.beats.clear()
        await play(index, run, check=True)
    report.finish()
