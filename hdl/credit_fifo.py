"""A FIFO for writers that hold credits: the write side has no ready and no full check."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import positive_int

from .block_ram import EBR_DEPTH, registered_ram
from .pipeline import check_kept_target, kept_copy

__all__ = ["CreditFIFO", "FIFO_MEMORIES", "fifo_latency", "check_fifo_memory"]

#: Where the entries live: flip-flops (any target), or ECP5 DP16KD block RAM with its output register.
FIFO_MEMORIES = ("registers", "ecp5")


def _read_latency(memory_kind: str) -> int:
    return 2 if memory_kind == "ecp5" else 1


def fifo_latency(memory_kind: str) -> int:
    """Cycles from ``w_en`` to the entry on ``r`` when the FIFO was empty (:attr:`CreditFIFO.latency`)."""
    return 2 + _read_latency(memory_kind)


def check_fifo_memory(memory_kind, depth: int | None = None) -> str:
    if memory_kind not in FIFO_MEMORIES:
        raise ValueError(f"fifo_memory must be one of {', '.join(FIFO_MEMORIES)}, not {memory_kind!r}")
    if memory_kind == "ecp5" and depth is not None and depth > EBR_DEPTH:
        raise ValueError(f"a FIFO in ecp5 block RAM holds at most {EBR_DEPTH} entries, not {depth}")
    return memory_kind


class CreditFIFO(wiring.Component):
    """A ring buffer with a stream read side, for a writer that counts credits.

    The writer reserves room before it writes (credits), so a write is just
    ``w_en``: the memory's write enable, address and data come straight from
    flip-flops, with no full-flag logic in between.  This is what keeps a wide
    buffer off the critical path; Amaranth's ``SyncFIFO`` gates every write
    with its level comparison.  Writing into a full buffer is the writer's
    error and overwrites the oldest entry.

    The read side prefetches into an output register and a ring of as many
    registers as the memory's read latency, so ``r`` runs at one entry per
    cycle under any pattern of ``r.ready``, its payload and valid come from
    registers, and ``r.ready`` reaches the wide registers through one gate.

    The controls of the wide registers (the read address of flip-flop storage, the
    output register's flags and the ring's pointers) have a copy of their own for every
    ``select_group`` bits, made from the same next-state values: one copy driving a wide
    word fans out across the die.

    Parameters
    ----------
    width : int
    depth : int
        Entries in memory; the output queue adds to that.
    memory : "registers" or "ecp5"
        ``registers``: flip-flops behind a read multiplexer (any target).
        ``ecp5``: DP16KD block RAMs (18 bits each, up to 1024 entries) with
        their output registers, so no wide multiplexer and no read-address
        fan-out reach the fabric; simulation needs ``hdl/models/DP16KD.v``.
    target : "generic" or "ecp5"
        ``ecp5`` keeps the control copies apart in ``TRELLIS_FF`` cells
        (:func:`~attn_rtl.hdl.pipeline.kept_register`), as ``memory="ecp5"`` does; with
        both ``generic``, synthesis merges them.
    select_group : int
        Data bits served by one copy of the controls.

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

    def __init__(self, *, width: int, depth: int, memory: str = "registers", target: str = "generic",
                 select_group: int = 32):
        self.width = positive_int("width", width)
        self.depth = positive_int("depth", depth)
        self.memory = check_fifo_memory(memory, depth)
        check_kept_target(target)
        self.target = "ecp5" if memory == "ecp5" else target
        self.select_group = positive_int("select_group", select_group)
        super().__init__({"w_en": In(1), "w_data": In(width), "r": Out(stream.Signature(width))})

    @property
    def latency(self) -> int:
        return fifo_latency(self.memory)

    def _groups(self, bits: int | None = None) -> list[tuple[int, int]]:
        bits = bits or self.select_group
        return [(lo, min(lo + bits, self.width)) for lo in range(0, self.width, bits)]

    def _storage(self, m: Module, w_ptr, r_ptr, w_ptr_next, r_ptr_next):
        """Write port at ``w_ptr``; returns the data read at ``r_ptr`` (read every cycle).  The
        pointers' next-state values are for copies of them."""
        if self.memory == "registers":
            # Flip-flops, not RAM: Yosys maps ECP5 block RAM with REGMODE NOREG, whose 5.8 ns
            # read sets the clock, and distributed RAM for wide rows left nextpnr-ecp5 unable
            # to finish routing.  One memory per group of bits, each with its own copies of the
            # pointers: one read address drove the 8x8 engine's output FIFO's 660 multiplexer LUTs.
            # A deep memory's read multiplexer has more LUTs per bit: fewer bits per copy.
            read = Signal(self.width)
            for n, (lo, hi) in enumerate(self._groups(max(1, self.select_group * 4 // self.depth))):
                storage = memory.Memory(shape=unsigned(hi - lo), depth=self.depth, init=[],
                                        attrs={"ram_style": "logic"})
                m.submodules[f"storage_{n}"] = storage
                wr = storage.write_port()
                rd = storage.read_port(domain="sync", transparent_for=())
                m.d.comb += [wr.addr.eq(kept_copy(m, w_ptr_next, f"w_ptr_{n}", target=self.target, reset=True)),
                             wr.data.eq(self.w_data[lo:hi]), wr.en.eq(self.w_en),
                             rd.addr.eq(kept_copy(m, r_ptr_next, f"r_ptr_{n}", target=self.target, reset=True)),
                             rd.en.eq(1), read[lo:hi].eq(rd.data)]
            return read
        # DP16KD with its output register: the read address reaches a handful of RAM pins and the
        # data leaves a register in the RAM.
        return registered_ram(m, "ebr", kind="ecp5", depth=self.depth, w_addr=w_ptr, w_data=self.w_data,
                              w_en=self.w_en, r_addr=r_ptr)

    def elaborate(self, platform):
        m = Module()
        latency = _read_latency(self.memory)

        def advance(ptr):
            return Mux(ptr == self.depth - 1, 0, ptr + 1)

        w_ptr = Signal(range(self.depth))
        r_ptr = Signal(range(self.depth))
        w_ptr_next, r_ptr_next = Signal.like(w_ptr), Signal.like(r_ptr)
        m.d.comb += w_ptr_next.eq(Mux(self.w_en, advance(w_ptr), w_ptr))
        m.d.sync += [w_ptr.eq(w_ptr_next), r_ptr.eq(r_ptr_next)]
        read_data = self._storage(m, w_ptr, r_ptr, w_ptr_next, r_ptr_next)

        # Entries in memory not yet fetched (``stored``, with ``nonempty`` kept as a flag of its
        # own so that fetch is two gates from flip-flops); fetched entries are in flight for
        # ``latency`` cycles (the memory is read at r_ptr every cycle: no wide read enable),
        # then wait in a ring of ``latency`` registers behind the output register.
        stored = Signal(range(self.depth + 1))
        nonempty = Signal()
        in_flight = Signal(latency)
        arrive = in_flight[-1]
        ring = [Signal(self.width, name=f"ring_{i}", reset_less=True) for i in range(latency)]
        ring_w = Signal(range(latency))
        ring_r = Signal(range(latency))
        ring_count = Signal(range(latency + 1))
        ring_empty = Signal(init=1)
        valid = Signal()                     # the output register holds an entry
        out_free = ~valid | self.r.ready     # the output register loads this cycle
        pop = valid & self.r.ready
        occupancy = Signal(range(2 * latency + 3))
        m.d.comb += occupancy.eq(valid + ring_count + sum(in_flight) - pop)
        fetch = Signal()
        m.d.comb += fetch.eq(nonempty & (occupancy <= latency))
        m.d.sync += [
            stored.eq(stored + self.w_en - fetch),
            nonempty.eq(Mux(fetch, (stored >= 2) | ((stored == 1) & self.w_en), (stored != 0) | self.w_en)),
            in_flight.eq(Cat(fetch, in_flight[:-1])),
        ]
        m.d.comb += r_ptr_next.eq(Mux(fetch, advance(r_ptr), r_ptr))

        # r.ready reaches the wide registers through one gate: the output register's enable
        # (~valid | ready).  Its data comes from the ring or, when the ring is empty, straight
        # from the memory, selected by registers.  Every arrival is written into the ring at
        # ring_w (an enable of registers only); it is kept there, by advancing ring_w, unless
        # it went straight to the output.
        def step(ptr):
            return Mux(ptr == latency - 1, 0, ptr + 1) if latency > 1 else ptr

        from_ring = ~ring_empty & out_free
        bypass = arrive & ring_empty & out_free
        kept = arrive & ~bypass
        count_next = ring_count + kept - from_ring
        controls = {"valid": Mux(out_free, ~ring_empty | arrive, 1), "empty": count_next == 0,
                    "ring_r": Mux(from_ring, step(ring_r), ring_r), "ring_w": Mux(kept, step(ring_w), ring_w),
                    "arrive": Cat(fetch, in_flight)[latency - 1]}
        m.d.sync += [valid.eq(controls["valid"]), ring_empty.eq(controls["empty"]), ring_r.eq(controls["ring_r"]),
                     ring_w.eq(controls["ring_w"]), ring_count.eq(count_next)]
        m.d.comb += self.r.valid.eq(valid)
        # Each group of bits has its own copies of the controls.  Only pointers, counts and flags
        # are reset; entries are don't-care until valid.  ring_empty starts at 1: its copies hold
        # the complement, which resets to 0.
        payload = Signal(self.width, reset_less=True)
        m.d.comb += self.r.payload.eq(payload)
        for n, (lo, hi) in enumerate(self._groups()):
            def copy(name, value):
                return kept_copy(m, value, f"{name}_{n}", target=self.target, reset=True)
            g_valid, g_filled = copy("valid", controls["valid"]), copy("filled", ~controls["empty"])
            g_ring_r, g_ring_w, g_arrive = copy("ring_r", controls["ring_r"]), copy("ring_w", controls["ring_w"]), \
                copy("arrive", controls["arrive"])
            for i, entry in enumerate(ring):
                with m.If(g_arrive & (g_ring_w == i)):
                    m.d.sync += entry[lo:hi].eq(read_data[lo:hi])
            with m.If(~g_valid | self.r.ready):
                m.d.sync += payload[lo:hi].eq(Mux(g_filled, Array(entry[lo:hi] for entry in ring)[g_ring_r],
                                                  read_data[lo:hi]))
        return m
