"""The online softmax of one row, a lane a cycle: :class:`SoftmaxUnit`'s arithmetic on one multiplier."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring

from attn_rtl.numerics import RESCALE_EXP_MAX, Numerics
from attn_rtl.params import reject_unknown

from .exp2 import Exp2Mantissa
from .multiplier import Multiplier
from .pipeline import delayed, register
from .reciprocal import Reciprocal
from .softmax import octaves, saturated, softmax_params, softmax_ports

__all__ = ["SerialSoftmax", "SERIAL_SOFTMAX_DEFAULTS", "serial_softmax_params"]

#: Elaboration parameters of :class:`SerialSoftmax` and their defaults (the 8×8 engine's global row's).
SERIAL_SOFTMAX_DEFAULTS = {
    "lanes": 9,
    "score_width": 23,
    "max_seq_len": 1024,
    "multiplier": "generic",
    "numerics": None,
}


def serial_softmax_params(**params) -> dict:
    """Validate :class:`SerialSoftmax` parameters (as :func:`~attn_rtl.hdl.softmax.softmax_params` does a
    one-slot :class:`SoftmaxUnit`'s); return them complete, defaults filled in."""
    reject_unknown("serial softmax", params, SERIAL_SOFTMAX_DEFAULTS)
    p = softmax_params(**{**SERIAL_SOFTMAX_DEFAULTS, **params}, slots=1)
    return {name: p[name] for name in SERIAL_SOFTMAX_DEFAULTS}


class SerialSoftmax(wiring.Component):
    """The online softmax of docs/numerics.md (sections 3 to 6) for one row, one lane of a tile a cycle.

    The same arithmetic and ports as a one-slot :class:`~attn_rtl.hdl.softmax.SoftmaxUnit` (``slot``
    is zero bits wide; ``sim/softmax_stream.py`` is the bit-exact model of both), for a row that
    sees one key tile every :attr:`tile_cycles` cycles or fewer: the logits of a tile are made one lane a
    cycle on one multiplier and kept, the tile's maximum taken as they come; then the running maximum
    and the rescale exponent; then the probabilities one lane a cycle on one exponent, their sum as
    they come; then the row sum's rescale on one more multiplier, and at a row's ``last`` tile its
    reciprocal.  SALO's global PE row (:class:`~attn_rtl.hdl.global_row.GlobalRow`) sees a tile per
    ``2·head_dim`` cycles or more: ``lanes`` copies of the logit and exponent pipelines would idle.

    A tile is taken when the unit is idle; its ``probs`` beat is held until taken (the next tile's
    probabilities wait for that, its logits do not) and its ``sums`` beat likewise.

    Parameters
    ----------
    lanes : int
        Scores per beat.
    score_width : int
        Width of the signed scores.
    max_seq_len : int
        Keys per row at most (the row sum's width).
    multiplier : "generic" or "ecp5"
    numerics : dict or Numerics

    Attributes
    ----------
    tile_cycles : int
        Cycles from a tile taken to the next one taken, when ``probs`` and ``sums`` are ready and the
        tile does not end a row.
    row_end_cycles : int
        The same for a tile that ends its row (its reciprocal).
    latency : int
        Cycles from a tile taken to its ``probs`` beat.

    Ports
    -----
    scores, scale_mult, scale_shift, probs, sums
        As :class:`~attn_rtl.hdl.softmax.SoftmaxUnit`'s with one slot.
    """

    def __init__(self, **params):
        p = serial_softmax_params(**params)
        self.params = p
        self.numerics = nm = Numerics.coerce(p["numerics"])
        self.lanes = p["lanes"]
        self.sum_width = nm.row_sum_width(p["max_seq_len"])
        super().__init__(softmax_ports(lanes=self.lanes, slots=1, score_width=p["score_width"],
                                       sum_width=self.sum_width, numerics=nm))

    # --- the parts, and the cycles they take --------------------------------------------------

    def _logit_multiplier(self) -> Multiplier:
        return Multiplier(a_width=self.params["score_width"], b_width=self.numerics.mult_width, a_signed=True,
                          b_signed=False, target=self.params["multiplier"])

    def _rescale_multiplier(self) -> Multiplier:
        return Multiplier(a_width=self.sum_width, b_width=self.numerics.prob_width, a_signed=False,
                          b_signed=False, target=self.params["multiplier"])

    def _exp2(self) -> Exp2Mantissa:
        nm = self.numerics
        return Exp2Mantissa(frac_bits=nm.logit_frac_bits, segments_log2=nm.exp_segments_log2,
                            prob_frac_bits=nm.prob_frac_bits)

    def _reciprocal(self) -> Reciprocal:
        return Reciprocal(width=self.sum_width, recip_bits=self.numerics.recip_bits)

    @staticmethod
    def _latency_of(part) -> int:
        part._MustUse__silence = True
        return part.latency

    @property
    def _logit_lag(self) -> int:
        # The operand register, the multiplier, two shift stages, the saturation.
        return 1 + self._latency_of(self._logit_multiplier()) + 3

    @property
    def _prob_lag(self) -> int:
        # The logit register, the distance, the exponent, the coarse shift (the fine one with the write).
        return 2 + self._latency_of(self._exp2()) + 1

    @property
    def _sum_wait(self) -> int:
        # The multiplier and two shift stages.
        return self._latency_of(self._rescale_multiplier()) + 2

    @property
    def tile_cycles(self) -> int:
        # take, logits and their lag, two maximum steps, the probabilities' wait, probabilities, their lag
        # and the cycle that ends it, the row sum's wait and its write.
        return 1 + self.lanes + self._logit_lag + 2 + 1 + self.lanes + self._prob_lag + 1 + self._sum_wait + 1

    @property
    def row_end_cycles(self) -> int:
        return self.tile_cycles + self._latency_of(self._reciprocal()) + 1

    @property
    def latency(self) -> int:
        return self.tile_cycles - self._sum_wait - 1

    def elaborate(self, platform):
        m = Module()
        nm = self.numerics
        G, F, P, T = self.lanes, nm.logit_frac_bits, nm.prob_frac_bits, nm.logit_width
        beat = self.scores.payload
        scale_mult = register(m, self.scale_mult, "scale_mult_r")
        scale_shift = register(m, self.scale_shift, "scale_shift_r")

        tile = Signal(beat.shape(), name="tile", reset_less=True)
        # A lane while logits or probabilities issue, the cycles left while the row sum or its reciprocal
        # are made.
        lane = Signal(range(max(G + 1, self._sum_wait + 1, self._latency_of(self._reciprocal()) + 1)),
                      name="count", reset_less=True)
        issue_logit, issue_prob = Signal(), Signal()

        # --- logits t_j = sat_T((S_j * M) >> s), one lane a cycle, kept; the tile's maximum as they come.
        score = register(m, tile.score[lane], "operand")
        m.submodules.logit_mul = logit_mul = self._logit_multiplier()
        m.d.comb += [logit_mul.a.eq(score), logit_mul.b.eq(scale_mult)]
        # Two shift stages (by multiples of 8, then 0..7), as the parallel unit's.
        coarse = register(m, logit_mul.product >> Cat(Const(0, 3), scale_shift[3:]), "shifted_coarse")
        shifted = register(m, coarse >> scale_shift[:3], "shifted")
        logit = register(m, saturated(shifted, T), "logit")
        logit_valid = delayed(m, issue_logit, self._logit_lag, "logit_valid", reset=True)
        logit_lane = delayed(m, lane, self._logit_lag, "logit_lane")
        logits = Signal(data.ArrayLayout(signed(T), G), name="logits", reset_less=True)
        tile_max = Signal(signed(T), name="tile_max", reset_less=True)
        tile_seen = Signal(name="tile_seen", reset_less=True)
        unmasked = tile.mask.bit_select(logit_lane, 1)
        with m.If(logit_valid):
            m.d.sync += logits[logit_lane].eq(logit)
            with m.If(unmasked & (~tile_seen | (logit > tile_max))):
                m.d.sync += [tile_max.eq(logit), tile_seen.eq(1)]
        logits_done = logit_valid & (logit_lane == G - 1)

        # --- the running maximum (one row's), the rescale exponent delta.
        # (A row's first tile does not read them: reset-less.)
        run_max = Signal(signed(T), name="running_max", reset_less=True)
        run_seen = Signal(name="running_seen", reset_less=True)
        rise = Signal(signed(T + 1), name="rise", reset_less=True)
        seen, greater = Signal(name="seen", reset_less=True), Signal(name="greater", reset_less=True)
        delta = Signal(T, name="delta", reset_less=True)

        # --- probabilities p_j = E(u mod 2^F) >> min(u >> F, P + 1), u = m_new - t_j, one lane a cycle.
        picked = register(m, logits[lane], "picked")
        distance = register(m, run_max - picked, "distance")[:T]   # run_max: the tile's new maximum by now
        m.submodules.exp2 = exp2 = self._exp2()
        m.d.comb += exp2.f.eq(distance[:F])
        shift = delayed(m, register(m, octaves(distance, F, P + 1), "octaves"), exp2.latency - 1, "octaves")
        prob_coarse = register(m, exp2.mant >> Cat(Const(0, 2), shift[2:]), "prob_coarse")
        prob_fine = register(m, shift[:2], "octaves_fine")
        prob_valid = delayed(m, issue_prob, self._prob_lag, "prob_valid", reset=True)
        prob_lane = delayed(m, lane, self._prob_lag, "prob_lane")
        prob = Mux(tile.mask.bit_select(prob_lane, 1), prob_coarse >> prob_fine, 0)
        out = self.probs.payload
        prob_sum = Signal(self.sum_width, name="prob_sum", reset_less=True)
        with m.If(prob_valid):
            m.d.sync += [out.p[prob_lane].eq(prob), prob_sum.eq(prob_sum + prob)]
        probs_done = register(m, prob_valid & (prob_lane == G - 1), "probs_done", reset=True)

        # The rescale factor from delta (held from the maximum's step to the next tile's).
        m.submodules.exp2_rescale = exp2_r = self._exp2()
        m.d.comb += exp2_r.f.eq(delta[:F])
        scale_exp = octaves(delta, F, RESCALE_EXP_MAX)

        # --- the row sum l = ((l * mant) >> (P + exp)) + Σp, and at a row's end its reciprocal.
        run_sum = Signal(self.sum_width, name="row_sum", reset_less=True)
        m.submodules.rescale_mul = rescale_mul = self._rescale_multiplier()
        m.d.comb += [rescale_mul.a.eq(Mux(tile.first, 0, run_sum)), rescale_mul.b.eq(out.scale_mant)]
        total_shift = Signal(range(RESCALE_EXP_MAX + P + 1), name="sum_shift", reset_less=True)   # P + exp
        sum_coarse = register(m, rescale_mul.product >> Cat(Const(0, 3), total_shift[3:]), "rescaled_coarse")
        rescaled = register(m, sum_coarse >> total_shift[:3], "rescaled_sum")
        m.submodules.reciprocal = recip = self._reciprocal()
        m.d.comb += recip.row_sum.eq(run_sum)

        with m.If(self.probs.valid & self.probs.ready):
            m.d.sync += self.probs.valid.eq(0)
        with m.If(self.sums.valid & self.sums.ready):
            m.d.sync += self.sums.valid.eq(0)

        def one_lane_a_cycle(issue, then):
            m.d.comb += issue.eq(1)
            m.d.sync += lane.eq(lane + 1)
            with m.If(lane == G - 1):
                m.next = then

        with m.FSM(name="phase"):
            with m.State("TAKE"):
                m.d.comb += self.scores.ready.eq(1)
                with m.If(self.scores.valid):
                    m.d.sync += [tile.eq(beat), lane.eq(0), tile_seen.eq(0)]
                    m.next = "LOGITS"
            with m.State("LOGITS"):
                one_lane_a_cycle(issue_logit, "LOGITS_LAG")
            with m.State("LOGITS_LAG"):
                with m.If(logits_done):
                    m.next = "COMPARE"
            with m.State("COMPARE"):
                m.d.sync += [rise.eq(tile_max - run_max), greater.eq(tile_max >= run_max),
                             seen.eq(run_seen & ~tile.first)]
                m.next = "MAXIMUM"
            with m.State("MAXIMUM"):
                # "Grows" may include equality, as the parallel unit's: the maximum and the zero rise
                # are the same either way.
                grows = seen & tile_seen & greater
                m.d.sync += [run_max.eq(Mux(tile_seen & (~seen | grows), tile_max, run_max)),
                             delta.eq(Mux(grows, rise[:T], 0)), run_seen.eq(seen | tile_seen)]
                m.next = "PROBS_WAIT"
            with m.State("PROBS_WAIT"):
                # The previous tile's probabilities are the output registers until taken.
                with m.If(~self.probs.valid):
                    m.d.sync += [lane.eq(0), prob_sum.eq(0)]
                    m.next = "PROBS"
            with m.State("PROBS"):
                one_lane_a_cycle(issue_prob, "PROBS_LAG")
            with m.State("PROBS_LAG"):
                with m.If(probs_done):
                    m.d.sync += [self.probs.valid.eq(1), out.scale_mant.eq(exp2_r.mant),
                                 out.scale_exp.eq(scale_exp), out.first.eq(tile.first), out.last.eq(tile.last),
                                 total_shift.eq(scale_exp + P), lane.eq(self._sum_wait)]
                    m.next = "SUM"
            with m.State("SUM"):
                m.d.sync += lane.eq(lane - 1)
                with m.If(lane == 0):
                    m.d.sync += [run_sum.eq(rescaled + prob_sum), lane.eq(recip.latency)]
                    with m.If(tile.last):
                        m.next = "RECIPROCAL"
                    with m.Else():
                        m.next = "TAKE"
            with m.State("RECIPROCAL"):
                # The reciprocal's pipeline from the row sum held, then the sums beat once the last is taken.
                with m.If(lane != 0):
                    m.d.sync += lane.eq(lane - 1)
                with m.Elif(~self.sums.valid):
                    m.d.sync += [self.sums.valid.eq(1), self.sums.payload.row_sum.eq(run_sum),
                                 self.sums.payload.recip.eq(recip.recip), self.sums.payload.recip_exp.eq(recip.exp)]
                    m.next = "TAKE"
        return m
