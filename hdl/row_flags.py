"""Progressive quantization (SpAtten): flag the query rows whose largest probability is below a threshold."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.numerics import Numerics
from attn_rtl.params import positive_int

from .pipeline import register

__all__ = ["RowFlags"]


class RowFlags(wiring.Component):
    """Per query block, one bit per row: ``rne(2^P · r, max(R + e − P, 1)) < threshold`` (docs/numerics.md, §6).

    The largest normalized probability of a row is that of its maximum key,
    whose unnormalized probability is exactly ``2^P``; from the row's
    reciprocal ``(r, e)`` it is ``rne(2^P · r, R + e − P)`` with ``P``
    fraction bits.  A row below ``threshold`` was scored with too little
    confidence (progressive quantization: K's most significant bits only) and
    is to be recomputed with the full K.  The unit watches the softmax's
    ``sums`` beats (``slot`` 0 … ``rows − 1`` per block, blocks in order, per
    head), masks rows past ``query_len``, and sends one ``flags`` beat per
    block (bit ``r`` for row ``r``), ``last`` on the run's final block.  A
    FIFO holds a few beats; ``room`` tells the engine whether the next sums
    beat may go.

    Parameters
    ----------
    rows : int
        Rows per block (the engine's ``rows``).
    max_seq_len, max_heads : int
    numerics : Numerics

    Attributes
    ----------
    depth : int
        Beats the output FIFO holds.

    Ports
    -----
    start : In(1)
        Takes ``query_len``, ``heads`` and ``threshold``.
    query_len, heads : In
    threshold : In(P + 1)
        Fixed point with ``P`` fraction bits; 0 flags no row, ``2^(P+1) − 1`` every row.
    sums : In(stream.Signature(StructLayout({"slot", "recip": R + 1, "recip_exp"}), always_ready=True))
        The sums beats the engine takes (valid = its handshake).
    room : Out(1)
        The FIFO can take every beat now in the pipeline and one more.
    out : Out(stream.Signature(StructLayout({"flags": rows, "last": 1})))
    """

    depth = 8

    def __init__(self, *, rows: int, max_seq_len: int, max_heads: int, numerics: Numerics = Numerics()):
        self.rows = positive_int("rows", rows, at_most=1024)
        self.max_seq_len = positive_int("max_seq_len", max_seq_len)
        self.max_heads = positive_int("max_heads", max_heads)
        self.nm = nm = Numerics.coerce(numerics)
        self.sum_width = nm.row_sum_width(max_seq_len)
        self.out_layout = data.StructLayout({"flags": rows, "last": 1})
        super().__init__({
            "start": In(1),
            "query_len": In(range(max_seq_len + 1)),
            "heads": In(range(max_heads + 1)),
            "threshold": In(nm.prob_width),
            "sums": In(stream.Signature(data.StructLayout({
                "slot": range(rows), "recip": nm.recip_bits + 1, "recip_exp": range(self.sum_width)}),
                always_ready=True)),
            "room": Out(1),
            "out": Out(stream.Signature(self.out_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        nm, R = self.nm, self.rows
        P, RB = nm.prob_frac_bits, nm.recip_bits
        query_len, heads, threshold = Signal.like(self.query_len), Signal.like(self.heads), Signal.like(self.threshold)
        base, head = Signal(range(self.max_seq_len + R)), Signal(range(self.max_heads + 1))
        beat = self.sums.payload
        block_end = beat.slot == R - 1
        block_last = base + R >= query_len
        with m.If(self.start):
            m.d.sync += [query_len.eq(self.query_len), heads.eq(self.heads), threshold.eq(self.threshold),
                         base.eq(0), head.eq(0)]
        with m.Elif(self.sums.valid & block_end):
            with m.If(block_last):
                m.d.sync += [base.eq(0), head.eq(head + 1)]
            with m.Else():
                m.d.sync += base.eq(base + R)

        # --- stage 1: the row's figures; stage 2: 2^P·r rounded half to even by s = max(R + e − P, 1).
        valid1 = register(m, self.sums.valid & ~self.start, "valid_s1", reset=True)
        stage = data.StructLayout({"slot": range(R), "recip": RB + 1, "recip_exp": range(self.sum_width),
                                   "row_ok": 1, "block_end": 1, "run_end": 1})
        s1 = Signal(stage, reset_less=True)
        m.d.sync += [s1.slot.eq(beat.slot), s1.recip.eq(beat.recip), s1.recip_exp.eq(beat.recip_exp),
                     s1.row_ok.eq(base + beat.slot < query_len), s1.block_end.eq(block_end),
                     s1.run_end.eq(block_end & block_last & (head + 1 >= heads))]
        shift_shape = range(RB + self.sum_width + 1)
        shift, half_at = Signal(shift_shape), Signal(shift_shape)
        m.d.comb += [shift.eq(Mux(RB + s1.recip_exp > P + 1, RB + s1.recip_exp - P, 1)), half_at.eq(shift - 1)]
        width = RB + 1 + P + 1
        scaled = Signal(width)
        m.d.comb += scaled.eq(s1.recip << P)
        biased = Signal(width + 1, reset_less=True)
        half = (Const(1, width + 1) << half_at)[:width + 1]
        m.d.sync += biased.eq(scaled + half - 1 + (scaled >> shift)[0])
        valid2 = register(m, valid1, "valid_s2", reset=True)
        s2, shift2 = register(m, s1, "stage_s2"), register(m, shift, "shift_s2")
        # --- stage 3: the shift; stage 4: the compare with the threshold.  The shift, the compare's
        # carry chain and the flag's select in one cycle were the SpAtten engine's critical path
        # (d580c71: 3.6 ns logic, 12.0 ns routing).
        valid3, s3 = register(m, valid2, "valid_s3", reset=True), register(m, s2, "stage_s3")
        largest = register(m, biased >> shift2, "largest_s3")
        valid4, s4 = register(m, valid3, "valid_s4", reset=True), register(m, s3, "stage_s4")
        row_flag = register(m, s3.row_ok & (largest < threshold), "row_flag_s4")

        # --- collect the block's bits; its last row writes the beat.
        flags = Signal(R)
        complete = Signal(R)
        m.d.comb += complete.eq(flags | (row_flag << s4.slot)[:R])
        with m.If(self.start):
            m.d.sync += flags.eq(0)
        with m.Elif(valid4):
            m.d.sync += flags.eq(Mux(s4.block_end, 0, complete))
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=self.out_layout.size, depth=self.depth)
        word = Signal(self.out_layout)
        m.d.comb += [
            word.flags.eq(complete), word.last.eq(s4.run_end),
            queue.w_data.eq(word), queue.w_en.eq(valid4 & s4.block_end),
            self.out.valid.eq(queue.r_rdy), self.out.payload.eq(queue.r_data), queue.r_en.eq(self.out.ready),
            # Four beats may be in the stages: room for them and the next one.
            self.room.eq(queue.level + 5 <= self.depth),
        ]
        return m
