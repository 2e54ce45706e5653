"""SALO's global PE row: a global query against every key of a diagonal run, beside the array."""

from __future__ import annotations

import dataclasses

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.numerics import Numerics, clog2
from attn_rtl.params import positive_int, reject_unknown

from .block_ram import check_block_ram_kind
from .diagonal_scheduler import row_tile_fields
from .multiplier import Multiplier, check_multiplier
from .output_accumulator import OutputAccumulator
from .pipeline import adder_tree, delayed, register
from .serial_softmax import SerialSoftmax

__all__ = ["GlobalRow", "GLOBAL_ROW_DEFAULTS", "global_row_params"]

#: Elaboration parameters of :class:`GlobalRow` and their defaults (the default sliding engine's).
GLOBAL_ROW_DEFAULTS = {
    "rows": 8,
    "cols": 8,
    "max_head_dim": 128,
    "max_seq_len": 1024,
    "score_width": 23,
    "tiles": 2,
    "multiplier": "generic",
    "memory": "inferred",
    "numerics": None,
}


def global_row_params(**params) -> dict:
    """Validate :class:`GlobalRow` parameters; return them complete, defaults filled in."""
    reject_unknown("global row", params, GLOBAL_ROW_DEFAULTS)
    p = {**GLOBAL_ROW_DEFAULTS, **params}
    for name, limit in (("rows", 64), ("cols", 64), ("max_head_dim", 1024), ("max_seq_len", 1 << 24),
                        ("score_width", 48), ("tiles", 64)):
        positive_int(name, p[name], at_most=limit)
    p["numerics"] = dataclasses.asdict(Numerics.coerce(p["numerics"]))
    check_multiplier(a_width=1, b_width=1, a_signed=True, b_signed=True, target=p["multiplier"])
    check_block_ram_kind(p["memory"])
    return p


class GlobalRow(wiring.Component):
    """One global query against every key of a diagonal run, tile by tile, as the keys pass the array.

    In a diagonal run each plain key meets its own query once, on the *self column* of one tile
    (``attn_rtl.sim.sliding.DiagonalTiles.row_keys``): lanes ``self_column + r`` of that tile's K and
    V beats are the keys of the block's rows ``r`` flagged in ``self_rows``, and the global keys ride
    the last lane of the head's first block's tiles (``global_new``).  The row takes those
    ``rows + 1`` lanes of every step the engine issues: on a score step ``q[k] · K`` into ``rows + 1``
    score accumulators; after the tile's last step the scores and their mask go to a
    :class:`~attn_rtl.hdl.serial_softmax.SerialSoftmax` of ``rows + 1`` lanes (the head's run is the
    row; a lane a cycle, a tile in its ``tile_cycles``, 43 at 8×8: a tile's ``2·head_dim`` steps or
    more cover that from ``head_dim`` of about ``rows + 13`` up, and below it the row holds value tiles
    back); on the tile's value steps ``Σ p · V`` over the same
    lanes, one head-dimension column a step, into a one-lane
    :class:`~attn_rtl.hdl.output_accumulator.OutputAccumulator` (a word per column), which normalizes
    after the head's last tile; its elements leave ``cols`` to an O beat.  The arithmetic is
    docs/numerics.md's (the golden model: ``attn_rtl.sim.sliding.sliding_output`` with a global row).

    The engine drives ``step`` as it issues each step of a diagonal run (score tiles and value tiles in
    its order, a value tile's steps ``⌈head_dim/cols⌉·cols`` with the padding flagged ``pad``), each tile's
    figures with its first step; it starts a score tile only when ``loaded`` (the head's global Q is in)
    and a value tile only when ``value_room`` (its probabilities are out of the softmax, with room for
    its elements).  At most ``tiles`` score tiles may be started and their value tiles not finished.

    Parameters
    ----------
    rows, cols : int
        The array's (a tile has ``rows + cols`` lanes with the global lane; the row takes ``rows + 1``).
    max_head_dim, max_seq_len : int
        Largest runtime ``head_dim``; keys per row at most (the softmax's and accumulator's widths).
    score_width : int
        Width of the score accumulators (the array's).
    tiles : int
        Score tiles in flight at most (the engine's probability buffers).
    multiplier : "generic" or "ecp5"
    memory : "inferred" or "ecp5"
        The output accumulator's memory.
    numerics : Numerics, dict or None

    Attributes
    ----------
    lanes : int
        ``rows + 1``.

    Ports
    -----
    start : In(1)
        A run starts: the Q banks empty, the counters cleared (the row holds no tile then).
    head_dim : In(range(max_head_dim + 1))
    scale_mult, scale_shift : In
        The score scale (held during a run).
    q : In(stream.Signature(signed(w)))
        The global query's Q, ``head_dim`` beats per head, into two banks (the next head's loads while
        this head's tiles run).
    loaded : Out(1)
        The Q of the head whose tiles come next is in (a flip-flop; low in the cycle after a head's
        last score step).
    step : In(StructLayout({"value", "first", "last", "pad", "lanes", "self_column", "self_rows",
        "global_new", "head_first", "head_last", "run_end"}))
    step_valid : In(1)
        Every issued step of a diagonal run, in the cycle it issues (no backpressure: the row takes
        each, a cycle later); the tile's figures (``self_column`` to ``run_end``) are read with a
        score tile's first step.
    value_room : Out(1)
        A value tile may start (a flip-flop's view: a value tile started this cycle is not yet in it).
    o : Out(stream.Signature(StructLayout({"data": ArrayLayout(signed(w), cols), "last", "run_end"})))
        Per head, ``⌈head_dim/cols⌉`` beats of the global query's O (lanes past ``head_dim`` 0), ``last``
        on the head's last, ``run_end`` on the run's.
    """

    def __init__(self, **params):
        p = global_row_params(**params)
        self.params = p
        self.rows, self.cols = R, C = p["rows"], p["cols"]
        self.lanes = R + 1
        self.nm = nm = Numerics.from_dict(p["numerics"])
        self.max_chunks = -(-p["max_head_dim"] // C)
        w = nm.data_width
        # One multiplier a lane serves both products: q·K (signed w bits) and p·V (p unsigned P + 1 bits).
        self._a_width = max(w, nm.prob_width + 1)
        self.partial_width = self._a_width + w + clog2(self.lanes)
        self.step_layout = data.StructLayout({
            "value": 1, "first": 1, "last": 1, "pad": 1, "lanes": data.ArrayLayout(signed(w), R + C),
            **row_tile_fields(R, C), "run_end": 1})
        super().__init__({
            "start": In(1),
            "head_dim": In(range(p["max_head_dim"] + 1)),
            "scale_mult": In(nm.mult_width),
            "scale_shift": In(range(nm.max_shift + 1)),
            "q": In(stream.Signature(signed(w))),
            "loaded": Out(1),
            "step": In(self.step_layout),
            "step_valid": In(1),
            "value_room": Out(1),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(w), C), "last": 1, "run_end": 1}))),
        })

    def _softmax(self) -> SerialSoftmax:
        p = self.params
        return SerialSoftmax(lanes=self.lanes, score_width=p["score_width"], max_seq_len=p["max_seq_len"],
                             multiplier=p["multiplier"], numerics=p["numerics"])

    def _accumulator(self) -> OutputAccumulator:
        p = self.params
        return OutputAccumulator(lanes=1, rows=1, chunks=p["max_head_dim"], partial_width=self.partial_width,
                                 max_seq_len=p["max_seq_len"], numerics=p["numerics"], multiplier=p["multiplier"],
                                 memory=p["memory"])

    def elaborate(self, platform):
        m = Module()
        p, nm = self.params, self.nm
        R, C, G, NB = self.rows, self.cols, self.lanes, p["tiles"]
        w = nm.data_width
        # The step is taken a cycle after its issue: the engine's issue decision reaches one flip-flop
        # per bit here, not the row's bank, counter and FIFO logic (the 4x4 proxy's critical path
        # with the step taken straight: 75.3 MHz).  loaded and value_room still answer for the step
        # issued in their cycle (below).
        issued = register(m, self.step_valid, "step_taken_valid", reset=True)
        step = register(m, self.step, "step_taken")
        m.submodules.softmax = softmax = self._softmax()
        m.submodules.accumulator = acc = self._accumulator()
        m.d.comb += [softmax.scale_mult.eq(self.scale_mult), softmax.scale_shift.eq(self.scale_shift)]

        # --- the global query's Q: two banks of a power of two words, the bank the address's top bit.
        beat_bits = max(clog2(p["max_head_dim"]), 1)
        q_mem = memory.Memory(shape=signed(w), depth=2 << beat_bits, init=[])
        m.submodules.q_mem = q_mem
        q_write, q_read = q_mem.write_port(), q_mem.read_port(domain="sync", transparent_for=())
        q_full, q_wbank, q_rbank = Signal(2), Signal(), Signal()
        q_k = Signal(range(p["max_head_dim"]))
        q_fire = self.q.valid & self.q.ready
        m.d.comb += [self.q.ready.eq(~q_full.bit_select(q_wbank, 1)),
                     q_write.addr.eq(Cat(q_k[:beat_bits], q_wbank)), q_write.data.eq(self.q.payload),
                     q_write.en.eq(q_fire)]
        filled = Signal()
        with m.If(q_fire):
            m.d.sync += q_k.eq(Mux(q_k == self.head_dim - 1, 0, q_k + 1))
            with m.If(q_k == self.head_dim - 1):
                m.d.comb += filled.eq(1)
                m.d.sync += q_wbank.eq(~q_wbank)
        # The score step's element: the address is a flip-flop, the next step's (0 after a tile's last).
        q_addr = Signal(range(p["max_head_dim"]))
        m.d.comb += [q_read.addr.eq(Cat(q_addr[:beat_bits], q_rbank)), q_read.en.eq(1)]
        score_step = issued & ~step.value
        # A score tile's figures, kept from its first step (read straight from the step in that step).
        tile_fields = {**row_tile_fields(R, C), "run_end": 1}
        held = Signal(data.StructLayout(tile_fields))
        figures = Signal.like(held)
        m.d.comb += figures.eq(Mux(step.first, Cat(*[getattr(step, name) for name in tile_fields]), held))
        released = Signal()
        with m.If(score_step):
            m.d.sync += [q_addr.eq(Mux(step.last, 0, q_addr + 1)), held.eq(figures)]
            with m.If(step.last & figures.head_last):
                m.d.comb += released.eq(1)
                m.d.sync += q_rbank.eq(~q_rbank)
        full_next = []
        for b in range(2):
            full_next.append(Mux((filled & (q_wbank == b)) | (released & (q_rbank == b)), filled & (q_wbank == b),
                                 q_full[b]))
            m.d.sync += q_full[b].eq(full_next[b])
        # loaded is a flip-flop of the next state (it gates the engine's issue decision), low in the
        # cycle after a head's last score step issues: the row takes that step (and frees its bank)
        # only then.  The step's head_last is its tile's, kept from the tile's first step as it issues.
        issued_head_last = Signal()
        with m.If(self.step_valid & ~self.step.value & self.step.first):
            m.d.sync += issued_head_last.eq(self.step.head_last)
        head_ends = (self.step_valid & ~self.step.value & self.step.last
                     & Mux(self.step.first, self.step.head_last, issued_head_last))
        m.d.sync += self.loaded.eq(Mux(Mux(released, ~q_rbank, q_rbank), full_next[1], full_next[0]) & ~head_ends)

        # --- a value tile's probabilities and figures, taken from the softmax and the tiles' queue as it
        # starts; its elements counted so that a whole tile's fit the partials' FIFO.
        meta_layout = data.StructLayout({"self_column": range(C), "run_end": 1})
        m.submodules.meta = meta = fifo.SyncFIFOBuffered(width=meta_layout.size, depth=NB + 1)
        meta_head = data.View(meta_layout, meta.r_data)
        probs = softmax.probs
        value_start = issued & step.value & step.first
        d_max = p["max_head_dim"]
        partial_depth = 2 * d_max + 1
        m.submodules.partials = partials = fifo.SyncFIFOBuffered(width=len(acc.partials.payload.as_value()),
                                                                depth=partial_depth)
        owed = Signal(range(partial_depth + d_max + 1))   # started value tiles' elements not yet taken
        taken = acc.partials.valid & acc.partials.ready
        m.d.sync += owed.eq(owed + Mux(value_start, self.head_dim, 0) - taken)
        m.d.comb += [
            # (A value tile issued a cycle ago is taken now: its probabilities are still at the head.)
            self.value_room.eq(probs.valid & meta.r_rdy & (owed <= partial_depth - d_max) & ~value_start),
            probs.ready.eq(value_start), meta.r_en.eq(value_start),
        ]
        cur_p = Signal(data.ArrayLayout(nm.prob_width, G))
        cur_scale = Signal(data.StructLayout({"mant": nm.prob_width, "exp": len(probs.payload.scale_exp),
                                              "head_first": 1, "head_last": 1, "run_end": 1}))
        cur_column = Signal(range(C))
        with m.If(value_start):
            m.d.sync += [cur_p.eq(probs.payload.p), cur_column.eq(meta_head.self_column),
                         cur_scale.eq(Cat(probs.payload.scale_mant, probs.payload.scale_exp, probs.payload.first,
                                          probs.payload.last, meta_head.run_end))]
        column = Mux(step.value, Mux(step.first, meta_head.self_column, cur_column), figures.self_column)

        # --- stage 1: the row's lanes of the step (its own query's keys on the self column, the global
        # lane), its operands.
        s1_valid = register(m, issued, "s1_valid", reset=True)
        s1 = register(m, Cat(step.value, step.first, step.last, step.pad), "s1_flags")
        s1_value, s1_first, s1_last, s1_pad = s1[0], s1[1], s1[2], s1[3]
        s1_lanes = [register(m, step.lanes[column + r] if C > 1 else step.lanes[r], f"s1_lane{r}") for r in range(R)]
        s1_lanes.append(register(m, step.lanes[R + C - 1], f"s1_lane{R}"))
        s1_figures = register(m, figures, "s1_figures")
        s1_q = q_read.data
        # The value step's head-dimension column (padding steps past head_dim send nothing).
        v_e = Signal(range(self.max_chunks * C + 1))   # the next value step's
        column_e = Mux(step.first, 0, v_e)
        with m.If(issued & step.value):
            m.d.sync += v_e.eq(column_e + 1)
        s1_place = register(m, column_e[:len(v_e)], "s1_column")

        mul_latency = None
        products = []
        for r in range(G):
            mul = Multiplier(a_width=self._a_width, b_width=w, a_signed=True, b_signed=True, target=p["multiplier"])
            m.submodules[f"mul{r}"] = mul
            mul_latency = mul.latency
            m.d.comb += [mul.a.eq(Mux(s1_value, cur_p[r], s1_q)), mul.b.eq(Mux(s1_pad, 0, s1_lanes[r]))]
            products.append(mul.product)

        # --- score tiles: q·K into the accumulators; the tile's scores to the softmax after its last step.
        s2_valid = delayed(m, s1_valid, mul_latency, "s2_valid", reset=True)
        s2 = delayed(m, Cat(s1_value, s1_first, s1_last), mul_latency, "s2_flags")
        s2_value, s2_first, s2_last = s2[0], s2[1], s2[2]
        s2_figures = delayed(m, s1_figures, mul_latency, "s2_figures")
        scores = [Signal(signed(p["score_width"]), name=f"score{r}") for r in range(G)]
        score_sum = [Mux(s2_first, 0, scores[r]) + products[r] for r in range(G)]
        score_layout = data.StructLayout({"score": data.ArrayLayout(signed(p["score_width"]), G), "mask": G,
                                          "first": 1, "last": 1})
        m.submodules.score_queue = score_queue = fifo.SyncFIFOBuffered(width=score_layout.size, depth=NB + 1)
        pushed = Signal(score_layout)
        m.d.comb += [*[pushed.score[r].eq(score_sum[r]) for r in range(G)],
                     pushed.mask.eq(Cat(s2_figures.self_rows, s2_figures.global_new)),
                     pushed.first.eq(s2_figures.head_first), pushed.last.eq(s2_figures.head_last),
                     score_queue.w_data.eq(pushed), score_queue.w_en.eq(s2_valid & ~s2_value & s2_last),
                     meta.w_data.eq(Cat(s2_figures.self_column, s2_figures.run_end)),
                     meta.w_en.eq(s2_valid & ~s2_value & s2_last)]
        with m.If(s2_valid & ~s2_value):
            m.d.sync += [scores[r].eq(score_sum[r]) for r in range(G)]
        queued = data.View(score_layout, score_queue.r_data)
        m.d.comb += [softmax.scores.valid.eq(score_queue.r_rdy), score_queue.r_en.eq(softmax.scores.ready),
                     softmax.scores.payload.score.eq(queued.score), softmax.scores.payload.mask.eq(queued.mask),
                     softmax.scores.payload.first.eq(queued.first), softmax.scores.payload.last.eq(queued.last)]

        # --- value tiles: Σ p·V over the lanes, one column a step, each into the one-lane accumulator.
        total, tree_stages = adder_tree(m, products, "value_sum")
        lag = mul_latency + tree_stages
        s3_valid = delayed(m, s1_valid & s1_value, lag, "s3_valid", reset=True)
        s3_column = delayed(m, s1_place, lag, "s3_column")
        s3_tile = delayed(m, cur_scale, lag, "s3_tile")
        beat = data.View(acc.partials.payload.shape(), partials.w_data)
        column_last = s3_column == self.head_dim - 1
        m.d.comb += [
            beat.data[0].eq(total), beat.row.eq(0), beat.chunk.eq(s3_column),
            beat.first.eq(s3_tile.head_first), beat.last.eq(s3_tile.head_last), beat.chunk_last.eq(column_last),
            beat.scale_mant.eq(s3_tile.mant), beat.scale_exp.eq(s3_tile.exp), beat.lanes_valid.eq(1),
            beat.emit.eq(1), beat.block_end.eq(column_last), beat.run_end.eq(column_last & s3_tile.run_end),
            partials.w_en.eq(s3_valid & (s3_column < self.head_dim)),
            acc.partials.valid.eq(partials.r_rdy), acc.partials.payload.eq(partials.r_data),
            partials.r_en.eq(acc.partials.ready),
        ]

        # --- the head's row sum and reciprocal; its O.
        m.d.comb += [acc.recips.valid.eq(softmax.sums.valid), softmax.sums.ready.eq(acc.recips.ready),
                     acc.recips.payload.recip.eq(softmax.sums.payload.recip),
                     acc.recips.payload.recip_exp.eq(softmax.sums.payload.recip_exp)]
        # O one element a beat from the accumulator, cols to an O beat (lanes past head_dim 0).
        held_o = [Signal(signed(w), name=f"o_lane{j}") for j in range(C - 1)]
        o_k = Signal(range(C))
        out = acc.out.payload
        closes = (o_k == C - 1) | out.last
        m.d.comb += acc.out.ready.eq(~closes | ~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(acc.out.valid & acc.out.ready):
            with m.If(closes):
                m.d.sync += [self.o.valid.eq(1), o_k.eq(0), self.o.payload.last.eq(out.last),
                             self.o.payload.run_end.eq(out.run_end)]
                for j in range(C):
                    m.d.sync += self.o.payload.data[j].eq(
                        Mux(o_k == j, out.data[0], Mux(o_k > j, held_o[j], 0) if j < C - 1 else 0))
            with m.Else():
                m.d.sync += o_k.eq(o_k + 1)
                for j in range(C - 1):
                    with m.If(o_k == j):
                        m.d.sync += held_o[j].eq(out.data[0])

        with m.If(self.start):
            m.d.sync += [q_full.eq(0), q_wbank.eq(0), q_rbank.eq(0), q_k.eq(0), q_addr.eq(0), owed.eq(0), o_k.eq(0),
                         self.loaded.eq(0)]
        return m
