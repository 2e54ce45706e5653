"""Head importance (SpAtten): the magnitude sum of every head's output."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.numerics import clog2
from attn_rtl.params import positive_int

from .pipeline import adder_tree, delayed

__all__ = ["HeadImportance"]


class HeadImportance(wiring.Component):
    """``importance[h] = Σ |O[h, i, c]|`` over a head's output rows and columns, one value per head.

    Watches the engine's output stream (``o``: a beat is ``lanes`` signed
    outputs, lanes past ``d`` are 0; ``last`` ends a query block): the
    magnitudes of a beat go through an adder tree into the head's sum, and a
    head ends with the ``last`` beat of its final block (``rows`` queries per
    block, ``seq_len`` queries).  Finished sums queue in a FIFO of
    ``max_heads`` entries and leave on ``out`` (``last`` on the run's final
    head), so a run never waits for them unless the previous run's were not
    taken.

    Parameters
    ----------
    lanes, rows : int
        Outputs per beat and queries per block (the engine's ``cols`` and ``rows``).
    data_width : int
        Width of the signed outputs.
    max_seq_len, max_head_dim, max_heads : int
        Set the sum's width and the FIFO depth.

    Attributes
    ----------
    width : int
        ``data_width + ceil(log2(max_seq_len · max_head_dim))``: a head's sum never overflows.

    Ports
    -----
    start : In(1)
        Takes ``seq_len`` and ``heads``; clears the running sum.
    seq_len, heads : In
    o : In(stream.Signature(StructLayout({"data": ArrayLayout(signed(data_width), lanes), "last": 1}),
        always_ready=True))
        The accepted output beats (valid = the engine's ``o`` handshake).
    out : Out(stream.Signature(StructLayout({"data": unsigned(width), "last": 1})))
    """

    def __init__(self, *, lanes: int, rows: int, data_width: int, max_seq_len: int, max_head_dim: int,
                 max_heads: int):
        self.lanes = positive_int("lanes", lanes, at_most=256)
        self.rows = positive_int("rows", rows, at_most=1024)
        self.data_width = positive_int("data_width", data_width, at_most=64)
        self.max_seq_len = positive_int("max_seq_len", max_seq_len)
        self.max_heads = positive_int("max_heads", max_heads)
        self.width = data_width + clog2(max_seq_len * positive_int("max_head_dim", max_head_dim))
        super().__init__({
            "start": In(1),
            "seq_len": In(range(max_seq_len + 1)),
            "heads": In(range(max_heads + 1)),
            "o": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(data_width), lanes), "last": 1}), always_ready=True)),
            "out": Out(stream.Signature(data.StructLayout({"data": unsigned(self.width), "last": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        C, R = self.lanes, self.rows
        seq_len, heads = Signal.like(self.seq_len), Signal.like(self.heads)
        query, head = Signal(range(self.max_seq_len + R)), Signal(range(self.max_heads + 1))
        beat = self.o.payload

        # |x| of a signed w-bit lane fits w unsigned bits.
        magnitudes = [Mux(beat.data[c] < 0, -beat.data[c], beat.data[c])[:self.data_width] for c in range(C)]
        beat_sum, stages = adder_tree(m, magnitudes, "magnitude")
        valid = delayed(m, self.o.valid & ~self.start, stages, "valid", reset=True)
        head_end = Signal()
        run_end = Signal()
        with m.If(self.start):
            m.d.sync += [seq_len.eq(self.seq_len), heads.eq(self.heads), query.eq(0), head.eq(0)]
        with m.Elif(self.o.valid & beat.last):
            with m.If(query + R >= seq_len):
                m.d.sync += [query.eq(0), head.eq(head + 1)]
            with m.Else():
                m.d.sync += query.eq(query + R)
        m.d.comb += [head_end.eq(self.o.valid & beat.last & (query + R >= seq_len)),
                     run_end.eq(head + 1 >= heads)]
        head_end_d = delayed(m, head_end & ~self.start, stages, "head_end", reset=True)
        run_end_d = delayed(m, run_end, stages, "run_end")

        total = Signal(self.width)
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=self.width + 1, depth=self.max_heads)
        with m.If(self.start):
            m.d.sync += total.eq(0)
        with m.Elif(valid):
            m.d.sync += total.eq(Mux(head_end_d, 0, total + beat_sum))
        m.d.comb += [
            queue.w_en.eq(valid & head_end_d),
            queue.w_data.eq((total + beat_sum) | (run_end_d << self.width)),
            self.out.valid.eq(queue.r_rdy),
            self.out.payload.data.eq(queue.r_data[:self.width]),
            self.out.payload.last.eq(queue.r_data[self.width]),
            queue.r_en.eq(self.out.ready),
        ]
        return m
