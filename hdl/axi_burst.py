"""AXI4 burst splitting: a run of bus words cut into INCR bursts of at most 256 beats that never cross 4 KB."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import positive_int

__all__ = ["BurstSplitter", "AXI_BURST_BEATS", "AXI_PAGE_BYTES", "bus_bytes_of", "RowBus"]

#: AXI4 INCR bursts: at most 256 beats, and no burst may cross a 4 KB address boundary.
AXI_BURST_BEATS, AXI_PAGE_BYTES = 256, 4096


def bus_bytes_of(data_width) -> int:
    """Bytes of an AXI4 data bus of ``data_width`` bits (32 … 512, a power of two), or a ``ValueError``."""
    if data_width not in (32, 64, 128, 256, 512):
        raise ValueError(f"data_width must be 32, 64, 128, 256 or 512 bits, not {data_width!r}")
    return data_width // 8


@dataclass(frozen=True)
class RowBus:
    """The figures a row master (reader or writer) is built from, validated: bus bytes, lane-word bytes,
    the longest row, rows in flight, and the most bus words a row at any alignment spans."""
    addr_width: int
    bus_bytes: int
    word_bytes: int
    max_length: int
    outstanding: int

    @classmethod
    def check(cls, *, addr_width: int, data_width: int, word_bytes: int, max_length: int,
              outstanding: int) -> RowBus:
        return cls(addr_width=positive_int("addr_width", addr_width, at_most=64), bus_bytes=bus_bytes_of(data_width),
                   word_bytes=positive_int("word_bytes", word_bytes, at_most=256),
                   max_length=positive_int("max_length", max_length),
                   outstanding=positive_int("outstanding", outstanding, at_most=256))

    @property
    def max_beats(self) -> int:
        return (self.bus_bytes - 1 + self.max_length + self.bus_bytes - 1) // self.bus_bytes


class BurstSplitter(wiring.Component):
    """Cuts each request, ``beats`` bus words from the word-aligned ``addr``, into AXI4 INCR bursts.

    Every burst is at most 256 beats and ends at or before the next 4 KB
    boundary; ``len`` is the AXI encoding (beats − 1) and ``last`` marks a
    request's final burst.  One burst a cycle; the next request is taken in
    the cycle its predecessor's last burst leaves.

    Parameters
    ----------
    addr_width : int
        Byte address bits.
    bus_bytes : int
        Bytes per bus word (``addr`` is a multiple of it).
    max_beats : int
        Largest request, in bus words.

    Ports
    -----
    i : In(stream.Signature(addr, beats))
    o : Out(stream.Signature(addr, len, last))
    """

    def __init__(self, *, addr_width: int, bus_bytes: int, max_beats: int):
        self.addr_width = positive_int("addr_width", addr_width, at_most=64)
        self.bus_bytes = bus_bytes_of(8 * bus_bytes)
        self.max_beats = positive_int("max_beats", max_beats)
        request = data.StructLayout({"addr": addr_width, "beats": range(max_beats + 1)})
        burst = data.StructLayout({"addr": addr_width, "len": 8, "last": 1})
        super().__init__({"i": In(stream.Signature(request)), "o": Out(stream.Signature(burst))})

    def elaborate(self, platform):
        m = Module()
        shift = (self.bus_bytes - 1).bit_length()
        addr = Signal(self.addr_width, reset_less=True)
        remaining = Signal(range(self.max_beats + 1), reset_less=True)
        busy = Signal()
        to_page_end = Signal(range(AXI_PAGE_BYTES // self.bus_bytes + 1))
        m.d.comb += to_page_end.eq((AXI_PAGE_BYTES - addr[:12]) >> shift)
        beats = Signal(range(AXI_BURST_BEATS + 1))
        cap = Mux(to_page_end < AXI_BURST_BEATS, to_page_end, AXI_BURST_BEATS)
        m.d.comb += beats.eq(Mux(remaining < cap, remaining, cap))
        final = beats == remaining
        m.d.comb += [self.o.valid.eq(busy), self.o.payload.addr.eq(addr), self.o.payload.len.eq(beats - 1),
                     self.o.payload.last.eq(final)]
        sent = self.o.valid & self.o.ready
        m.d.comb += self.i.ready.eq(~busy | (sent & final))
        with m.If(sent):
            m.d.sync += [addr.eq(addr + (beats << shift)), remaining.eq(remaining - beats)]
            with m.If(final):
                m.d.sync += busy.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [addr.eq(self.i.payload.addr), remaining.eq(self.i.payload.beats), busy.eq(1)]
        return m
