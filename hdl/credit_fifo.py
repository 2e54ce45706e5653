"""A FIFO for writers that hold credits: the write side has no ready and no full check."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import stream, wiring
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

    #: Bits of the word behind each copy of the read pointer.
    READ_SLICE = 16

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
        def advance(ptr):
            return Mux(ptr == self.depth - 1, 0, ptr + 1)

        w_ptr = Signal(range(self.depth))
        r_ptr = Signal(range(self.depth))
        entries = [Signal(self.width, name=f"entry_{i}") for i in range(self.depth)]
        for i, entry in enumerate(entries):
            with m.If(self.w_en & (w_ptr == i)):
                m.d.sync += entry.eq(self.w_data)
        with m.If(self.w_en):
            m.d.sync += w_ptr.eq(advance(w_ptr))

        # The read multiplexer is split into slices of the word, each selected by its own copy of
        # the read pointer: one pointer driving every slice was the 8x8 array's critical path
        # (177 multiplexers on one net).  Copy k holds the pointer XOR k, so synthesis cannot
        # merge the copies back into one register.
        slices = range(0, self.width, self.READ_SLICE)
        ptr_width = len(r_ptr)
        masks = [k % (1 << ptr_width) for k in range(len(slices))]
        copies = [Signal(ptr_width, name=f"r_ptr_copy{k}", init=mask) for k, mask in enumerate(masks)]
        rd_data = Signal(self.width)
        for copy, mask, lo in zip(copies, masks, slices):
            hi = min(lo + self.READ_SLICE, self.width)
            options = Array(entry[lo:hi] for entry in entries)
            m.d.sync += rd_data[lo:hi].eq(options[(copy ^ mask)[:ptr_width]])

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
        ]
        m.d.sync += [
            stored.eq(stored + self.w_en - fetch),
            nonempty.eq(Mux(fetch, (stored >= 2) | ((stored == 1) & self.w_en), (stored != 0) | self.w_en)),
            in_flight.eq(fetch),
        ]
        # rd_data takes the entry at the read pointer every cycle; what a fetch reads arrives a
        # cycle later, marked by in_flight.  No enable means no wide enable net.
        with m.If(fetch):
            m.d.sync += r_ptr.eq(advance(r_ptr))
            m.d.sync += [copy.eq(advance(r_ptr) ^ mask) for copy, mask in zip(copies, masks)]

        # The payload registers' enables: head's is one gate of (valid, ready, in_flight); second
        # takes every arrival (harmless when the arrival goes to head).  So r.ready fans out
        # through a single LUT to the wide payload register.
        head, second = Signal(self.width), Signal(self.width)
        queued_next = Signal(range(3))
        m.d.comb += queued_next.eq(valid + full + in_flight - pop)
        m.d.sync += [valid.eq(queued_next != 0), full.eq(queued_next == 2)]
        with m.If(pop | (in_flight & ~valid)):
            m.d.sync += head.eq(Mux(full, second, rd_data))
        with m.If(in_flight):
            m.d.sync += second.eq(rd_data)
        m.d.comb += [self.r.payload.eq(head), self.r.valid.eq(valid)]
        return m
