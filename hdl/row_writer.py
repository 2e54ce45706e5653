"""An AXI4 write master for rows of bytes: words of a row in, bursts with byte strobes out, responses counted."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi_burst import BurstSplitter, RowBus
from .byte_gearbox import ByteGearbox

__all__ = ["RowWriter"]


class RowWriter(wiring.Component):
    """Writes rows of bytes through the write channels of an AXI4 master.

    A request names a row, ``length`` bytes at the byte address ``addr`` (no
    alignment needed); its bytes then arrive on ``words``, ``ceil(length /
    word_bytes)`` words of ``word_bytes`` (lane 0 first; the lanes of the last
    word past the row are not written).  The row goes out as whole bus words in
    INCR bursts of at most 256 beats that never cross 4 KB, ``wstrb`` set for
    the row's bytes only, so nothing beside the row changes.  Up to
    ``outstanding`` rows wait for their data.  ``idle`` is high when every
    burst issued has its write response; ``error`` is set by a response other
    than OKAY and stays set until reset.

    Parameters
    ----------
    addr_width : int
    data_width : int
        Bus bits: 32, 64, 128, 256 or 512.
    word_bytes : int
    max_length : int
        Longest row, bytes.
    outstanding : int
        Rows and bursts in flight at most.

    Ports
    -----
    req : In(stream.Signature(addr, length))
    words : In(stream.Signature(data))
    aw : Out(stream.Signature(addr, len))
    w : Out(stream.Signature(data, strb, last))
    b : In(stream.Signature(resp))
    idle, error : Out(1)
    """

    def __init__(self, *, addr_width: int, data_width: int, word_bytes: int, max_length: int, outstanding: int = 8):
        self._MustUse__silence = True   # a refused build is never elaborated (and a built one is the top's)
        self.bus = RowBus.check(addr_width=addr_width, data_width=data_width, word_bytes=word_bytes,
                                max_length=max_length, outstanding=outstanding)
        request = data.StructLayout({"addr": addr_width, "length": range(max_length + 1)})
        super().__init__({
            "req": In(stream.Signature(request)),
            "words": In(stream.Signature(8 * word_bytes)),
            "aw": Out(stream.Signature(data.StructLayout({"addr": addr_width, "len": 8}))),
            "w": Out(stream.Signature(data.StructLayout({"data": data_width, "strb": self.bus.bus_bytes, "last": 1}))),
            "b": In(stream.Signature(data.StructLayout({"resp": 2}))),
            "idle": Out(1), "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        B, G = self.bus.bus_bytes, self.bus.word_bytes
        shift = (B - 1).bit_length()
        m.submodules.splitter = split = BurstSplitter(addr_width=self.bus.addr_width, bus_bytes=B,
                                                      max_beats=self.bus.max_beats)
        m.submodules.gearbox = gear = ByteGearbox(in_bytes=G, out_bytes=B)
        row_layout = data.StructLayout({"offset": range(B), "length": range(self.bus.max_length + 1)})
        m.submodules.rows = rows = fifo.SyncFIFOBuffered(width=row_layout.size, depth=self.bus.outstanding)
        # Beats of every burst issued, in order: the write data's ``last``.
        m.submodules.bursts = bursts = fifo.SyncFIFOBuffered(width=8, depth=self.bus.outstanding)

        req = self.req.payload
        offset = Signal(range(B))
        m.d.comb += offset.eq(req.addr[:shift] if shift else 0)
        ready = split.i.ready & rows.w_rdy
        m.d.comb += [self.req.ready.eq(ready), split.i.valid.eq(self.req.valid & rows.w_rdy),
                     split.i.payload.addr.eq(req.addr >> shift << shift),
                     split.i.payload.beats.eq((offset + req.length + B - 1) >> shift),
                     rows.w_en.eq(self.req.valid & ready)]
        packed = Signal(row_layout)
        m.d.comb += [packed.offset.eq(offset), packed.length.eq(req.length), rows.w_data.eq(packed)]

        limit = 2 * self.bus.outstanding
        pending = Signal(range(limit + 1))     # bursts issued, response not yet in
        room = bursts.w_rdy & (pending < limit)
        issue = split.o.valid & self.aw.ready & room
        m.d.comb += [self.aw.valid.eq(split.o.valid & room), self.aw.payload.addr.eq(split.o.payload.addr),
                     self.aw.payload.len.eq(split.o.payload.len), split.o.ready.eq(self.aw.ready & room),
                     bursts.w_en.eq(issue), bursts.w_data.eq(split.o.payload.len)]

        # Row data: words into the gearbox, the first placed at the row's offset in its bus word.
        row = data.View(row_layout, rows.r_data)
        sent_bytes = Signal(range(self.bus.max_length + G + 1))
        left = row.length - sent_bytes
        final = left <= G
        m.d.comb += [gear.i.valid.eq(self.words.valid & rows.r_rdy), self.words.ready.eq(gear.i.ready & rows.r_rdy),
                     gear.i.payload.data.eq(self.words.payload), gear.i.payload.lo.eq(0),
                     gear.i.payload.hi.eq(Mux(final, left, G)), gear.i.payload.skip.eq(row.offset),
                     gear.i.payload.last.eq(final)]
        taken = gear.i.valid & gear.i.ready
        with m.If(taken):
            m.d.sync += sent_bytes.eq(Mux(final, 0, sent_bytes + G))
        m.d.comb += rows.r_en.eq(taken & final)

        beat = Signal(8)
        m.d.comb += [self.w.valid.eq(gear.o.valid & bursts.r_rdy), gear.o.ready.eq(self.w.ready & bursts.r_rdy),
                     self.w.payload.data.eq(gear.o.payload.data), self.w.payload.strb.eq(gear.o.payload.strobe),
                     self.w.payload.last.eq(beat == bursts.r_data)]
        written = self.w.valid & self.w.ready
        with m.If(written):
            m.d.sync += beat.eq(Mux(self.w.payload.last, 0, beat + 1))
        m.d.comb += bursts.r_en.eq(written & self.w.payload.last)

        m.d.comb += self.b.ready.eq(1)
        answered = self.b.valid
        m.d.sync += pending.eq(pending + issue - answered)
        with m.If(answered & (self.b.payload.resp != 0)):
            m.d.sync += self.error.eq(1)
        m.d.comb += self.idle.eq((pending == 0) & ~split.o.valid & ~self.req.valid & ~rows.r_rdy & ~gear.o.valid)
        return m
