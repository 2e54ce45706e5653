"""A register slice for valid/ready streams: valid and ready leave flip-flops, ready reaches pointers only."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import positive_int

from .pipeline import check_kept_target, kept_register

__all__ = ["RegisterSlice"]


class RegisterSlice(wiring.Component):
    """Cuts the handshake paths through a stream: ``i.ready`` and ``o.valid`` are registers.

    A two-entry ring of registers.  The free entry takes ``i.payload`` every
    cycle, whether or not ``i.valid`` is high (its enables are the write
    pointer's and the full flag's copies alone, so ``i.valid`` reaches only the
    pointers and flags); a beat accepted on ``i`` stays there.  ``o``
    shows the older entry through a two-way multiplexer selected by a
    register.  ``o.ready`` therefore reaches only the read pointer's copies and
    the two flags, never the wide payload registers: this is what lets a far-away
    consumer's ready arrive late in the cycle.  The usual skid buffer loads
    its output register on ``o.ready``, fanning it out to every payload bit.
    Full rate (one beat per cycle) under any pattern of ``o.ready``; a beat
    takes one cycle to pass.

    The pointers and the full flag have a copy of their own for every ``select_group``
    payload bits: one pointer selecting or enabling a wide payload fans out across the die.

    Parameters
    ----------
    shape : shape-castable
        Payload shape of both streams.
    target : "generic" or "ecp5"
        ``ecp5`` keeps the pointer copies apart in ``TRELLIS_FF`` cells
        (:func:`~attn_rtl.hdl.pipeline.kept_register`); ``generic`` synthesis merges them.
    select_group : int
        Payload bits served by one copy of the pointers.

    Attributes
    ----------
    latency : int
        Cycles from a beat on ``i`` to it on ``o`` (1).
    entries : tuple of two Signal
        The ring's two entries (payload bits), and ``head_select`` which of them ``o.payload``
        shows: a consumer that computes on the payload can compute on both entries from
        flip-flops and select the result by ``head_select`` (its own copy of the read pointer),
        instead of computing after the payload's multiplexer.
    head_select : Signal
    tail_select : Signal
        Which entry the next beat accepted goes to (the write pointer; read by the formal spec's invariants).

    Ports
    -----
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    """

    latency = 1

    def __init__(self, shape, *, target: str = "generic", select_group: int = 32):
        if not isinstance(shape, data.Layout):
            try:
                shape = Shape.cast(shape)
            except TypeError:
                raise TypeError(f"shape must be a shape-castable object, not {shape!r}") from None
        self.target = check_kept_target(target)
        self.select_group = positive_int("select_group", select_group)
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})
        # Only the pointers and flags are reset: an entry is don't-care until its flag says otherwise.
        self.entries = tuple(Signal(len(Value.cast(self.i.payload)), name=f"entry_{n}", reset_less=True)
                             for n in range(2))
        self.head_select = Signal()
        self.tail_select = Signal()

    def elaborate(self, platform):
        m = Module()
        entries = self.entries
        w_ptr, r_ptr = Signal(), Signal()
        full, nonempty = Signal(), Signal()   # the state is these two flags: i.ready and o.valid
        count = Cat(nonempty & ~full, full)   # beats inside: 0, 1 or 2
        m.d.comb += [self.i.ready.eq(~full), self.o.valid.eq(nonempty)]
        push = self.i.valid & self.i.ready
        pop = self.o.valid & self.o.ready
        w_ptr_next, r_ptr_next = Mux(push, ~w_ptr, w_ptr), Mux(pop, ~r_ptr, r_ptr)
        after = count + push - pop
        full_next = after == 2
        m.d.sync += [w_ptr.eq(w_ptr_next), r_ptr.eq(r_ptr_next), full.eq(full_next), nonempty.eq(after != 0)]
        # Each group of payload bits is written and read by its own copies of the pointers and of
        # full: i.valid and o.ready reach a few gates, not every payload bit's enable.  The free
        # entry is don't-care, so it is written whether or not a beat arrives.
        payload_in, groups = Value.cast(self.i.payload), []
        for n, lo in enumerate(range(0, len(payload_in), self.select_group)):
            hi = lo + self.select_group
            g_w_ptr, g_r_ptr, g_full = (kept_register(m, value, f"{name}_{n}", target=self.target, reset=True)
                                        for value, name in ((w_ptr_next, "w_ptr"), (r_ptr_next, "r_ptr"),
                                                            (full_next, "full")))
            for k, entry in enumerate(entries):
                with m.If(~g_full & (g_w_ptr == k)):
                    m.d.sync += entry[lo:hi].eq(payload_in[lo:hi])
            groups.append(Mux(g_r_ptr, entries[1][lo:hi], entries[0][lo:hi]))
        m.d.comb += self.o.payload.eq(Cat(*groups))
        m.d.sync += self.head_select.eq(r_ptr_next)   # merged with r_ptr by synthesis: one more load on it
        m.d.comb += self.tail_select.eq(w_ptr)
        return m
