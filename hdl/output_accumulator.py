"""Output accumulators of the fused engine: online rescale, add the P·V partials, normalize at the end."""

from __future__ import annotations

import dataclasses

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.numerics import RESCALE_EXP_MAX, Numerics
from attn_rtl.params import positive_int, reject_unknown

from .block_ram import EBR_DEPTH, check_block_ram_kind, registered_ram
from .credit_fifo import CreditFIFO, fifo_latency
from .multiplier import Multiplier, check_multiplier
from .pipeline import delayed, kept_copy, register
from .register_slice import RegisterSlice

__all__ = ["OutputAccumulator", "accumulator_params", "ACCUMULATOR_DEFAULTS"]

#: Elaboration parameters of :class:`OutputAccumulator` and their defaults (the default engine's block).
ACCUMULATOR_DEFAULTS = {
    "lanes": 8,
    "rows": 8,
    "chunks": 16,
    "partial_width": 32,
    "max_seq_len": 1024,
    "multiplier": "generic",
    "memory": "inferred",
    "numerics": None,
}


def accumulator_params(**params) -> dict:
    """Validate :class:`OutputAccumulator` parameters; return them complete, defaults filled in."""
    reject_unknown("accumulator", params, ACCUMULATOR_DEFAULTS)
    p = {**ACCUMULATOR_DEFAULTS, **params}
    for name in ("lanes", "rows", "chunks"):
        positive_int(name, p[name], at_most=1024)
    positive_int("partial_width", p["partial_width"], at_most=64)
    positive_int("max_seq_len", p["max_seq_len"], at_most=1 << 24)
    # Plain data, so that parameters serialize into manifests and cache keys.
    p["numerics"] = dataclasses.asdict(Numerics.coerce(p["numerics"]))
    check_multiplier(a_width=1, b_width=1, a_signed=True, b_signed=False, target=p["multiplier"])
    check_block_ram_kind(p["memory"])
    if p["memory"] == "ecp5" and p["rows"] * p["chunks"] > EBR_DEPTH:
        raise ValueError(f"with memory 'ecp5' rows * chunks must be at most {EBR_DEPTH}, not {p['rows'] * p['chunks']}")
    return p


class OutputAccumulator(wiring.Component):
    """Sections 5 (step 2 and the ``A`` part of step 3) and 6 of docs/numerics.md for a query block.

    Each beat on ``partials`` is one row ``row`` of one column chunk ``chunk``
    of a key tile's ``P·V`` product (``lanes`` exact sums ``Σ_j p_j·V[j, c]``)
    with the factor ``scale_mant / 2^(P + scale_exp)`` by which the row's
    accumulators must be rescaled first.  The unit reads the row's accumulators
    ``A`` (zero on the row's ``first`` tile), computes
    ``A ← ((A · scale_mant) >> (P + scale_exp)) + partial`` (floor) and
    writes them back, or, on the row's ``last`` tile, outputs
    ``O = sat_w(rne(A · recip, R + recip_exp))`` instead (lanes at and past
    ``lanes_valid`` read 0), if ``emit`` is set.  The reciprocals come on
    ``recips``, one per row of a block in row order; a ``last`` beat waits for
    its row's reciprocal, which is used by every chunk and dropped after the
    beat flagged ``chunk_last``.  Two blocks' reciprocals are held.

    The accumulators live in one memory (``rows × chunks`` words of ``lanes``
    accumulators); a beat whose word is still being updated in the pipeline
    waits, so a word's updates must be at least :attr:`recurrence` cycles
    apart for full rate.  The output is buffered in a credit FIFO, so
    backpressure on ``out`` holds ``partials`` only when it is full.
    ``partials`` enters through two :class:`~attn_rtl.hdl.register_slice.RegisterSlice`
    in a row: its ``ready`` is a flip-flop, a beat is compared with the pipeline
    as it passes from the first to the second (from flip-flops, not from the
    port), and the hazard check of the waiting beat reads flip-flops only.

    Parameters
    ----------
    lanes, rows, chunks : int
    partial_width : int
        Width of the signed partial sums (the array's accumulator).
    max_seq_len : int
        Sets the accumulator width ``P + 1 + w + ceil(log2 max_seq_len)``.
    numerics : Numerics, dict or None
        Number formats (docs/numerics.md); a table of fields or ``None`` (the defaults) also serve.
    multiplier : "generic" or "ecp5"
        The rescale and normalize multipliers (:class:`~attn_rtl.hdl.multiplier.Multiplier`); with
        ``ecp5`` the accumulator is split over up to three MULT18X18D (52 bits) and the pipeline is
        longer by their extra registers; a wider accumulator keeps the generic multipliers.
    memory : "inferred" or "ecp5"
        The accumulators' memories, one per lane, each read through an output register
        (:func:`~attn_rtl.hdl.block_ram.registered_ram`): with ``ecp5`` a DP16KD's own (Yosys
        maps an inferred ECP5 block RAM without it, and its unregistered output takes 5.8 ns).

    Attributes
    ----------
    latency : int
        Cycles from a ``last`` beat accepted on ``partials`` to its output beat (input slice and
        output empty, output ready).
    recurrence : int
        Fewest cycles between two beats of one word at full rate.

    Ports
    -----
    partials : In(stream.Signature(StructLayout({"data", "row", "chunk", "first", "last", "chunk_last",
        "scale_mant", "scale_exp", "lanes_valid", "emit", "block_end", "run_end"})))
    recips : In(stream.Signature(StructLayout({"recip": R + 1, "recip_exp": range(W)})))
    out : Out(stream.Signature(StructLayout({"data": ArrayLayout(signed(w), lanes), "last": 1, "run_end": 1})))
        ``last`` is the ``block_end`` flag of the beat, ``run_end`` its ``run_end`` flag.
    block_done : Out(1)
        High in the cycle after the final beat of a block (``last``, ``chunk_last``, row ``rows - 1``)
        is accepted: its reciprocals are dropped.
    """

    #: MULT18X18D per accumulator operand at most (ECP5).
    _PIECES = 3
    #: Bits of the rescale shift taken by its second stage.
    _FINE_SHIFT_BITS = 3

    def __init__(self, *, lanes: int, rows: int, chunks: int, partial_width: int, max_seq_len: int,
                 numerics=None, multiplier: str = "generic", memory: str = "inferred"):
        self.lanes = positive_int("lanes", lanes)
        self.rows = positive_int("rows", rows)
        self.chunks = positive_int("chunks", chunks)
        self.partial_width = positive_int("partial_width", partial_width)
        self.nm = Numerics.coerce(numerics)
        self.acc_width = self.nm.out_acc_width(positive_int("max_seq_len", max_seq_len))
        self.sum_width = self.nm.row_sum_width(max_seq_len)
        check_multiplier(a_width=1, b_width=1, a_signed=True, b_signed=False, target=multiplier)
        self.target = multiplier   # where control copies are kept apart, whatever the multipliers are
        self.memory = check_block_ram_kind(memory)
        try:
            check_multiplier(a_width=self.acc_width, b_width=max(self.nm.prob_width, self.nm.recip_bits + 1),
                             a_signed=True, b_signed=False, target=multiplier, split_a=self._PIECES)
            self.multiplier = multiplier
        except ValueError:
            self.multiplier = "generic"
        self._stages = self._plan()   # checks the multiplier target
        # Credits for the whole round trip: the pipeline's stages, the emit counted a cycle late and
        # the FIFO's own cycle; one fewer cost a cycle whenever the output pipeline filled from empty
        # (found by tests/test_output_accumulator.py's full-rate test).
        self.out_depth = self._OUT_STAGE + 4
        self.partial_layout = data.StructLayout({
            "data": data.ArrayLayout(signed(partial_width), lanes),
            "row": range(rows), "chunk": range(chunks),
            "first": 1, "last": 1, "chunk_last": 1,
            "scale_mant": self.nm.prob_width, "scale_exp": range(RESCALE_EXP_MAX + 1),
            "lanes_valid": range(lanes + 1), "emit": 1, "block_end": 1, "run_end": 1,
        })
        self.out_layout = data.StructLayout({
            "data": data.ArrayLayout(signed(self.nm.data_width), lanes), "last": 1, "run_end": 1})
        super().__init__({
            "partials": In(stream.Signature(self.partial_layout)),
            "recips": In(stream.Signature(data.StructLayout({
                "recip": self.nm.recip_bits + 1, "recip_exp": range(self.sum_width)}))),
            "out": Out(stream.Signature(self.out_layout)),
            "block_done": Out(1),
        })

    # --- the pipeline plan: the stage (cycles after admission) at which each value is registered.
    # Read (1), A · mant, shift by P + exp (in two steps), + partial and write back; A · recip, bit s of the
    # product, + rounding bias, shift, saturate.  Every shift amount and rounding constant is a
    # register made a stage before its use.
    def _rescale_multiplier(self) -> Multiplier:
        return Multiplier(a_width=self.acc_width, b_width=self.nm.prob_width, a_signed=True, b_signed=False,
                          target=self.multiplier, max_pieces=self._PIECES)

    def _normalize_multiplier(self) -> Multiplier:
        return Multiplier(a_width=self.acc_width, b_width=self.nm.recip_bits + 1, a_signed=True, b_signed=False,
                          target=self.multiplier, max_pieces=self._PIECES)

    def _plan(self) -> dict:
        rescale, normalize = self._rescale_multiplier(), self._normalize_multiplier()
        rescale._MustUse__silence = normalize._MustUse__silence = True
        # The word leaves the memory's output register (block RAM's OUTREG) at stage 4: its address
        # is registered and copied per lane first (elaborate, "read the word").
        s = {"read": 4}
        s["rescaled"] = s["read"] + rescale.latency
        s["coarse"] = s["rescaled"] + 1
        s["scaled"] = s["coarse"] + 1
        s["write"] = s["scaled"] + 1
        s["normalized"] = s["write"] + normalize.latency
        s["odd"] = s["normalized"] + 1
        s["biased"] = s["odd"] + 1
        s["quotient"] = s["biased"] + 1
        s["out"] = s["quotient"] + 1
        return s

    def _lane_copy(self, m: Module, value, name: str, *, reset: bool = False):
        """``value`` one cycle later in flip-flops of this lane's own (kept apart on the ecp5 target,
        merged back by synthesis otherwise; :func:`~attn_rtl.hdl.pipeline.kept_register`)."""
        return kept_copy(m, value, name, target=self.target, reset=reset)

    @property
    def _WRITE_STAGE(self) -> int:
        return self._stages["write"]

    @property
    def _OUT_STAGE(self) -> int:
        return self._stages["out"]

    @property
    def latency(self) -> int:
        # Measured (tests/test_output_accumulator.py): the slice's cycle, admission to the out stage,
        # the FIFO's write to its read.
        return 2 * RegisterSlice.latency + self._OUT_STAGE + fifo_latency("registers")

    @property
    def _HAZARD_STAGES(self) -> int:
        # A beat waits while a beat of its word is in these first stages.  Its read and the older
        # beat's write both come later by the address's two stages of registers (read at 4, not 2),
        # so those two stages add nothing to the wait.
        return self._WRITE_STAGE - (self._stages["read"] - 2)

    @property
    def recurrence(self) -> int:
        return self._HAZARD_STAGES + 1

    @property
    def memory_bits(self) -> int:
        return self.rows * self.chunks * self.lanes * self.acc_width

    def elaborate(self, platform):
        m = Module()
        nm, lanes, rows = self.nm, self.lanes, self.rows
        P, R = nm.prob_frac_bits, nm.recip_bits
        acc_shape = signed(self.acc_width)
        beat = self.partials.payload

        # --- reciprocals of two blocks, filled in row order, drained by the last chunk.
        recip_layout = data.StructLayout({"recip": R + 1, "recip_exp": range(self.sum_width)})
        held = Signal(data.ArrayLayout(data.ArrayLayout(recip_layout, rows), 2), reset_less=True)
        present = Signal(2 * rows)   # bit bank * rows + row: that row's reciprocal is held
        # The slot the next reciprocal fills, one-hot (bit bank * rows + row): each slot's enable is then
        # one gate of flip-flops (an enable decoded from the ready path was 4.1 ns of routing to its
        # flip-flops' CE).
        w_slot, r_bank = Signal(2 * rows, init=1), Signal()

        def bit_of(bits, bank, row):
            return Mux(bank, bits[rows:].bit_select(row, 1), bits[:rows].bit_select(row, 1))

        def one_hot(bank, row):
            return Cat(*[(bank == b) & (row == r) for b in range(2) for r in range(rows)])

        # recips.ready is a flip-flop made from the next state of present and w_slot (the same value a
        # cycle earlier): computed from present it reached the softmax's sums FIFO through 3 LUTs and
        # 10.7 ns of routing (the 8x8 engine's critical path at ffebe36, seed 2).
        recips_ready = Signal(init=1)
        m.d.comb += self.recips.ready.eq(recips_ready)
        arrives = self.recips.valid & self.recips.ready
        w_slot_next = Mux(arrives, w_slot.rotate_left(1), w_slot)
        m.d.sync += w_slot.eq(w_slot_next)
        for bank in range(2):
            for row in range(rows):
                slot = bank * rows + row
                with m.If(self.recips.valid & w_slot[slot] & ~present[slot]):
                    m.d.sync += held[bank][row].eq(self.recips.payload)

        # --- input: a register slice (partials.ready is a flip-flop), shadowed by a ring of the same two
        # entries holding each waiting beat's control fields and which pipeline stages hold its word
        # (compared as it arrives, then shifted with the stages).  Whether the oldest beat may enter
        # (no read-after-write hazard, its reciprocal present) is decided a cycle ahead for both
        # outcomes of the current admission, so admission is an AND of flip-flops.
        # The beat's arrival compares read the front slice's flip-flops: read from the port they
        # reached back through the engine to its tag FIFO (the 8x8 engine's critical path at
        # 3f439bd, seed 2).
        m.submodules.front_slice = front_slice = RegisterSlice(self.partial_layout, target=self.target)
        m.submodules.input_slice = in_slice = RegisterSlice(self.partial_layout, target=self.target)
        wiring.connect(m, wiring.flipped(self.partials), front_slice.i)
        wiring.connect(m, front_slice.o, in_slice.i)
        beat = in_slice.o.payload
        words, stages = rows * self.chunks, self._WRITE_STAGE
        word_layout = data.StructLayout({"row": range(rows), "chunk": range(self.chunks)})
        control_layout = data.StructLayout({"row": range(rows), "chunk": range(self.chunks), "last": 1,
                                            "chunk_last": 1, "emit": 1, "ends_block": 1})
        stage_valid = [Signal(name=f"busy_s{s}") for s in range(1, stages + 1)]
        stage_word = [Signal(word_layout, name=f"word_s{s}", reset_less=True) for s in range(1, stages + 1)]
        push = in_slice.i.valid & in_slice.i.ready
        waiting, full = in_slice.o.valid, ~in_slice.i.ready   # one or two beats in the ring
        fire = Signal()
        shadow_w, shadow_r = Signal(), Signal()
        m.d.sync += [shadow_w.eq(shadow_w ^ push), shadow_r.eq(shadow_r ^ fire)]
        entry = [Signal(control_layout, name=f"entry_{e}", reset_less=True) for e in range(2)]
        entry_address = [Signal(range(words), name=f"entry_address_{e}", reset_less=True) for e in range(2)]
        window = self._HAZARD_STAGES
        matches = [Signal(window, name=f"entry_matches_{e}", reset_less=True) for e in range(2)]
        # The entry written before this one leaves first; whether it holds the same word is found
        # when this one arrives (it is then present: an entry written into an empty ring is the head).
        same_as_older = [Signal(name=f"entry_same_{e}", reset_less=True) for e in range(2)]
        head, younger = Signal(control_layout), Signal(control_layout)
        m.d.comb += [head.eq(Mux(shadow_r, entry[1], entry[0])), younger.eq(Mux(shadow_r, entry[0], entry[1]))]
        incoming = in_slice.i.payload
        # A view of the incoming fields and one signal of its own: as one signal whose ends_block bit was
        # computed from its other bits (once the front slice's payload and it were one net), Verilator
        # saw circular logic (UNOPTFLAT).
        arriving_ends_block = Signal(name="arriving_ends_block")
        m.d.comb += arriving_ends_block.eq(incoming.last & incoming.chunk_last & (incoming.row == rows - 1))
        arriving = data.View(control_layout, Cat(incoming.row, incoming.chunk, incoming.last, incoming.chunk_last,
                                                 incoming.emit, arriving_ends_block))

        def same_word(a, b):
            return (a.row == b.row) & (a.chunk == b.chunk)

        # An arriving beat's matches at the next cycle, if the head enters now or not.  Its comparison
        # with the head is also the one with the entry written before it (the head whenever that entry
        # is present).  Compared for both of the front slice's entries, from their flip-flops, then
        # picked by the one the slice shows: after the slice's multiplexer, its select's fan-out and
        # the compares were the 8x8 engine's critical path at e5d4bf7 (both seeds, 8 LUT levels).
        front_entries = [data.View(self.partial_layout, entry) for entry in front_slice.entries]

        def from_front(compute):
            return Mux(front_slice.head_select, compute(front_entries[1]), compute(front_entries[0]))

        arrival_matches = Signal(window - 1)
        arrival_same_as_head, arrival_hazard_entering = Signal(), Signal()
        m.d.comb += [
            arrival_matches.eq(from_front(lambda beat_in: Cat(*[
                v & same_word(beat_in, w) for v, w in zip(stage_valid[:window - 1], stage_word[:window - 1])]))),
            arrival_same_as_head.eq(from_front(lambda beat_in: same_word(beat_in, head))),
            arrival_hazard_entering.eq(arrival_same_as_head | arrival_matches.any()),
        ]
        for e in range(2):
            with m.If(push & (shadow_w == e)):
                m.d.sync += [
                    entry[e].eq(arriving),
                    entry_address[e].eq(incoming.chunk * rows + incoming.row),
                    same_as_older[e].eq(arrival_same_as_head),
                    matches[e].eq(Cat(fire & arrival_same_as_head, arrival_matches)),
                ]
            with m.Else():
                m.d.sync += matches[e].eq(Cat(fire & same_as_older[e], matches[e][:-1]))
        head_matches = Mux(shadow_r, matches[1], matches[0])
        younger_matches = Mux(shadow_r, matches[0], matches[1])
        younger_same = Mux(shadow_r, same_as_older[0], same_as_older[1])

        # The head leaving now clears its row's reciprocal (after its last chunk) and may end the block.
        drops = head.last & head.chunk_last
        present_kept = Signal(2 * rows)
        present_left = Signal(2 * rows)
        m.d.comb += [present_kept.eq(present | Mux(arrives, w_slot, 0)),
                     present_left.eq(present_kept & ~Mux(drops, one_hot(r_bank, head.row), 0))]
        bank_left = r_bank ^ head.ends_block
        present_next = Mux(fire, present_left, present_kept)

        def ready_after(arrived, fired):
            kept_bits = present | (w_slot if arrived else 0)
            if fired:
                kept_bits = kept_bits & ~Mux(drops, one_hot(r_bank, head.row), 0)
            return ~(kept_bits & (w_slot.rotate_left(1) if arrived else w_slot)).any()

        # recips.ready for each outcome of this cycle's arrival and admission, chosen by them: computed
        # after them, the loop recips.ready -> arrival -> present -> recips.ready was 7 LUT levels (the
        # 8x8 engine's critical path at a1f5b04, seed 1).
        m.d.sync += [present.eq(present_next), r_bank.eq(Mux(fire, bank_left, r_bank)),
                     recips_ready.eq(Mux(fire, Mux(arrives, ready_after(1, 1), ready_after(0, 1)),
                                         Mux(arrives, ready_after(1, 0), ready_after(0, 0))))]
        block_done = Signal()
        m.d.comb += block_done.eq(fire & head.ends_block)
        # Registered: the engine's admission reads it a cycle late, which is safe (a block stays
        # open a cycle longer) and keeps this unit's ready path out of the engine's counters.
        m.d.sync += self.block_done.eq(block_done)

        # Next cycle's head if the head stays (the arriving beat when the ring is empty) or enters
        # (the younger entry, or the arriving beat when it is the only one).
        hazard_stays = Mux(waiting, head_matches[:-1].any(), arrival_matches.any())
        hazard_enters = Mux(full, younger_same | younger_matches[:-1].any(), arrival_hazard_entering)
        # The entering beat never needs the bit the head clears (that row's next last beat is in the
        # other block's bank), so its lookup skips the clear; each candidate row looks up in parallel.
        # A reciprocal counts from the cycle after it arrives (the flag is looked up again every
        # cycle): with this cycle's arrival in it, the softmax's sums handshake reached the flag
        # (the unit's critical path at 58e1aea, seed 1).
        def recip_held(who, bank):
            return bit_of(present, bank, who.row)

        recip_ok_stays = Mux(waiting, ~head.last | recip_held(head, r_bank),
                             from_front(lambda beat_in: ~beat_in.last | recip_held(beat_in, r_bank)))
        recip_ok_enters = Mux(full, ~younger.last | recip_held(younger, bank_left),
                              from_front(lambda beat_in: ~beat_in.last | recip_held(beat_in, bank_left)))
        hazard, recip_ok = Signal(), Signal()
        m.d.sync += [hazard.eq(Mux(fire, hazard_enters, hazard_stays)),
                     recip_ok.eq(Mux(fire, recip_ok_enters, recip_ok_stays))]

        reserved = Signal(range(self.out_depth + 1))   # output beats held or coming, less emits_late
        credit = Signal(init=1)
        m.d.comb += [
            in_slice.o.ready.eq(credit & ~hazard & recip_ok),
            fire.eq(waiting & in_slice.o.ready),
        ]
        emits = fire & head.last & head.emit
        # The reciprocal of an admitted beat is read a stage later, by the row in stage 1 and copies of
        # the bank it was admitted in (one per field: r_bank drove 161 gates), so that the read is
        # off the admission path; the slot cannot be refilled before that read (its bit clears after).
        recip_bank = {name: self._lane_copy(m, r_bank, f"recip_bank_{name}", reset=True)
                      for name in ("recip", "recip_exp")}

        # --- stages 1 -> read: read the word.
        # A word is never read in the cycle it is written (the hazard check holds its next beat back
        # until the write is done): no_rw_check spares the block RAM Yosys's collision bypass, whose
        # address comparison drove 272 multiplexer LUTs.
        # One memory per lane (each a block RAM of its own on ECP5, dozens of rows apart), each
        # addressed by its own copy of the admitted head's address, taken from a register a stage
        # after admission: the address crosses the die from one flip-flop to another.  (One address
        # net to every block RAM was 7.3 ns of routing, the unit's critical path at ffebe36; copies
        # made from the next-state address put the admission logic in front of that net, 18.1 ns of
        # routing on the 8x8 engine at 84a1671, seed 2.)  The word leaves the memory's output
        # register at stage "read" = 4: the address register at 1, its lane copies at 2, the RAM's
        # own address register at 3.
        head_address = Signal(range(words), name="head_address_s1", reset_less=True)
        m.d.sync += head_address.eq(Mux(shadow_r, entry_address[1], entry_address[0]))
        write_ports = [{key: Signal(shape, name=f"acc_{key}_{lane}")
                        for key, shape in (("addr", range(words)), ("data", acc_shape), ("en", 1))}
                       for lane in range(lanes)]
        stored = [registered_ram(m, f"acc_mem_{lane}", kind=self.memory, depth=words, w_addr=port["addr"],
                                 w_data=port["data"], w_en=port["en"],
                                 r_addr=self._lane_copy(m, head_address, f"read_address_{lane}"),
                                 attrs={"no_rw_check": 1})
                  for lane, port in enumerate(write_ports)]

        m.d.sync += [stage_valid[0].eq(fire), stage_word[0].row.eq(head.row), stage_word[0].chunk.eq(head.chunk)]
        for s in range(1, stages):
            m.d.sync += [stage_valid[s].eq(stage_valid[s - 1]),
                         stage_word[s].eq(stage_word[s - 1])]

        s1 = register(m, beat, "beat_s1")
        recip_s2 = Signal(recip_layout, reset_less=True)
        for name, bank in recip_bank.items():
            m.d.sync += recip_s2[name].eq(held[bank][stage_word[0].row][name])
        emit_s1 = register(m, emits, "emit_s1", reset=True)
        st = self._stages

        def at(value, stage, name, since=1, reset=False):
            return delayed(m, value, stage - since, name, reset=reset)

        old = Signal(data.ArrayLayout(acc_shape, lanes))
        read = st["read"]
        # Each lane clears by its own copy of first (one drove 272 multiplexer LUTs).
        first_early = at(s1.first, read - 1, "first")
        for lane in range(lanes):
            m.d.comb += old[lane].eq(Mux(self._lane_copy(m, first_early, f"first_{lane}"), 0, stored[lane]))

        # --- read -> product: A · mant; -> coarse, scaled: floor shift by P + exp; -> write: + partial.
        scale_mant = at(s1.scale_mant, read, "scale_mant")
        prod_width = self.acc_width + nm.prob_width + 1
        shift_cap = prod_width - 1   # a larger shift gives the same 0 or -1
        # The shift amount is made two stages early and copied for each lane a stage later, so that
        # the copies' inputs are registers (its add and clamp in front of the copies was the unit's
        # critical path at a3202b3, seed 1).
        exp_early = at(s1.scale_exp, st["rescaled"] - 2, "scale_exp")
        amount_next = Signal(range(shift_cap + 1))
        m.d.comb += amount_next.eq(Mux(exp_early + P > shift_cap, shift_cap, exp_early + P))
        amount_early = register(m, amount_next, "rescale_shift_early")
        amount = register(m, amount_early, "rescale_shift")
        fine = self._FINE_SHIFT_BITS
        scaled = Signal(data.ArrayLayout(signed(self.acc_width + 1), lanes), reset_less=True)
        for lane in range(lanes):
            m.submodules[f"rescale_{lane}"] = mul = self._rescale_multiplier()
            m.d.comb += [mul.a.eq(old[lane]), mul.b.eq(scale_mant)]
            # Two stages of shifting (by multiples of 2^fine, then the rest), each lane by its own
            # copies of the amount (kept_register): one copy drove all lanes' shifters (ECP5 critical
            # path, 8.5 ns of routing), and one six-level shifter per lane was 7.7 ns of routing.
            coarse_amount = self._lane_copy(m, amount_early[fine:], f"rescale_coarse_shift_{lane}")
            coarse = register(m, mul.product >> Cat(Const(0, fine), coarse_amount), f"rescale_coarse_{lane}")
            fine_amount = self._lane_copy(m, amount[:fine], f"rescale_fine_shift_{lane}")
            m.d.sync += scaled[lane].eq(coarse >> fine_amount)
        partial = at(s1.data, st["scaled"], "partial")
        updated = Signal(data.ArrayLayout(acc_shape, lanes), reset_less=True)
        for lane in range(lanes):
            m.d.sync += updated[lane].eq(scaled[lane] + partial[lane])
        write = st["write"]
        # Each lane's write address and enable are its own copies, made a cycle early.
        write_address_early = stage_word[write - 2].chunk * rows + stage_word[write - 2].row
        write_early = stage_valid[write - 2] & ~at(s1.last, write - 1, "last")
        for lane in range(lanes):
            m.d.comb += [
                write_ports[lane]["addr"].eq(self._lane_copy(m, write_address_early, f"write_address_{lane}")),
                write_ports[lane]["data"].eq(updated[lane]),
                write_ports[lane]["en"].eq(self._lane_copy(m, write_early, f"write_enable_{lane}", reset=True)),
            ]

        # --- write -> product: A · recip; -> odd: bit s of the product; -> biased: + rounding bias;
        # -> quotient: shift; -> out: saturate, lane mask.
        # rne(x, s) = (x + 2^(s-1) - 1 + bit s of x) >> s, with s = R + e >= 2.
        norm_width = self.acc_width + R + 2
        data_width = nm.data_width
        lo, hi = -(1 << (data_width - 1)), (1 << (data_width - 1)) - 1
        recip = at(recip_s2, write, "recip", since=2)
        # The shift amount and the bias 2^(s-1) - 1 are registers made a stage before their use.
        recip_exp_early = at(recip.recip_exp, st["normalized"] - 1, "recip_exp", since=write)
        # s = R + e: the R is wiring (a constant shift first), the shifters only take e.
        exp_early = at(register(m, recip_exp_early, "norm_exp"), st["biased"] - 1, "norm_exp",
                       since=st["normalized"])
        bias = at(register(m, (Const(1 << (R - 1), R) << recip_exp_early) - 1, "norm_bias"), st["odd"],
                  "norm_bias", since=st["normalized"])
        lanes_valid = at(s1.lanes_valid, st["quotient"], "lanes_valid")
        ends = at(Cat(s1.block_end, s1.run_end), self._OUT_STAGE, "ends")
        emit_out = at(emit_s1, self._OUT_STAGE, "emit", reset=True)
        result = Signal(data.ArrayLayout(signed(data_width), lanes), reset_less=True)
        for lane in range(lanes):
            m.submodules[f"normalize_{lane}"] = mul = self._normalize_multiplier()
            m.d.comb += [mul.a.eq(updated[lane]), mul.b.eq(recip.recip)]
            # The odd bit's selector is a copy of the shift of this lane's own (one drove 201 LUTs).
            lane_exp = self._lane_copy(m, recip_exp_early, f"norm_shift_odd_{lane}")
            odd = register(m, ((mul.product >> R) >> lane_exp)[0], f"norm_odd_{lane}")
            product = register(m, mul.product, f"norm_product_{lane}")
            # norm_width + 1 bits hold every biased sum (the bias is below 2^(R + sum_width)).
            biased = register(m, (product + bias + odd)[:norm_width + 1].as_signed(), f"norm_biased_{lane}")
            quotient = register(m, (biased >> R) >> self._lane_copy(m, exp_early, f"norm_shift_{lane}"),
                                f"norm_q_{lane}")
            # It fits the output when the bits above its sign all equal the sign: a reduction, no comparator.
            high = quotient[data_width - 1:]
            fits = (high == 0) | (high == (1 << len(high)) - 1)
            clipped = Mux(fits, quotient[:data_width], Mux(quotient[-1], lo, hi))
            m.d.sync += result[lane].eq(Mux(lane < lanes_valid, clipped, 0))

        # --- output FIFO, written only by emitting beats; credits counted from admission.
        m.submodules.out_fifo = out_fifo = CreditFIFO(width=len(self.out.payload.as_value()),
                                                      depth=self.out_depth, target=self.target)
        packed = Signal(self.out_layout)
        m.d.comb += [
            packed.data.eq(result), packed.last.eq(ends[0]), packed.run_end.eq(ends[1]),
            out_fifo.w_en.eq(emit_out), out_fifo.w_data.eq(packed),
            self.out.payload.eq(out_fifo.r.payload), self.out.valid.eq(out_fifo.r.valid),
            out_fifo.r.ready.eq(self.out.ready),
        ]
        # Both comparisons are of registers; the admission (emits) only selects between them.
        # ``reserved`` counts an admitted emitting beat a cycle late (``emits_late``), so that admission
        # only selects between two comparisons of registers and drives no carry chain.
        emits_late = register(m, emits, "emits_late", reset=True)
        kept = Signal.like(reserved)
        m.d.comb += kept.eq(reserved - (self.out.valid & self.out.ready) + emits_late)
        m.d.sync += [reserved.eq(kept),
                     credit.eq(Mux(emits, kept < self.out_depth - 1, kept < self.out_depth))]
        return m
