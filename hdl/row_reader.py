"""An AXI4 read master for rows of bytes: any address and length in, the rows' words out, several reads in flight."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi_burst import BurstSplitter, RowBus
from .byte_gearbox import ByteGearbox

__all__ = ["RowReader"]


class RowReader(wiring.Component):
    """Reads rows of bytes through the read channels of an AXI4 master and sends them as ``word_bytes``-byte words.

    A request names a row: ``length`` bytes from the byte address ``addr`` (no
    alignment needed) and a ``tag`` that comes back with its words.  The row
    is read as whole bus words (from ``addr`` rounded down to the bus width to
    the word holding its last byte) in INCR bursts of at most 256 beats that
    never cross 4 KB (:class:`~attn_rtl.hdl.axi_burst.BurstSplitter`), and the
    bytes are re-cut (:class:`~attn_rtl.hdl.byte_gearbox.ByteGearbox`) into
    ``ceil(length / word_bytes)`` words, byte 0 of the row in lane 0 of word 0,
    the lanes past the row 0; ``word`` numbers them and ``last`` marks a row's
    final word.  Up to ``outstanding`` rows are in flight: their addresses are
    issued before the first data returns, and all reads use one ID, so the
    data comes back in order.  ``error`` is set by any read response other
    than OKAY and stays set until reset.

    Parameters
    ----------
    addr_width : int
        Byte address bits.
    data_width : int
        Bus bits: 32, 64, 128, 256 or 512.
    word_bytes : int
        Bytes per output word.
    max_length : int
        Longest row, bytes.
    tag_shape : shape-castable
        What a request carries to its words.
    outstanding : int
        Rows in flight at most.

    Ports
    -----
    req : In(stream.Signature(addr, length, tag))
    words : Out(stream.Signature(data, word, tag, last))
    ar : Out(stream.Signature(addr, len))
        The read address channel (INCR bursts of full bus words).
    r : In(stream.Signature(data, resp, last))
        The read data channel.
    error : Out(1)
    """

    def __init__(self, *, addr_width: int, data_width: int, word_bytes: int, max_length: int, tag_shape,
                 outstanding: int = 8):
        self._MustUse__silence = True   # a refused build is never elaborated (and a built one is the top's)
        self.bus = RowBus.check(addr_width=addr_width, data_width=data_width, word_bytes=word_bytes,
                                max_length=max_length, outstanding=outstanding)
        self.tag_shape = tag_shape
        max_words = -(-max_length // word_bytes)
        request = data.StructLayout({"addr": addr_width, "length": range(max_length + 1), "tag": tag_shape})
        word = data.StructLayout({"data": 8 * word_bytes, "word": range(max_words), "tag": tag_shape, "last": 1})
        super().__init__({
            "req": In(stream.Signature(request)),
            "words": Out(stream.Signature(word)),
            "ar": Out(stream.Signature(data.StructLayout({"addr": addr_width, "len": 8}))),
            "r": In(stream.Signature(data.StructLayout({"data": data_width, "resp": 2, "last": 1}))),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        B = self.bus.bus_bytes
        shift = (B - 1).bit_length()
        m.submodules.splitter = split = BurstSplitter(addr_width=self.bus.addr_width, bus_bytes=B,
                                                      max_beats=self.bus.max_beats)
        m.submodules.gearbox = gear = ByteGearbox(in_bytes=B, out_bytes=self.bus.word_bytes)
        # What the read data needs per row (offset, beats, bytes of the last beat), and what its words carry.
        beat_layout = data.StructLayout({"offset": range(B), "beats": range(self.bus.max_beats + 1),
                                         "end": range(1, B + 1)})
        m.submodules.beat_info = beat_info = fifo.SyncFIFOBuffered(width=beat_layout.size, depth=self.bus.outstanding)
        m.submodules.tag_info = tag_info = fifo.SyncFIFOBuffered(width=Shape.cast(self.tag_shape).width,
                                                                 depth=self.bus.outstanding + 2)

        req = self.req.payload
        offset = Signal(range(B))
        m.d.comb += offset.eq(req.addr[:shift] if shift else 0)
        end_byte = Signal(range(B + self.bus.max_length + 1))
        m.d.comb += end_byte.eq(offset + req.length)
        info = Signal(beat_layout)
        m.d.comb += [info.offset.eq(offset), info.beats.eq((end_byte + B - 1) >> shift),
                     info.end.eq(end_byte - ((end_byte - 1) >> shift << shift))]
        take = self.req.valid & split.i.ready & beat_info.w_rdy & tag_info.w_rdy
        m.d.comb += [self.req.ready.eq(split.i.ready & beat_info.w_rdy & tag_info.w_rdy),
                     split.i.valid.eq(self.req.valid & beat_info.w_rdy & tag_info.w_rdy),
                     split.i.payload.addr.eq(req.addr >> shift << shift), split.i.payload.beats.eq(info.beats),
                     beat_info.w_en.eq(take), beat_info.w_data.eq(info),
                     tag_info.w_en.eq(take), tag_info.w_data.eq(req.tag)]
        m.d.comb += [self.ar.valid.eq(split.o.valid), self.ar.payload.addr.eq(split.o.payload.addr),
                     self.ar.payload.len.eq(split.o.payload.len), split.o.ready.eq(self.ar.ready)]

        # Read data: the row's beats into the gearbox, the first from its offset, the last to its end.
        row = data.View(beat_layout, beat_info.r_data)
        beat = Signal(range(self.bus.max_beats + 1))
        final = beat == row.beats - 1
        m.d.comb += [gear.i.valid.eq(self.r.valid & beat_info.r_rdy),
                     self.r.ready.eq(gear.i.ready & beat_info.r_rdy),
                     gear.i.payload.data.eq(self.r.payload.data),
                     gear.i.payload.lo.eq(Mux(beat == 0, row.offset, 0)),
                     gear.i.payload.hi.eq(Mux(final, row.end, B)),
                     gear.i.payload.skip.eq(0), gear.i.payload.last.eq(final)]
        with m.If(gear.i.valid & gear.i.ready):
            m.d.sync += beat.eq(Mux(final, 0, beat + 1))
            with m.If(self.r.payload.resp != 0):
                m.d.sync += self.error.eq(1)
        m.d.comb += beat_info.r_en.eq(gear.i.valid & gear.i.ready & final)

        word = Signal.like(self.words.payload.word)
        m.d.comb += [self.words.valid.eq(gear.o.valid & tag_info.r_rdy),
                     gear.o.ready.eq(self.words.ready & tag_info.r_rdy),
                     self.words.payload.data.eq(gear.o.payload.data), self.words.payload.word.eq(word),
                     self.words.payload.tag.eq(tag_info.r_data), self.words.payload.last.eq(gear.o.payload.last)]
        sent = self.words.valid & self.words.ready
        with m.If(sent):
            m.d.sync += word.eq(Mux(gear.o.payload.last, 0, word + 1))
        m.d.comb += tag_info.r_en.eq(sent & gear.o.payload.last)
        return m
