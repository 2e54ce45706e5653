"""A register slice for valid/ready streams: payload, valid and ready all leave flip-flops."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Cuts every combinational path through a stream: ``i.ready`` is a register.

    A two-entry buffer: an output register that drives ``o`` and a skid
    register that catches the beat accepted in the cycle ``o`` stalled.
    ``i.ready`` is high while the skid register is empty, so it depends on
    nothing downstream in the same cycle; the only path from ``o.ready`` is
    the enable of the two registers.  Full rate (one beat per cycle) under
    any pattern of ``o.ready``; a beat takes one cycle to pass.

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
        skid = Signal.like(self.i.payload, name="skid")
        skid_full = Signal()
        out_free = ~self.o.valid | self.o.ready  # the output register loads this cycle
        taken = self.i.valid & ~skid_full
        m.d.comb += self.i.ready.eq(~skid_full)
        with m.If(out_free):
            m.d.sync += [self.o.payload.eq(Mux(skid_full, skid, self.i.payload)),
                         self.o.valid.eq(skid_full | self.i.valid),
                         skid_full.eq(0)]
        with m.Elif(taken):
            m.d.sync += [skid.eq(self.i.payload), skid_full.eq(1)]
        return m
