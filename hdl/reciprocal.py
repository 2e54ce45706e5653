"""Exact reciprocal of a row sum by a pipelined restoring divider."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import int_in_range, positive_int

__all__ = ["Reciprocal"]


class Reciprocal(wiring.Component):
    """``e = bit_length(ℓ) − 1`` and ``r = ⌊2^(R+e) / ℓ⌋``; ``r = e = 0`` for ``ℓ = 0``.

    docs/numerics.md, section 6.  The divisor is first normalized to
    ``ℓ_n = ℓ · 2^(W−1−e) ∈ [2^(W−1), 2^W)`` (a priority encoder over groups
    of four bits, then a shift by whole groups and one by the rest: three
    stages), which leaves the quotient unchanged: ``r = ⌊2^(R+W−1) / ℓ_n⌋ ∈
    (2^(R−1), 2^R]``.  Then one restoring step per quotient bit, ``R + 1``
    steps, each a ``W + 1``-bit subtraction and a register.  A new ``ℓ``
    every cycle; no handshake.

    Parameters
    ----------
    width : int
        ``W``, the width of ``ℓ``.
    recip_bits : int
        ``R``; ``r`` is ``R + 1`` bits wide.

    Attributes
    ----------
    latency : int
        Cycles from ``row_sum`` to ``recip`` and ``exp``.

    Ports
    -----
    row_sum : In(width)
    recip : Out(recip_bits + 1)
    exp : Out(range(width))
    """

    def __init__(self, *, width: int, recip_bits: int):
        self.width = positive_int("width", width, at_most=64)
        self.recip_bits = int_in_range("recip_bits", recip_bits, 2, 30)
        super().__init__({"row_sum": In(width), "recip": Out(recip_bits + 1), "exp": Out(range(width))})

    @property
    def latency(self) -> int:
        return 3 + self.recip_bits + 1

    def elaborate(self, platform):
        m = Module()
        # A datapath qualified by the caller's valid bits: nothing here is reset.
        w, r_bits = self.width, self.recip_bits

        # Stage 1: per group of four bits, whether any is set and the highest set one; stage 2: e from
        # the highest nonzero group, the divisor shifted by whole groups; stage 3: shifted by the rest.
        # (One priority encoder over the row sum's width was the softmax unit's ECP5 critical path.)
        groups = -(-w // 4)
        padded = 4 * groups
        value = Signal(padded, reset_less=True)
        zero = Signal(reset_less=True)
        any_set = Signal(groups, reset_less=True)
        top = [Signal(2, name=f"top_{g}", reset_less=True) for g in range(groups)]
        m.d.sync += [value.eq(self.row_sum), zero.eq(self.row_sum == 0)]
        for g in range(groups):
            nibble = self.row_sum[4 * g:4 * g + 4]
            m.d.sync += any_set[g].eq(nibble.any())
            m.d.sync += top[g].eq(0)
            for bit in range(1, len(nibble)):      # the last assignment wins: the highest set bit
                with m.If(nibble[bit]):
                    m.d.sync += top[g].eq(bit)
        exp = Signal(range(w), reset_less=True)
        coarse = Signal(padded, reset_less=True)
        fine = Signal(2, reset_less=True)
        zero_2 = Signal(reset_less=True)
        m.d.sync += [exp.eq(0), coarse.eq(value << (padded - 4)), fine.eq(3), zero_2.eq(zero)]
        for g in range(groups):                    # the last assignment wins: the highest nonzero group
            with m.If(any_set[g]):
                m.d.sync += [exp.eq(4 * g + top[g]), coarse.eq(value << (padded - 4 - 4 * g)),
                             fine.eq(3 - top[g])]
        divisor = Signal(w, reset_less=True)
        exp_3, zero_3 = Signal.like(exp), Signal(reset_less=True)
        # The leading one lands at bit padded - 1; the top w bits are the divisor normalized to w bits.
        m.d.sync += [divisor.eq((coarse << fine)[padded - w:padded]), exp_3.eq(exp), zero_3.eq(zero_2)]

        # R + 1 restoring steps.  The dividend 2^(R+W-1) brings down only zeros after its
        # leading one, so the partial remainder starts at 2^(W-1) and doubles each step.
        remainder = Signal(w + 1, reset_less=True)
        m.d.comb += remainder.eq(1 << (w - 1))
        quotient = None
        stage_divisor, stage_exp, stage_zero = divisor, exp_3, zero_3
        for step in range(r_bits + 1):
            trial = Signal(w + 2, name=f"trial_{step}", reset_less=True)
            m.d.comb += trial.eq(remainder - stage_divisor)
            fits = ~trial[w + 1]
            next_remainder = Signal(w + 1, name=f"rem_{step}", reset_less=True)
            next_quotient = Signal(step + 1, name=f"quot_{step}", reset_less=True)
            next_divisor = Signal(w, name=f"div_{step}", reset_less=True)
            next_exp, next_zero = Signal.like(exp, name=f"exp_{step}"), Signal(name=f"zero_{step}", reset_less=True)
            # The remainder stays below the divisor (< 2^W), so doubling it fits W + 1 bits.
            m.d.sync += [
                next_remainder.eq(Mux(fits, trial[:w], remainder[:w]) << 1),
                next_quotient.eq(fits if quotient is None else Cat(fits, quotient)),
                next_divisor.eq(stage_divisor),
                next_exp.eq(stage_exp),
                next_zero.eq(stage_zero),
            ]
            remainder, quotient = next_remainder, next_quotient
            stage_divisor, stage_exp, stage_zero = next_divisor, next_exp, next_zero
        m.d.comb += [self.recip.eq(Mux(stage_zero, 0, quotient)), self.exp.eq(stage_exp)]
        return m
