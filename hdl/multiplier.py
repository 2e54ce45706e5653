"""A registered integer multiplier that fills one DSP block."""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .params import boolean, positive_int

__all__ = ["Multiplier", "MULTIPLIER_TARGETS", "multiplier_latency", "check_multiplier"]

MULTIPLIER_TARGETS = ("generic", "ecp5")


def multiplier_latency(target: str) -> int:
    """Cycles from operands to product: input and product registers, plus one fabric register on ECP5."""
    return 3 if target == "ecp5" else 2


def check_multiplier(*, a_width: int, b_width: int, a_signed: bool, b_signed: bool, target: str) -> None:
    """Raise ``ValueError`` if ``target`` cannot multiply operands of these widths."""
    if target not in MULTIPLIER_TARGETS:
        raise ValueError(f"multiplier must be one of {', '.join(MULTIPLIER_TARGETS)}, not {target!r}")
    if target == "ecp5":
        for name, width, is_signed in (("a_width", a_width, a_signed), ("b_width", b_width, b_signed)):
            limit = 18 if is_signed else 17
            if width > limit:
                raise ValueError(f"{name} must be at most {limit} for the ecp5 multiplier "
                                 f"(MULT18X18D is 18x18 signed), not {width}")


class Multiplier(wiring.Component):
    """``product = a * b`` through input and output registers.

    ``generic`` describes the registers around a ``*``; Yosys packs them into
    the DSP48E1 (Xilinx 7) and SB_MAC16 (iCE40) by itself.  On ECP5 Yosys
    maps ``*`` onto an unregistered MULT18X18D and leaves every register in
    the fabric, so ``ecp5`` instantiates MULT18X18D with its input and output
    registers enabled, followed by one fabric register that absorbs the
    routing out of the DSP row.  Both compute the same product; the ECP5
    path takes one cycle more.  For simulation the ECP5 path needs
    ``hdl/models/MULT18X18D.v``.

    Parameters
    ----------
    a_width, b_width : int
    a_signed, b_signed : bool
    target : "generic" or "ecp5"

    Attributes
    ----------
    latency : int
        Cycles from ``a``/``b`` to ``product``.

    Ports
    -----
    a : In(a_width, a_signed)
    b : In(b_width, b_signed)
    product : Out(a_width + b_width, signed if either operand is)
    """

    def __init__(self, *, a_width: int, b_width: int, a_signed: bool, b_signed: bool, target: str = "generic"):
        positive_int("a_width", a_width)
        positive_int("b_width", b_width)
        boolean("a_signed", a_signed)
        boolean("b_signed", b_signed)
        check_multiplier(a_width=a_width, b_width=b_width, a_signed=a_signed, b_signed=b_signed, target=target)
        self.target = target
        self._signed_product = a_signed or b_signed
        width = a_width + b_width
        super().__init__({
            "a": In(signed(a_width) if a_signed else unsigned(a_width)),
            "b": In(signed(b_width) if b_signed else unsigned(b_width)),
            "product": Out(signed(width) if self._signed_product else unsigned(width)),
        })

    @property
    def latency(self) -> int:
        return multiplier_latency(self.target)

    def elaborate(self, platform):
        m = Module()
        if self.target == "generic":
            a_reg, b_reg = Signal.like(self.a), Signal.like(self.b)
            m.d.sync += [a_reg.eq(self.a), b_reg.eq(self.b), self.product.eq(a_reg * b_reg)]
            return m

        # ECP5: both operands extended to 18-bit two's complement, multiplied signed.
        a18, b18 = Signal(signed(18)), Signal(signed(18))
        p36 = Signal(signed(36))
        m.d.comb += [a18.eq(self.a), b18.eq(self.b)]
        m.submodules.dsp = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
            p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
            p_REG_INPUTA_CE="CE0", p_REG_INPUTB_CE="CE0", p_REG_OUTPUT_CE="CE0",
            p_REG_INPUTA_RST="RST0", p_REG_INPUTB_RST="RST0", p_REG_OUTPUT_RST="RST0",
            p_CLK0_DIV="ENABLED", p_GSR="DISABLED", p_RESETMODE="SYNC", p_SOURCEB_MODE="B_SHIFT",
            p_MULT_BYPASS="DISABLED", p_CAS_MATCH_REG="FALSE", p_HIGHSPEED_CLK="NONE",
            # Only the pins in use are connected: every constant tied to a DSP pin is a route into
            # the crowded DSP row (tying all of them made the 8x8 array unroutable).  Unconnected
            # C, SOURCE, CLK1-3, CE1-3 and RST inputs default to inactive.
            **{f"i_A{i}": a18[i] for i in range(18)},
            **{f"i_B{i}": b18[i] for i in range(18)},
            i_SIGNEDA=Const(1), i_SIGNEDB=Const(1),
            i_CLK0=ClockSignal(), i_CE0=Const(1),
            **{f"o_P{i}": p36[i] for i in range(36)},
        )
        m.d.sync += self.product.eq(p36)
        return m
