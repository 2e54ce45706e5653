"""Streaming online softmax: running maxima, base-2 probabilities, rescale factors, row sums, reciprocals."""

from __future__ import annotations

import dataclasses

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.numerics import RESCALE_EXP_MAX, Numerics, clog2
from attn_rtl.params import positive_int, reject_unknown

from .credit_fifo import CreditFIFO, check_fifo_memory, fifo_latency
from .exp2 import Exp2Mantissa
from .multiplier import Multiplier, check_multiplier
from .pipeline import adder_tree, delayed, register
from .reciprocal import Reciprocal

__all__ = ["SoftmaxUnit", "softmax_params", "softmax_ports", "SOFTMAX_DEFAULTS"]

#: Elaboration parameters of :class:`SoftmaxUnit` and their defaults (numerics: docs/numerics.md).
SOFTMAX_DEFAULTS = {
    "lanes": 8,
    "slots": 8,
    "score_width": 22,
    "max_seq_len": 1024,
    "multiplier": "generic",
    "fifo_memory": "registers",
    "numerics": None,
}


def softmax_params(**params) -> dict:
    """Validate :class:`SoftmaxUnit` parameters; return them complete, defaults filled in."""
    reject_unknown("softmax", params, SOFTMAX_DEFAULTS)
    p = {**SOFTMAX_DEFAULTS, **params}
    positive_int("lanes", p["lanes"], at_most=256)
    positive_int("slots", p["slots"], at_most=1024)
    positive_int("score_width", p["score_width"], at_most=48)
    if p["score_width"] < 2:
        raise ValueError(f"score_width must be at least 2, not {p['score_width']}")
    positive_int("max_seq_len", p["max_seq_len"], at_most=1 << 24)
    nm = Numerics.coerce(p["numerics"])
    # Plain data, so that parameters serialize into manifests and cache keys.
    p["numerics"] = dataclasses.asdict(nm)
    check_multiplier(a_width=1, b_width=1, a_signed=True, b_signed=True, target=p["multiplier"])
    check_fifo_memory(p["fifo_memory"])
    if p["multiplier"] == "ecp5":
        # Score x M and row sum x mantissa: the first operand may take two MULT18X18D, the second one.
        limits = [("score_width", p["score_width"], 35), ("numerics.mult_width", nm.mult_width, 17),
                  ("numerics.prob_frac_bits", nm.prob_frac_bits, 16)]
        for name, value, limit in limits:
            if value > limit:
                raise ValueError(f"{name} must be at most {limit} for the ecp5 multiplier, not {value}")
        sum_width = nm.row_sum_width(p["max_seq_len"])
        if sum_width > 34:
            raise ValueError(f"max_seq_len must be at most {1 << (34 - nm.prob_width)} for the ecp5 multiplier "
                             f"(a row sum of at most 34 bits), not {p['max_seq_len']}")
    return p


def saturated(value, width: int):
    """``value`` (signed) saturated to a signed ``width``: it fits when the bits above ``width − 1`` all
    equal the sign (a reduction, no comparator)."""
    high = value[width - 1:]
    fits = (high == 0) | (high == (1 << len(high)) - 1)
    return Mux(fits, value[:width], Mux(value[-1], -(1 << (width - 1)), (1 << (width - 1)) - 1))[:width].as_signed()


def octaves(value, frac_bits: int, cap: int):
    """``min(value >> frac_bits, cap)`` as wide as ``cap``: a shift amount of the full width makes every
    shifter mux on bits that are always zero (ECP5 critical path, six LUTs from the amount to the coarse
    shift)."""
    high = value[frac_bits:]
    return Mux(high > cap, cap, high)[:cap.bit_length()]


def softmax_ports(*, lanes: int, slots: int, score_width: int, sum_width: int, numerics: Numerics) -> dict:
    """The ports of a softmax of ``lanes`` scores a beat over ``slots`` rows (:class:`SoftmaxUnit`'s)."""
    nm = numerics
    prob = unsigned(nm.prob_width)
    slot = unsigned(clog2(slots))
    return {
        "scores": In(stream.Signature(data.StructLayout({
            "score": data.ArrayLayout(signed(score_width), lanes), "mask": lanes, "slot": slot, "first": 1,
            "last": 1}))),
        "scale_mult": In(nm.mult_width),
        "scale_shift": In(range(nm.max_shift + 1)),
        "probs": Out(stream.Signature(data.StructLayout({
            "p": data.ArrayLayout(prob, lanes), "slot": slot, "scale_mant": prob,
            "scale_exp": unsigned(RESCALE_EXP_MAX.bit_length()), "first": 1, "last": 1}))),
        "sums": Out(stream.Signature(data.StructLayout({
            "slot": slot, "row_sum": unsigned(sum_width), "recip": unsigned(nm.recip_bits + 1),
            "recip_exp": range(sum_width)}))),
    }


class SoftmaxUnit(wiring.Component):
    """The online softmax of docs/numerics.md (sections 3 to 6), one key tile per cycle.

    A beat on ``scores`` is one key tile of one query row: ``lanes`` raw scores
    ``S`` with their mask bits, the row's ``slot`` in the state memory, and
    ``first`` / ``last`` flags that open and close the row.  Per slot the unit
    keeps the running maximum and the row sum.  For every beat it emits on
    ``probs`` the tile's unnormalized probabilities (masked lanes: 0) and the
    factor ``scale_mant / 2^(P + scale_exp)`` by which the row's output
    accumulators must be rescaled before this tile's products are added
    (``2^P, 0``, the identity, when the maximum did not grow); for every
    ``last`` beat it emits on ``sums`` the row sum ``ℓ`` and its reciprocal
    ``recip = ⌊2^(R + recip_exp) / ℓ⌋``.  A row whose every score was masked
    has ``ℓ = 0``, ``recip = 0``, ``recip_exp = 0``, and all its
    probabilities are 0.  ``sim/softmax_stream.py`` is the bit-exact model.

    Logits are ``t = sat_T((S · scale_mult) >> scale_shift)``; hold both
    scale inputs steady while beats are in flight.

    Throughput: a beat every cycle while the output streams keep up.  The
    state of a slot is read and written back a few cycles apart, so a beat
    that continues a slot (not ``first``) waits until the slot's previous beat
    is at least :attr:`slot_recurrence` cycles ahead; beats of other slots,
    and ``first`` beats, never wait.  An engine that interleaves at least
    that many rows (or sends key tiles of one row that far apart) runs at one
    beat per cycle.  The outputs are buffered in credit FIFOs sized so that an
    always-ready consumer never stalls the input; backpressure on either
    output holds the input only when its FIFO is full.

    Parameters
    ----------
    lanes : int
        Scores per beat (the key tile).
    slots : int
        Rows whose state is kept (the query block).
    score_width : int
        Width of the signed scores (the array's accumulator).
    max_seq_len : int
        Keys per row at most; sets the row sum's width ``P + 1 + ceil(log2 max_seq_len)``.
    multiplier : "generic" or "ecp5"
        The score and row-sum multipliers (:class:`~attn_rtl.hdl.multiplier.Multiplier`; ``ecp5``
        splits operands wider than one MULT18X18D over two).
    fifo_memory : "registers" or "ecp5"
        Storage of the two output FIFOs (:class:`~attn_rtl.hdl.credit_fifo.CreditFIFO`).
    numerics : dict or Numerics
        Number formats (docs/numerics.md, section 9); missing fields take their defaults.

    Attributes
    ----------
    latency : int
        Cycles from a beat accepted to its ``probs`` beat, outputs ready and empty.
    sum_latency : int
        Cycles from a ``last`` beat accepted to its ``sums`` beat.
    slot_recurrence : int
        Fewest cycles between two beats of one slot (the second not ``first``) at full rate.

    Ports
    -----
    scores : In(stream.Signature(StructLayout({"score": ArrayLayout(signed(score_width), lanes),
        "mask": lanes, "slot": range(slots), "first": 1, "last": 1})))
    scale_mult : In(mult_width)
    scale_shift : In(range(max_shift + 1))
    probs : Out(stream.Signature(StructLayout({"p": ArrayLayout(P + 1, lanes), "slot": range(slots),
        "scale_mant": P + 1, "scale_exp": 6, "first": 1, "last": 1})))
    sums : Out(stream.Signature(StructLayout({"slot": range(slots), "row_sum": W, "recip": R + 1,
        "recip_exp": range(W)})))
    """

    def __init__(self, **params):
        p = softmax_params(**params)
        self.params = p
        nm = Numerics.from_dict(p["numerics"])
        self.numerics = nm
        self.lanes, self.slots = p["lanes"], p["slots"]
        self.sum_width = nm.row_sum_width(p["max_seq_len"])
        super().__init__(softmax_ports(lanes=self.lanes, slots=self.slots, score_width=p["score_width"],
                                       sum_width=self.sum_width, numerics=nm))
        self._stages = self._plan()

    # --- the pipeline plan: the stage (cycles after the input register) of each step ---------

    def _exp2(self) -> Exp2Mantissa:
        nm = self.numerics
        return Exp2Mantissa(frac_bits=nm.logit_frac_bits, segments_log2=nm.exp_segments_log2,
                            prob_frac_bits=nm.prob_frac_bits)

    def _logit_multiplier(self) -> Multiplier:
        mul = Multiplier(a_width=self.params["score_width"], b_width=self.numerics.mult_width, a_signed=True,
                         b_signed=False, target=self.params["multiplier"])
        mul._MustUse__silence = True
        return mul

    def _rescale_multiplier(self) -> Multiplier:
        mul = Multiplier(a_width=self.sum_width, b_width=self.numerics.prob_width, a_signed=False, b_signed=False,
                         target=self.params["multiplier"])
        mul._MustUse__silence = True
        return mul

    def _plan(self) -> dict:
        nm = self.numerics
        s = {}
        s["logit"] = self._logit_multiplier().latency + 3  # multiplier, shift in two stages, saturate
        s["tile_max"] = s["logit"] + 2 * clog2(self.lanes)  # per level: compare, then select
        s["max_write"] = s["tile_max"] + 1  # compare at tile_max, select and write back a stage later
        s["new_max"] = s["max_write"] + 1
        exp2 = self._exp2()
        exp2._MustUse__silence = True
        s["probs"] = s["new_max"] + 1 + exp2.latency + 2  # u register, mantissa, shift in two stages
        s["probs_write"] = s["probs"] + 1                  # a register before the output FIFO
        terms = self.lanes
        tree_levels = clog2(terms)
        s["prob_sum"] = s["probs"] + (1 if terms == 1 else tree_levels)
        # The row sum loop: read at sum_read (address a cycle earlier), multiply, shift, add and
        # write in sum_write.  It needs the rescale factor (at "probs") and the sum.
        loop = self._rescale_multiplier().latency + 2   # the shift takes two stages
        s["sum_read"] = max(s["probs"], s["prob_sum"] - loop)
        s["sum_write"] = s["sum_read"] + loop
        s["row_sum"] = s["sum_write"] + 1
        recip = Reciprocal(width=self.sum_width, recip_bits=nm.recip_bits)
        recip._MustUse__silence = True
        s["recip"] = s["row_sum"] + recip.latency
        return s

    @property
    def _fifo_latency(self) -> int:
        return fifo_latency(self.params["fifo_memory"])

    @property
    def slot_recurrence(self) -> int:
        # Each state loop presents its read address a stage before the data is used and writes
        # at the end of stage `write`; the next beat of the slot must present its address after
        # that write: (write - (read - 1)) + 1 cycles behind.
        s = self._stages
        loops = [(s["tile_max"], s["max_write"]), (s["sum_read"], s["sum_write"])]
        return max(write - (read - 1) + 1 for read, write in loops)

    @property
    def probs_fifo_depth(self) -> int:
        # Entries reserved at accept and released a cycle after they leave: everything in
        # flight plus the FIFO's own latency and the release delay.
        return self._stages["probs_write"] + 1 + self._fifo_latency + 2

    @property
    def sums_fifo_depth(self) -> int:
        return self._stages["recip"] + 1 + self._fifo_latency + 2

    @property
    def latency(self) -> int:
        return 1 + self._stages["probs_write"] + self._fifo_latency

    @property
    def sum_latency(self) -> int:
        return 1 + self._stages["recip"] + self._fifo_latency

    def elaborate(self, platform):
        m = Module()
        nm, s = self.numerics, self._stages
        lanes, F, P, T = self.lanes, nm.logit_frac_bits, nm.prob_frac_bits, nm.logit_width

        fifo_kind = dict(memory=self.params["fifo_memory"], target=self.params["multiplier"])
        m.submodules.probs_fifo = probs_fifo = CreditFIFO(width=len(self.probs.payload.as_value()),
                                                          depth=self.probs_fifo_depth, **fifo_kind)
        m.submodules.sums_fifo = sums_fifo = CreditFIFO(width=len(self.sums.payload.as_value()),
                                                        depth=self.sums_fifo_depth, **fifo_kind)

        # --- admission: credits in both FIFOs, and the slot hazard -------------------------------
        def credit_counter(name, depth, admit, release):
            reserved = Signal(range(depth + 1), name=f"{name}_reserved")
            credit = Signal(init=1, name=f"{name}_credit")
            released = register(m, release, f"{name}_released", reset=True)
            kept = Signal.like(reserved, name=f"{name}_kept")
            m.d.comb += kept.eq(reserved - released)
            m.d.sync += [reserved.eq(kept + admit),
                         credit.eq(Mux(admit, kept <= depth - 2, kept <= depth - 1))]
            return credit

        beat = self.scores.payload
        recent = []           # (valid, slot) of the beats accepted 1, 2, ... cycles ago
        hazard = Signal()
        fire = Signal()
        window = self.slot_recurrence - 1
        previous_valid, previous_slot = fire, beat.slot
        for k in range(window):
            previous_valid = register(m, previous_valid, f"recent_valid_{k}", reset=True)
            previous_slot = register(m, previous_slot, f"recent_slot_{k}")
            recent.append((previous_valid, previous_slot))
        m.d.comb += hazard.eq(~beat.first & Cat(v & (sl == beat.slot) for v, sl in recent).any())

        probs_credit = credit_counter("probs", self.probs_fifo_depth, fire,
                                      self.probs.valid & self.probs.ready)
        sums_credit = credit_counter("sums", self.sums_fifo_depth, fire & beat.last,
                                     self.sums.valid & self.sums.ready)
        may_accept = probs_credit & (sums_credit | ~beat.last) & ~hazard
        m.d.comb += [self.scores.ready.eq(may_accept), fire.eq(self.scores.valid & may_accept)]

        scale_mult = register(m, self.scale_mult, "scale_mult_r")
        scale_shift = register(m, self.scale_shift, "scale_shift_r")

        # --- stage 0: the input register (loaded every cycle, qualified by valid) ---------------
        valid0 = register(m, fire, "in_valid", reset=True)
        score0 = register(m, beat.score, "in_score")
        mask0 = register(m, beat.mask, "in_mask")
        slot0 = register(m, beat.slot, "in_slot")
        first0 = register(m, beat.first, "in_first")
        last0 = register(m, beat.last, "in_last")

        def at(value, stage, name, since=0, reset=False):
            return delayed(m, value, stage - since, name, reset=reset)

        # --- logits: t = sat_T((S * M) >> s) ----------------------------------------------------
        logits = []
        for j in range(lanes):
            m.submodules[f"logit_mul_{j}"] = mul = self._logit_multiplier()
            m.d.comb += [mul.a.eq(score0[j]), mul.b.eq(scale_mult)]
            # Two stages of shifting (by multiples of 8, then 0..7): in one, the shifter was the ECP5
            # critical path (9.1 ns, five LUT levels).
            # Each lane shifts by a copy of its own, loaded with the lane's unmasked beats: one
            # register driving all lanes' shifters was the ECP5 critical path (6.1 ns on that net),
            # and copies loaded alike would be merged back by synthesis.  A masked lane's logit is
            # never used, so its copy may lag.
            lane_shift = Signal.like(scale_shift, name=f"scale_shift_{j}", reset_less=True)
            with m.If(mask0[j]):
                m.d.sync += lane_shift.eq(scale_shift)
            coarse = register(m, mul.product >> Cat(Const(0, 3), lane_shift[3:]), f"shifted_coarse_{j}")
            shifted = register(m, coarse >> register(m, lane_shift[:3], f"scale_shift_fine_{j}"), f"shifted_{j}")
            logits.append(register(m, saturated(shifted, T), f"logit_{j}"))
        mask_l = at(mask0, s["logit"], "mask_l")

        # --- tile maximum over unmasked lanes: per tree level one stage compares (a carry chain)
        # and the next selects (a multiplexer whose select fans out to every bit).
        nodes = [(mask_l[j], logits[j]) for j in range(lanes)]
        level = 0
        while len(nodes) > 1:
            merged = []
            for i in range(0, len(nodes), 2):
                if i + 1 == len(nodes):
                    v, x = (delayed(m, value, 1, f"max_pass_{level}_{i}") for value in nodes[i])
                else:
                    (va, xa), (vb, xb) = nodes[i], nodes[i + 1]
                    # a >= b as the sign of a one-bit-wider difference: the end of the carry chain,
                    # where Yosys's signed >= adds an overflow correction after it.
                    not_below = ~(xa.as_signed() - xb.as_signed())[-1]
                    take_a = register(m, va & (~vb | not_below), f"max_take_{level}_{i}")
                    xa, xb = register(m, xa, f"max_a_{level}_{i}"), register(m, xb, f"max_b_{level}_{i}")
                    v, x = register(m, va | vb, f"max_either_{level}_{i}"), Mux(take_a, xa, xb)
                merged.append((register(m, v, f"max_valid_{level}_{i}"), register(m, x, f"max_{level}_{i}")))
            nodes, level = merged, level + 1
        tile_seen, tile_max = nodes[0]

        # --- running maximum: read the slot's state and compare (stage tile_max), then select and
        # write back (stage max_write): the loop spans two stages so that neither holds both the
        # comparison's carry chain and the selection's fan-out.
        m.submodules.max_state = max_state = memory.Memory(shape=unsigned(T + 1), depth=self.slots, init=[],
                                                           attrs={"ram_style": "logic"})
        max_read = max_state.read_port(domain="sync", transparent_for=())
        max_write = max_state.write_port()
        first_tm = at(first0, s["tile_max"], "first_tm")
        m.d.comb += [max_read.addr.eq(at(slot0, s["tile_max"] - 1, "slot_max_read")), max_read.en.eq(1)]
        old_max = max_read.data[:T].as_signed()
        rise = Signal(signed(T + 1))
        m.d.comb += rise.eq(tile_max - old_max)
        rise_w = register(m, rise, "rise")
        # "Grows" may include equality: the maximum and the zero rise are the same either way, and
        # the sign of the rise is the end of its carry chain (a separate > took extra logic after it).
        greater_w = register(m, ~rise[-1], "greater")
        seen_w = register(m, max_read.data[T] & ~first_tm, "seen")
        tile_seen_w = register(m, tile_seen, "tile_seen")
        tile_max_w = register(m, tile_max, "tile_max_w")
        old_max_w = register(m, old_max, "old_max")
        grows = seen_w & tile_seen_w & greater_w
        new_max_c = Mux(tile_seen_w & (~seen_w | grows), tile_max_w, old_max_w)
        m.d.comb += [max_write.addr.eq(at(slot0, s["max_write"], "slot_mw")),
                     max_write.en.eq(at(valid0, s["max_write"], "valid_mw", reset=True)),
                     max_write.data.eq(Cat(new_max_c, seen_w | tile_seen_w))]
        new_max = register(m, new_max_c, "new_max")
        delta = register(m, Mux(grows, rise_w[:T], 0), "delta")

        # --- probabilities p = E(u mod 2^F) >> min(u >> F, P + 1), u = m_new - t ---------------
        def exponent(value, cap, name):
            return register(m, octaves(value, F, cap), name)

        mask_pm = at(mask_l, s["probs"] - 1, "mask_pm", since=s["logit"])
        probs = []
        for j in range(lanes):
            u = register(m, new_max - at(logits[j], s["new_max"], f"logit_nm_{j}", since=s["logit"]),
                         f"distance_{j}")
            u = u[:T]                      # unmasked lanes lie at or below the maximum
            m.submodules[f"exp2_{j}"] = exp2 = self._exp2()
            m.d.comb += exp2.f.eq(u[:F])
            shift = delayed(m, exponent(u, P + 1, f"octaves_{j}"), exp2.latency - 1, f"octaves_{j}")
            # Two stages of shifting (by multiples of 4, then 0..3): one 5-bit shifter was 9.4 ns on ECP5.
            coarse = register(m, exp2.mant >> Cat(Const(0, 2), shift[2:]), f"prob_coarse_{j}")
            prob = Signal(unsigned(P + 1), name=f"prob_{j}", reset_less=True)
            m.d.sync += prob.eq(Mux(mask_pm[j], coarse >> register(m, shift[:2], f"octaves_fine_{j}"), 0))
            probs.append(prob)

        m.submodules.exp2_rescale = exp2_r = self._exp2()
        delta_u = register(m, delta, "delta_u")
        m.d.comb += exp2_r.f.eq(delta_u[:F])
        scale_exp_early = delayed(m, exponent(delta_u, RESCALE_EXP_MAX, "scale_exp"), exp2_r.latency - 1, "scale_exp")
        # The rescale factor reaches stage probs with the probabilities (one more register than its
        # single-stage shift needs).
        scale_exp = delayed(m, scale_exp_early, 2, "scale_exp_out")
        scale_shift_p = delayed(m, scale_exp_early + P, 2, "scale_shift_p")   # the row sum's shift, P + exp
        scale_mant = delayed(m, exp2_r.mant, 2, "scale_mant")

        valid_p = at(valid0, s["probs"], "valid_p", reset=True)
        slot_p = at(slot0, s["probs"], "slot_p")
        first_p = at(first0, s["probs"], "first_p")
        last_p = at(last0, s["probs"], "last_p")
        probs_word = Signal(self.probs.payload.shape())
        m.d.comb += [probs_word.p.eq(Cat(*probs)), probs_word.slot.eq(slot_p), probs_word.first.eq(first_p),
                     probs_word.last.eq(last_p), probs_word.scale_mant.eq(scale_mant),
                     probs_word.scale_exp.eq(scale_exp)]
        # A register between the datapath and the FIFO's entries, which spread over the die.
        m.d.comb += [probs_fifo.w_en.eq(register(m, valid_p, "probs_w_en", reset=True)),
                     probs_fifo.w_data.eq(register(m, probs_word, "probs_w_data"))]
        m.d.comb += [self.probs.payload.eq(probs_fifo.r.payload), self.probs.valid.eq(probs_fifo.r.valid),
                     probs_fifo.r.ready.eq(self.probs.ready)]

        # --- row sum: l = ((l * mant) >> (P + exp)) + sum(p), read and written per slot -------
        prob_sum, tree_stages = adder_tree(m, probs, "prob_sum", levels_per_stage=1)
        assert s["probs"] + tree_stages == s["prob_sum"], (tree_stages, s)
        m.submodules.sum_state = sum_state = memory.Memory(shape=unsigned(self.sum_width), depth=self.slots,
                                                           init=[], attrs={"ram_style": "logic"})
        sum_read = sum_state.read_port(domain="sync", transparent_for=())
        sum_write = sum_state.write_port()
        m.d.comb += [sum_read.addr.eq(at(slot0, s["sum_read"] - 1, "slot_sum_read")), sum_read.en.eq(1)]
        old_sum = Mux(at(first0, s["sum_read"], "first_sr"), 0, sum_read.data)
        m.submodules.rescale_mul = mul = self._rescale_multiplier()
        m.d.comb += [mul.a.eq(old_sum), mul.b.eq(at(scale_mant, s["sum_read"], "mant_sr", since=s["probs"]))]
        # P + scale_exp is added where scale_exp is made, so the shifter's amount is a register.
        total_shift = at(scale_shift_p, s["sum_read"] + mul.latency, "exp_sr", since=s["probs"])
        # Two stages of shifting (by multiples of 8, then by 0..7): one 7-bit barrel shifter was the
        # ECP5 critical path (11.5 ns).
        coarse = register(m, mul.product >> Cat(Const(0, 3), total_shift[3:]), "rescaled_coarse")
        rescaled = register(m, coarse >> register(m, total_shift[:3], "shift_fine"), "rescaled_sum")
        new_sum = Signal(self.sum_width)
        m.d.comb += new_sum.eq(rescaled + at(prob_sum, s["sum_write"], "prob_sum_w", since=s["prob_sum"]))
        slot_w = at(slot0, s["sum_write"], "slot_w")
        m.d.comb += [sum_write.addr.eq(slot_w), sum_write.en.eq(at(valid0, s["sum_write"], "valid_w", reset=True)),
                     sum_write.data.eq(new_sum)]
        row_sum = register(m, new_sum, "row_sum")

        # --- reciprocal at the end of a row -----------------------------------------------------
        m.submodules.reciprocal = recip = Reciprocal(width=self.sum_width, recip_bits=nm.recip_bits)
        m.d.comb += recip.row_sum.eq(row_sum)
        sums_word = Signal(self.sums.payload.shape())
        m.d.comb += [sums_word.slot.eq(at(slot0, s["recip"], "slot_r")),
                     sums_word.row_sum.eq(at(row_sum, s["recip"], "row_sum_r", since=s["row_sum"])),
                     sums_word.recip.eq(recip.recip), sums_word.recip_exp.eq(recip.exp),
                     sums_fifo.w_en.eq(at(valid0, s["recip"], "valid_r", reset=True) & at(last0, s["recip"], "last_r")),
                     sums_fifo.w_data.eq(sums_word)]
        m.d.comb += [self.sums.payload.eq(sums_fifo.r.payload), self.sums.valid.eq(sums_fifo.r.valid),
                     sums_fifo.r.ready.eq(self.sums.ready)]
        return m
