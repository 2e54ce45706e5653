"""The mantissa of ``2^-x``: a table of ``2^S + 1`` points and linear interpolation between them."""

from __future__ import annotations

import math

from amaranth.hdl import Array, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from attn_rtl.params import int_in_range

from .pipeline import adder_tree, delayed, register

__all__ = ["Exp2Mantissa", "exp2_points"]


def exp2_points(frac_bits: int, segments_log2: int, prob_frac_bits: int) -> list[int]:
    """``round_half_even(2^P · 2^(-i / 2^S))`` for ``i = 0 … 2^S`` (docs/numerics.md, section 4)."""
    return [round(math.ldexp(2.0 ** (-i / (1 << segments_log2)), prob_frac_bits))
            for i in range((1 << segments_log2) + 1)]


class Exp2Mantissa(wiring.Component):
    """``E(f) = Tab[i] − ⌊(Tab[i] − Tab[i+1]) · r / 2^(F−S)⌋``, ``i = f >> (F−S)``, ``r = f mod 2^(F−S)``.

    ``E(f)`` approximates ``2^P · 2^(−f/2^F)`` for ``0 ≤ f < 2^F``
    (docs/numerics.md, section 4).  A table lookup in two stages (the point and
    the difference to the next, both constants), a small multiplication of the
    difference by ``r`` done as shifted partial products in the fabric (so no
    DSP block is spent on it), and a subtraction, registered after each
    step.  A new ``f`` every cycle; no handshake.

    Parameters
    ----------
    frac_bits : int
        ``F``, the width of ``f``.
    segments_log2 : int
        ``S``: ``2^S`` segments.
    prob_frac_bits : int
        ``P``: ``E`` is ``P + 1`` bits wide, ``E(0) = 2^P``.

    Attributes
    ----------
    latency : int
        Cycles from ``f`` to ``mant``.

    Ports
    -----
    f : In(frac_bits)
    mant : Out(prob_frac_bits + 1)
    """

    def __init__(self, *, frac_bits: int, segments_log2: int, prob_frac_bits: int):
        self.frac_bits = int_in_range("frac_bits", frac_bits, 1, 16)
        self.segments_log2 = int_in_range("segments_log2", segments_log2, 0, frac_bits)
        self.prob_frac_bits = int_in_range("prob_frac_bits", prob_frac_bits, 4, 24)
        self.points = exp2_points(frac_bits, segments_log2, prob_frac_bits)
        super().__init__({"f": In(frac_bits), "mant": Out(prob_frac_bits + 1)})

    @property
    def _low_bits(self) -> int:
        return self.frac_bits - self.segments_log2

    @property
    def _product_stages(self) -> int:
        # r has F - S bits: that many partial products, summed one adder level per stage (two
        # levels, carry chain into carry chain, were the softmax unit's critical path at 3f439bd;
        # a single term is just registered).
        terms = self._low_bits
        if terms <= 1:
            return terms
        return (terms - 1).bit_length()

    @property
    def latency(self) -> int:
        return self._LOOKUP_STAGES + self._product_stages + 1

    #: The tables are read in two stages: every candidate of the high index bits by the low bits
    #: (three-input lookups), then one of them by the high bits.  One 32-entry lookup of the
    #: point and the step was five LUT levels on ECP5 (the softmax unit's critical path).
    _LOOKUP_STAGES = 2
    _LOW_INDEX_BITS = 3

    def _lookup(self, m: Module, table: list, width: int, index, name: str):
        """``table[index]`` two registers later (index bits split into high and low)."""
        low_bits = min(self._LOW_INDEX_BITS, len(index))
        low, high = index[:low_bits], index[low_bits:]
        size = 1 << low_bits
        candidates = [register(m, Array(Const(v, unsigned(width)) for v in table[h * size:(h + 1) * size])[low],
                               f"{name}_candidate_{h}")
                      for h in range(-(-len(table) // size))]
        high_r = register(m, high, f"{name}_high")
        return register(m, Array(candidates)[high_r] if len(candidates) > 1 else candidates[0], name)

    def elaborate(self, platform):
        m = Module()
        low, width = self._low_bits, self.prob_frac_bits + 1
        points = self.points
        steps = [points[i] - points[i + 1] for i in range(len(points) - 1)]
        index = self.f[low:]
        remainder = self.f[:low]

        mant = Signal.like(self.mant, reset_less=True)   # a datapath: nothing here is reset
        m.d.comb += self.mant.eq(mant)
        point = self._lookup(m, points[:-1], width, index, "point")
        if low == 0:
            m.d.sync += mant.eq(point)
            return m
        step_width = max(steps).bit_length() or 1
        step = self._lookup(m, steps, step_width, index, "step")
        r = delayed(m, remainder, self._LOOKUP_STAGES, "remainder")

        partials = [Mux(r[k], step << k, 0) for k in range(low)]
        product, stages = adder_tree(m, partials, "interp", levels_per_stage=1)
        assert stages == self._product_stages, (stages, self._product_stages)
        for _ in range(stages):
            point = register(m, point, "point_p")
        m.d.sync += mant.eq(point - (product >> low))
        return m
