"""A FIFO for writers that hold credits: the write side has no ready and no full check."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import positive_int

__all__ = ["CreditFIFO"]


class CreditFIFO(wiring.Component):
    """A ring buffer in block or distributed RAM with a stream read side.

    The writer reserves room before it writes (credits), so a write is just
    ``w_en``: the RAM's write enable, address and data come straight from
    flip-flops, with no full-flag logic in between.  This is what keeps a wide
    buffer off the critical path; Amaranth's ``SyncFIFO`` gates every write
    with its level comparison.  Writing into a full buffer is the writer's
    error and overwrites the oldest entry.

    The read side prefetches into a two-entry output queue, so ``r`` runs at
    one entry per cycle under any pattern of ``r.ready`` and its payload and
    valid come from registers.

    Parameters
    ----------
    width : int
    depth : int
        Entries in RAM; the two output registers add to that.

    Attributes
    ----------
    latency : int
        Cycles from ``w_en`` to the entry on ``r`` (when the buffer was empty).

    Ports
    -----
    w_en : In(1)
    w_data : In(width)
    r : Out(stream.Signature(width))
    """

    def __init__(self, *, width: int, depth: int):
        self.width = positive_int("width", width)
        self.depth = positive_int("depth", depth)
        super().__init__({"w_en": In(1), "w_data": In(width), "r": Out(stream.Signature(width))})

    @property
    def latency(self) -> int:
        return 3

    def elaborate(self, platform):
        m = Module()
        # Flip-flops, not RAM: Yosys maps ECP5 block RAM with REGMODE NOREG, whose 5.8 ns read
        # sets the clock (114 MHz on the 8x8 array), and distributed RAM for the 8x8 array's
        # 177-bit rows left nextpnr-ecp5 unable to finish routing.  The buffer is shallow.
        m.submodules.storage = storage = memory.Memory(shape=unsigned(self.width), depth=self.depth, init=[],
                                                       attrs={"ram_style": "logic"})
        wr = storage.write_port()
        rd = storage.read_port(domain="sync", transparent_for=())

        def advance(ptr):
            return Mux(ptr == self.depth - 1, 0, ptr + 1)

        w_ptr = Signal(range(self.depth))
        r_ptr = Signal(range(self.depth))
        m.d.comb += [wr.addr.eq(w_ptr), wr.data.eq(self.w_data), wr.en.eq(self.w_en)]
        with m.If(self.w_en):
            m.d.sync += w_ptr.eq(advance(w_ptr))

        # Entries in RAM not yet fetched (``stored``, with ``nonempty`` kept as a flag of its own
        # so that fetch is two gates from flip-flops); entries fetched but not yet taken are at
        # most two: one in flight from the RAM, the rest queued in ``head`` and ``second``.
        stored = Signal(range(self.depth + 1))
        nonempty = Signal()
        in_flight = Signal()
        valid = Signal()          # head holds an entry (queued >= 1)
        full = Signal()           # second holds one too (queued == 2)
        pop = valid & self.r.ready
        fetch = Signal()
        m.d.comb += [
            fetch.eq(nonempty & ((valid + full + in_flight - pop) <= 1)),
            # The read port reads r_ptr every cycle; what a fetch reads arrives a cycle later,
            # marked by in_flight.  No enable means no wide enable net.
            rd.addr.eq(r_ptr),
            rd.en.eq(1),
        ]
        m.d.sync += [
            stored.eq(stored + self.w_en - fetch),
            nonempty.eq(Mux(fetch, (stored >= 2) | ((stored == 1) & self.w_en), (stored != 0) | self.w_en)),
            in_flight.eq(fetch),
        ]
        with m.If(fetch):
            m.d.sync += r_ptr.eq(advance(r_ptr))

        # The payload registers' enables: head's is one gate of (valid, ready, in_flight); second
        # takes every arrival (harmless when the arrival goes to head).  So r.ready fans out
        # through a single LUT to the wide payload register.
        head, second = Signal(self.width), Signal(self.width)
        queued_next = Signal(range(3))
        m.d.comb += queued_next.eq(valid + full + in_flight - pop)
        m.d.sync += [valid.eq(queued_next != 0), full.eq(queued_next == 2)]
        with m.If(pop | (in_flight & ~valid)):
            m.d.sync += head.eq(Mux(full, second, rd.data))
        with m.If(in_flight):
            m.d.sync += second.eq(rd.data)
        m.d.comb += [self.r.payload.eq(head), self.r.valid.eq(valid)]
        return m
