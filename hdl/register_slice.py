"""A register slice for valid/ready streams: valid and ready leave flip-flops, ready fans out to three."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisterSlice"]


class RegisterSlice(wiring.Component):
    """Cuts the handshake paths through a stream: ``i.ready`` and ``o.valid`` are registers.

    A two-entry ring of registers.  A beat accepted on ``i`` is written into
    the free entry (the entries' enables come from ``i`` alone); ``o``
    shows the older entry through a two-way multiplexer selected by a
    register.  ``o.ready`` therefore reaches only the read pointer and the
    two flags, never the wide payload registers: this is what lets a far-away
    consumer's ready arrive late in the cycle.  The usual skid buffer loads
    its output register on ``o.ready``, fanning it out to every payload bit.
    Full rate (one beat per cycle) under any pattern of ``o.ready``; a beat
    takes one cycle to pass.

    Parameters
    ----------
    shape : shape-castable
        Payload shape of both streams.

    Attributes
    ----------
    latency : int
        Cycles from a beat on ``i`` to it on ``o`` (1).

    Ports
    -----
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    """

    latency = 1

    def __init__(self, shape):
        if not isinstance(shape, data.Layout):
            try:
                shape = Shape.cast(shape)
            except TypeError:
                raise TypeError(f"shape must be a shape-castable object, not {shape!r}") from None
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        # Only the pointers and flags are reset: an entry is don't-care until its flag says otherwise.
        entries = [Signal.like(self.i.payload, name=f"entry_{n}", reset_less=True) for n in range(2)]
        w_ptr, r_ptr = Signal(), Signal()
        count = Signal(range(3))
        full, nonempty = Signal(), Signal()   # derivable from count, kept as flip-flops: i.ready, o.valid
        m.d.comb += [self.i.ready.eq(~full), self.o.valid.eq(nonempty)]
        push = self.i.valid & self.i.ready
        pop = self.o.valid & self.o.ready
        for n, entry in enumerate(entries):
            with m.If(push & (w_ptr == n)):
                m.d.sync += entry.eq(self.i.payload)
        with m.If(push):
            m.d.sync += w_ptr.eq(~w_ptr)
        with m.If(pop):
            m.d.sync += r_ptr.eq(~r_ptr)
        after = count + push - pop
        m.d.sync += [count.eq(after), full.eq(after == 2), nonempty.eq(after != 0)]
        m.d.comb += self.o.payload.eq(Mux(r_ptr, entries[1], entries[0]))
        return m
