"""A byte gearbox: packets of bytes re-cut from words of one width into words of another, at any alignment."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import positive_int

__all__ = ["ByteGearbox"]


class ByteGearbox(wiring.Component):
    """Re-cuts a packet of bytes from ``in_bytes``-byte words into ``out_bytes``-byte words.

    Every input beat brings bytes ``[lo, hi)`` of its word (``lo < hi``); the
    bytes of a packet (the beats up to ``last``) are concatenated in order and
    sent in words of ``out_bytes``, the first output word starting with
    ``skip`` bytes that carry no data (``skip`` is taken from a packet's first
    beat).  ``strobe`` marks the data bytes of an output word; the last word of
    a packet (``last``) is cut short, its bytes past the packet's end are 0 with
    their strobes low.  This is what a DMA needs at both ends: rows of a tensor
    at any byte address arrive as bus words (``lo`` the row's offset in its
    first word) and leave as the engine's lane words, and lane words leave as
    bus words whose first ``skip`` byte lanes lie before the row's address.

    One output word a cycle; an input beat is first aligned into a register
    (a cycle), then inserted when fewer than ``out_bytes`` bytes remain after
    the word being sent, so a packet of ``n`` bytes takes about
    ``max(n / in_bytes, n / out_bytes)`` cycles. After a packet's last beat,
    the next packet waits until its bytes have left.

    Parameters
    ----------
    in_bytes, out_bytes : int
        Bytes per input and per output word.

    Ports
    -----
    i : In(stream.Signature(data, lo, hi, skip, last))
    o : Out(stream.Signature(data, strobe, last))
    """

    def __init__(self, *, in_bytes: int, out_bytes: int):
        self._MustUse__silence = True   # a refused build is never elaborated (and a built one is the DMA's)
        self.in_bytes = positive_int("in_bytes", in_bytes, at_most=256)
        self.out_bytes = positive_int("out_bytes", out_bytes, at_most=256)
        in_layout = data.StructLayout({"data": 8 * in_bytes, "lo": range(in_bytes), "hi": range(1, in_bytes + 1),
                                       "skip": range(out_bytes), "last": 1})
        out_layout = data.StructLayout({"data": 8 * out_bytes, "strobe": out_bytes, "last": 1})
        super().__init__({"i": In(stream.Signature(in_layout)), "o": Out(stream.Signature(out_layout))})

    @property
    def capacity(self) -> int:
        """Bytes the gearbox holds at most."""
        return self.in_bytes + self.out_bytes

    def elaborate(self, platform):
        m = Module()
        n_in, n_out, cap = self.in_bytes, self.out_bytes, self.capacity
        # Bytes at and above ``count`` are kept 0 (masked every cycle), so nothing needs a reset but
        # the counters: a stale byte never reaches a short last word.
        held = Signal(8 * cap, reset_less=True)
        valid = Signal(cap)
        count = Signal(range(cap + 1))
        ending = Signal()      # the packet's last beat is in: send what is held, take nothing
        in_packet = Signal()   # a beat of the packet was taken (``skip`` applies to its first only)

        full = count >= n_out
        m.d.comb += [self.o.valid.eq(full | (ending & (count != 0))),
                     self.o.payload.data.eq(held[:8 * n_out]), self.o.payload.strobe.eq(valid[:n_out]),
                     self.o.payload.last.eq(ending & (count <= n_out))]
        sent = self.o.valid & self.o.ready
        base = Signal(range(cap + 1))
        m.d.comb += base.eq(Mux(sent, Mux(full, count - n_out, 0), count))
        kept_held = Mux(sent, held >> (8 * n_out), held)
        kept_valid = Mux(sent, valid >> n_out, valid)
        below_base = Cat(Const(j, range(cap + 1)) < base for j in range(cap))

        # The input beat's bytes [lo, hi) moved down to byte 0 first, in a register of their own: the
        # insertion below then shifts once (two shifts in a row were the DMA's critical path).
        beat = self.i.payload
        aligned = Signal(8 * n_in, reset_less=True)
        aligned_count = Signal(range(n_in + 1), reset_less=True)
        aligned_skip = Signal.like(beat.skip, reset_less=True)
        aligned_last = Signal(reset_less=True)
        aligned_valid = Signal()
        room = ~ending & (base < n_out)
        taken = aligned_valid & room
        m.d.comb += self.i.ready.eq(~aligned_valid | taken)
        in_range = Cat((j >= beat.lo) & (j < beat.hi) for j in range(n_in))
        bytes_in = Cat(beat.data.word_select(j, 8) & in_range[j].replicate(8) for j in range(n_in))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [aligned.eq(bytes_in >> (8 * beat.lo)), aligned_count.eq(beat.hi - beat.lo),
                         aligned_skip.eq(beat.skip), aligned_last.eq(beat.last), aligned_valid.eq(1)]
        with m.Elif(taken):
            m.d.sync += aligned_valid.eq(0)

        at = Signal(range(cap))
        m.d.comb += at.eq(Mux(in_packet, base, aligned_skip))
        placed = Cat(aligned, Const(0, 8 * n_out)) << (8 * at)
        placed_valid = Cat(Cat(Const(j, range(n_in + 1)) < aligned_count for j in range(n_in)), Const(0, n_out)) << at
        byte_mask = Cat(b.replicate(8) for b in below_base)
        with m.If(taken):
            m.d.sync += [held.eq((kept_held & byte_mask) | placed[:8 * cap]),
                         valid.eq((kept_valid & below_base) | placed_valid[:cap]),
                         count.eq(at + aligned_count), in_packet.eq(~aligned_last)]
            with m.If(aligned_last):
                m.d.sync += ending.eq(1)
        with m.Else():
            m.d.sync += [held.eq(kept_held & byte_mask), valid.eq(kept_valid & below_base), count.eq(base)]
        with m.If(sent & self.o.payload.last):
            m.d.sync += ending.eq(0)
        return m
